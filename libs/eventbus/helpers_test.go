package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

var nameSeq atomic.Int64

// uniqueName returns a topic or group name no other test uses.
func uniqueName(tb testing.TB, kind string) string {
	r := strings.NewReplacer("/", ".", " ", "_", "#", "_")
	return fmt.Sprintf("test.%s.%s.%d.%d", r.Replace(tb.Name()), kind, time.Now().UnixNano()%1e6, nameSeq.Add(1))
}

func testLogger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startBroker starts an embedded broker on a random port for one test.
func startBroker(tb testing.TB) string {
	tb.Helper()
	b, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0", Partitions: 3}, discardLogger())
	if err != nil {
		tb.Fatalf("start broker: %v", err)
	}
	tb.Cleanup(b.Close)
	return b.Addr()
}

// fastSubscriberConfig is a subscriber config with timeouts short enough for
// tests against the embedded broker.
func fastSubscriberConfig(broker, group string, topics ...string) eventbus.SubscriberConfig {
	return eventbus.SubscriberConfig{
		Brokers:           []string{broker},
		GroupID:           group,
		Topics:            topics,
		Retry:             retry.Policy{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		CommitMaxDelay:    20 * time.Millisecond,
	}
}

func newPublisher(tb testing.TB, broker string) *eventbus.Publisher {
	tb.Helper()
	p, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: []string{broker}, Source: "/test"},
		testLogger(tb), prometheus.NewRegistry())
	if err != nil {
		tb.Fatalf("new publisher: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("close publisher: %v", err)
		}
	})
	return p
}

// newTopic creates a topic no other test uses, of partitions partitions.
func newTopic(tb testing.TB, broker string, partitions int) string {
	tb.Helper()
	topic := uniqueName(tb, "topic")
	if err := eventbus.EnsureTopics(context.Background(), []string{broker}, eventbus.TopicSpec{Name: topic, Partitions: partitions}); err != nil {
		tb.Fatalf("ensure topic %s: %v", topic, err)
	}
	return topic
}

// publishNumbered publishes test.happened events number from to to-1 (the
// number is the data; id evt-NNN; aggregate key(number)) to topic at once.
func publishNumbered(tb testing.TB, pub *eventbus.Publisher, topic string, from, to int, key func(i int) string) {
	tb.Helper()
	var events []eventbus.Event
	for i := from; i < to; i++ {
		e, err := eventbus.NewEvent("test.happened", "/test", key(i), i)
		if err != nil {
			tb.Fatal(err)
		}
		e.ID = fmt.Sprintf("evt-%03d", i)
		events = append(events, e)
	}
	if err := pub.Publish(context.Background(), topic, events...); err != nil {
		tb.Fatalf("publish: %v", err)
	}
}

// runSubscriber runs a subscriber until the returned stop is called (or the
// test ends) and checks that Run returns cleanly.
func runSubscriber(tb testing.TB, cfg eventbus.SubscriberConfig, h eventbus.Handler, opts ...eventbus.SubscriberOption) (stop func()) {
	tb.Helper()
	s, err := eventbus.NewSubscriber(cfg, h, testLogger(tb), prometheus.NewRegistry(), opts...)
	if err != nil {
		tb.Fatalf("new subscriber: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("subscriber run: %v", err)
				}
			case <-time.After(20 * time.Second):
				tb.Errorf("subscriber did not stop within 20s")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// waitFor waits until cond holds or the deadline passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// readAll reads n records from every partition of topic with a plain
// kafka-go consumer group reader, as a downstream system would.
func readAll(tb testing.TB, broker, topic string, n int) []kafka.Message {
	tb.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{broker}, GroupID: uniqueName(tb, "rawgroup"), GroupTopics: []string{topic},
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond, RebalanceTimeout: 2 * time.Second,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			tb.Fatalf("read %s: got %d of %d records: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// committed returns the group's committed offsets of topic by partition;
// none while the group does not exist yet.
func committed(tb testing.TB, broker, group, topic string, partitions ...int) map[int]int64 {
	tb.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(broker), Transport: transport}
	resp, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{topic: partitions},
	})
	if err != nil {
		tb.Fatalf("offset fetch: %v", err)
	}
	if errors.Is(resp.Error, kafka.GroupIdNotFound) {
		return map[int]int64{} // the group has not joined yet
	}
	if resp.Error != nil {
		tb.Fatalf("offset fetch: %v", resp.Error)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

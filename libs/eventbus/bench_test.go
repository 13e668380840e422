package eventbus_test

// Throughput of the eventbus wrappers against plain kafka-go with identical
// settings, on one embedded broker:
//
//	go test -run '^$' -bench . ./eventbus/
//
// Publish: 1000 events of 200-byte payloads per Publish / WriteMessages call,
// same writer settings (hash balancer, acks=all, BatchSize 1000 so a call is
// one full batch and never waits for BatchTimeout). The raw writer sends the
// very same records (CloudEvents headers, tenant, key, value), building them
// from the same events per call; "raw-prebuilt" reuses records built once and
// shows the client's floor.
//
// Consume: a consumer group reads a pre-filled 3-partition topic; both sides
// use the same reader settings and the same commit policy (a synchronous
// commit of the handled offsets every 100 records). Time runs from the first
// record received to the last one handled, so group joins are not counted.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

const (
	benchBatch       = 1000
	benchPayloadSize = 200
	benchCommitBatch = 100
)

func benchEvents(tb testing.TB) []eventbus.Event {
	tb.Helper()
	payload := `{"p":"` + strings.Repeat("x", benchPayloadSize-8) + `"}`
	events := make([]eventbus.Event, benchBatch)
	for i := range events {
		e, err := eventbus.NewEvent("bench.thing.happened", "/bench", fmt.Sprintf("inst-%d", i%64), nil)
		if err != nil {
			tb.Fatal(err)
		}
		e.Data = []byte(payload)
		e.Tenant = "acme"
		events[i] = e
	}
	return events
}

func benchPublisherConfig(broker string) eventbus.PublisherConfig {
	return eventbus.PublisherConfig{Brokers: []string{broker}, Source: "/bench", BatchSize: benchBatch}
}

// rawWriter is a kafka-go writer configured exactly like the Publisher's.
func rawWriter(broker string) (*kafka.Writer, *kafka.Transport) {
	t := &kafka.Transport{ClientID: "canopy-eventbus"}
	return &kafka.Writer{
		Addr:                   kafka.TCP(broker),
		Balancer:               &kafka.Hash{},
		MaxAttempts:            10,
		BatchSize:              benchBatch,
		BatchBytes:             1 << 20,
		BatchTimeout:           5 * time.Millisecond,
		WriteTimeout:           10 * time.Second,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		Transport:              t,
	}, t
}

// rawRecords builds the records the Publisher would send for events, the
// way a hand-written kafka-go producer would.
func rawRecords(topic string, events []eventbus.Event) []kafka.Message {
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		msgs[i] = kafka.Message{
			Topic: topic,
			Key:   []byte(e.Key),
			Value: e.Data,
			Headers: []kafka.Header{
				{Key: "ce_specversion", Value: []byte("1.0")},
				{Key: "ce_id", Value: []byte(e.ID)},
				{Key: "ce_type", Value: []byte(e.Type)},
				{Key: "ce_source", Value: []byte(e.Source)},
				{Key: "ce_time", Value: []byte(e.Time.UTC().Format(time.RFC3339Nano))},
				{Key: "content-type", Value: []byte(e.ContentType)},
				{Key: "ce_subject", Value: []byte(e.Subject)},
				{Key: "tenant", Value: []byte(e.Tenant)},
			},
		}
	}
	return msgs
}

func ensureTopic(tb testing.TB, broker, topic string, partitions int) {
	tb.Helper()
	if err := eventbus.EnsureTopics(context.Background(), []string{broker},
		eventbus.TopicSpec{Name: topic, Partitions: partitions}); err != nil {
		tb.Fatal(err)
	}
}

// publishRun publishes calls×1000 events and returns the elapsed time.
type publishRun func(tb testing.TB, calls int) time.Duration

func wrapperPublish(tb testing.TB, broker, topic string, events []eventbus.Event) (publishRun, func()) {
	pub, err := eventbus.NewPublisher(benchPublisherConfig(broker), discardLogger(), prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	ctx := tenancy.WithTenant(context.Background(), "acme")
	return func(tb testing.TB, calls int) time.Duration {
		start := time.Now()
		for range calls {
			if err := pub.Publish(ctx, topic, events...); err != nil {
				tb.Fatal(err)
			}
		}
		return time.Since(start)
	}, func() { _ = pub.Close() }
}

func rawPublish(broker, topic string, events []eventbus.Event, prebuilt bool) (publishRun, func()) {
	w, t := rawWriter(broker)
	built := rawRecords(topic, events)
	return func(tb testing.TB, calls int) time.Duration {
		ctx := context.Background()
		start := time.Now()
		for range calls {
			msgs := built
			if !prebuilt {
				msgs = rawRecords(topic, events)
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				tb.Fatal(err)
			}
		}
		return time.Since(start)
	}, func() { _ = w.Close(); t.CloseIdleConnections() }
}

func BenchmarkPublish(b *testing.B) {
	broker := startBroker(b)
	events := benchEvents(b)
	for _, bc := range []struct {
		name string
		make func(topic string) (publishRun, func())
	}{
		{"eventbus", func(topic string) (publishRun, func()) { return wrapperPublish(b, broker, topic, events) }},
		{"raw", func(topic string) (publishRun, func()) { return rawPublish(broker, topic, events, false) }},
		{"raw-prebuilt", func(topic string) (publishRun, func()) { return rawPublish(broker, topic, events, true) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			topic := uniqueName(b, "topic")
			ensureTopic(b, broker, topic, 1)
			run, closeFn := bc.make(topic)
			defer closeFn()
			run(b, 1) // connect and warm up
			b.ReportAllocs()
			b.ResetTimer()
			elapsed := run(b, b.N)
			b.ReportMetric(float64(b.N*benchBatch)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// consumeRun consumes n records of topic in a new group and returns the time
// from the first record received to the last one handled.
type consumeRun func(tb testing.TB, broker, topic string, n int) time.Duration

func benchSubscriberConfig(broker, group, topic string) eventbus.SubscriberConfig {
	cfg := fastSubscriberConfig(broker, group, topic)
	cfg.CommitBatch = benchCommitBatch
	cfg.CommitMaxDelay = time.Second
	return cfg
}

func wrapperConsume(tb testing.TB, broker, topic string, n int) time.Duration {
	var first, last time.Time
	count := 0
	done := make(chan struct{})
	h := func(ctx context.Context, e eventbus.Event) error {
		count++
		switch count {
		case 1:
			first = time.Now()
		case n:
			last = time.Now()
			close(done)
		}
		return nil
	}
	stop := runSubscriber(tb, benchSubscriberConfig(broker, uniqueName(tb, "group"), topic), h)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		tb.Fatalf("subscriber consumed %d of %d", count, n)
	}
	stop()
	return last.Sub(first)
}

func rawConsume(tb testing.TB, broker, topic string, n int) time.Duration {
	// The reader settings the Subscriber uses for the same config.
	cfg := benchSubscriberConfig(broker, uniqueName(tb, "group"), topic)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, GroupID: cfg.GroupID, GroupTopics: cfg.Topics,
		Dialer:   &kafka.Dialer{ClientID: "canopy-eventbus", Timeout: 10 * time.Second, DualStack: true},
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: cfg.MaxWait,
		HeartbeatInterval: cfg.HeartbeatInterval, SessionTimeout: cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout, JoinGroupBackoff: cfg.JoinGroupBackoff,
		StartOffset: kafka.FirstOffset, CommitInterval: 0, WatchPartitionChanges: true,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first time.Time
	var pending []kafka.Message // last fetched record per partition
	sinceCommit := 0
	for i := 0; i < n; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			tb.Fatalf("raw reader consumed %d of %d: %v", i, n, err)
		}
		if i == 0 {
			first = time.Now()
		}
		found := false
		for j := range pending {
			if pending[j].Partition == m.Partition && pending[j].Topic == m.Topic {
				pending[j] = m
				found = true
				break
			}
		}
		if !found {
			pending = append(pending, m)
		}
		if sinceCommit++; sinceCommit >= benchCommitBatch {
			if err := r.CommitMessages(ctx, pending...); err != nil {
				tb.Fatal(err)
			}
			pending, sinceCommit = pending[:0], 0
		}
	}
	return time.Since(first)
}

// fill publishes n benchmark events to topic.
func fill(tb testing.TB, broker, topic string, n int) {
	tb.Helper()
	pub, err := eventbus.NewPublisher(benchPublisherConfig(broker), discardLogger(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer pub.Close()
	events := benchEvents(tb)
	for sent := 0; sent < n; sent += benchBatch {
		if err := pub.Publish(context.Background(), topic, events[:min(benchBatch, n-sent)]...); err != nil {
			tb.Fatal(err)
		}
	}
}

func BenchmarkConsume(b *testing.B) {
	broker := startBroker(b)
	for _, bc := range []struct {
		name string
		run  consumeRun
	}{
		{"eventbus", wrapperConsume},
		{"raw", rawConsume},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := max(b.N, benchCommitBatch)
			topic := uniqueName(b, "topic")
			ensureTopic(b, broker, topic, 3)
			fill(b, broker, topic, n)
			b.ResetTimer()
			elapsed := bc.run(b, broker, topic, n)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEventbusVsRaw runs both sides alternately on one broker and
// prints the throughput ratio of wrapper to raw kafka-go. Each round runs
// both sides back to back (alternating which goes first); the reported
// figures are the medians over the rounds, which the noise of a shared,
// in-process broker affects less than a single run.
func BenchmarkEventbusVsRaw(b *testing.B) {
	const (
		rounds         = 9
		callsPerRound  = 100 // ×1000 events
		consumeRecords = 100_000
	)
	broker := startBroker(b)
	events := benchEvents(b)
	for range b.N {
		// Publish.
		pubTopic := uniqueName(b, "pub")
		ensureTopic(b, broker, pubTopic, 1)
		wrap, closeWrap := wrapperPublish(b, broker, pubTopic, events)
		raw, closeRaw := rawPublish(broker, pubTopic, events, false)
		pre, closePre := rawPublish(broker, pubTopic, events, true)
		wrap(b, 2)
		raw(b, 2)
		pre(b, 2)
		perRound := float64(callsPerRound * benchBatch)
		var pw, pr, pp []float64
		for i := range rounds {
			runtime.GC()
			sides := []func(){
				func() { pw = append(pw, perRound/wrap(b, callsPerRound).Seconds()) },
				func() { pr = append(pr, perRound/raw(b, callsPerRound).Seconds()) },
				func() { pp = append(pp, perRound/pre(b, callsPerRound).Seconds()) },
			}
			for j := range sides {
				sides[(i+j)%len(sides)]()
			}
		}
		closeWrap()
		closeRaw()
		closePre()

		// Consume: every run reads the whole topic in a new group.
		conTopic := uniqueName(b, "con")
		ensureTopic(b, broker, conTopic, 3)
		fill(b, broker, conTopic, consumeRecords)
		var cw, cr []float64
		for i := range rounds {
			// Each run starts from a collected heap, so one side does not pay
			// for the other's garbage.
			w := func() {
				runtime.GC()
				cw = append(cw, consumeRecords/wrapperConsume(b, broker, conTopic, consumeRecords).Seconds())
			}
			r := func() {
				runtime.GC()
				cr = append(cr, consumeRecords/rawConsume(b, broker, conTopic, consumeRecords).Seconds())
			}
			if i%2 == 0 {
				w()
				r()
			} else {
				r()
				w()
			}
		}

		b.Logf("per round: consume wrapper %.0f raw %.0f; publish wrapper %.0f raw %.0f raw-prebuilt %.0f", cw, cr, pw, pr, pp)
		// Ratios are the medians of the per-round ratios: the two sides of a
		// round ran seconds apart, under the same machine load.
		mpw, mpr, mpp, mcw, mcr := median(pw), median(pr), median(pp), median(cw), median(cr)
		rp, rpp, rc := median(ratios(pw, pr)), median(ratios(pw, pp)), median(ratios(cw, cr))
		line := fmt.Sprintf("eventbus publish: wrapper %.0f msg/s, raw %.0f msg/s, ratio %.2f (raw with prebuilt records %.0f msg/s, ratio %.2f)\n"+
			"eventbus consume: wrapper %.0f msg/s, raw %.0f msg/s, ratio %.2f\n",
			mpw, mpr, rp, mpp, rpp, mcw, mcr, rc)
		fmt.Print(line)
		b.Log(line)
		b.ReportMetric(mpw, "pub-wrapper-msgs/s")
		b.ReportMetric(mpr, "pub-raw-msgs/s")
		b.ReportMetric(rp, "pub-ratio")
		b.ReportMetric(mcw, "con-wrapper-msgs/s")
		b.ReportMetric(mcr, "con-raw-msgs/s")
		b.ReportMetric(rc, "con-ratio")
	}
}

func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

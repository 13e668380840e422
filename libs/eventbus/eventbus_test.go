package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
)

type seen struct {
	event       eventbus.Event
	tenant      tenancy.ID
	hasTenant   bool
	spanContext trace.SpanContext
}

func TestPublishConsumeCarriesCloudEventsTenantAndTrace(t *testing.T) {
	broker := startBroker(t)
	topic := uniqueName(t, "topic")
	ctx := context.Background()
	spec := eventbus.TopicSpec{Name: topic, Partitions: 1}
	if err := eventbus.EnsureTopics(ctx, []string{broker}, spec); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	if err := eventbus.EnsureTopics(ctx, []string{broker}, spec); err != nil {
		t.Fatalf("ensure topics again (must be idempotent): %v", err)
	}
	pub := newPublisher(t, broker)

	// An invalid event fails validation and nothing is sent.
	err := pub.Publish(ctx, topic, eventbus.Event{ID: "bad", Source: "/x"})
	if !errors.Is(err, eventbus.ErrInvalidEvent) {
		t.Fatalf("publish without type: err = %v, want ErrInvalidEvent", err)
	}

	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	pubCtx := trace.ContextWithSpanContext(tenancy.WithTenant(ctx, "acme"), sc)

	fromCtx, err := eventbus.NewEvent("provisioning.instance.ready", "/services/provisioning", "inst-1", map[string]string{"id": "inst-1"})
	if err != nil {
		t.Fatal(err)
	}
	explicit, err := eventbus.NewEvent("provisioning.instance.deleted", "", "inst-2", map[string]int{"n": 2})
	if err != nil {
		t.Fatal(err)
	}
	explicit.Tenant = "globex"
	explicit.TraceParent = "00-11111111111111111111111111111111-2222222222222222-01"
	explicit.Extensions = map[string]string{"ce_region": "eu-west"}
	if err := pub.Publish(pubCtx, topic, fromCtx, explicit); err != nil {
		t.Fatalf("publish: %v", err)
	}

	// The raw records, as any kafka-go (or Kafka Connect) consumer sees them.
	raw := readAll(t, broker, topic, 2)
	wantTrace := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for i, tc := range []struct {
		e           eventbus.Event
		tenant      string
		traceparent string
		source      string
	}{
		{fromCtx, "acme", wantTrace, "/services/provisioning"},
		{explicit, "globex", explicit.TraceParent, "/test"},
	} {
		m := raw[i]
		want := map[string]string{
			"ce_specversion": "1.0",
			"ce_id":          tc.e.ID,
			"ce_type":        tc.e.Type,
			"ce_source":      tc.source,
			"ce_subject":     tc.e.Subject,
			"ce_time":        tc.e.Time.UTC().Format(time.RFC3339Nano),
			"content-type":   "application/json",
			"tenant":         tc.tenant,
			"traceparent":    tc.traceparent,
		}
		for k, v := range tc.e.Extensions {
			want[k] = v
		}
		for k, v := range want {
			if got, ok := header(m, k); !ok || got != v {
				t.Errorf("record %d header %s = %q (present %v), want %q", i, k, got, ok, v)
			}
		}
		if string(m.Key) != tc.e.Key || string(m.Value) != string(tc.e.Data) {
			t.Errorf("record %d key/value = %q/%q, want %q/%q", i, m.Key, m.Value, tc.e.Key, tc.e.Data)
		}
	}

	// The same records through a Subscriber.
	var mu sync.Mutex
	var got []seen
	runSubscriber(t, fastSubscriberConfig(broker, uniqueName(t, "group"), topic), func(ctx context.Context, e eventbus.Event) error {
		id, ok := tenancy.FromContext(ctx)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{event: e, tenant: id, hasTenant: ok, spanContext: trace.SpanContextFromContext(ctx)})
		return nil
	})
	waitFor(t, 30*time.Second, "2 events handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	first, second := got[0], got[1]
	if first.event.ID != fromCtx.ID || first.event.Type != fromCtx.Type || first.event.Source != fromCtx.Source ||
		first.event.Subject != "inst-1" || first.event.Key != "inst-1" || !first.event.Time.Equal(fromCtx.Time) ||
		string(first.event.Data) != string(fromCtx.Data) || first.event.Topic != topic || first.event.Offset != 0 {
		t.Errorf("first event = %+v, want %+v", first.event, fromCtx)
	}
	if !first.hasTenant || first.tenant != "acme" || first.event.Tenant != "acme" {
		t.Errorf("first tenant in ctx = %q (%v), event %q; want acme", first.tenant, first.hasTenant, first.event.Tenant)
	}
	if first.spanContext.TraceID() != traceID || first.spanContext.SpanID() != spanID || !first.spanContext.IsRemote() {
		t.Errorf("first span context = %+v, want trace %s span %s (remote)", first.spanContext, traceID, spanID)
	}
	if second.tenant != "globex" || second.event.TraceParent != explicit.TraceParent ||
		second.spanContext.TraceID().String() != "11111111111111111111111111111111" ||
		second.event.Extensions["ce_region"] != "eu-west" || second.event.Source != "/test" {
		t.Errorf("second = %+v (tenant %q, span %v)", second.event, second.tenant, second.spanContext)
	}
}

func TestRestartedConsumerResumesAtCommittedOffset(t *testing.T) {
	broker := startBroker(t)
	topic := newTopic(t, broker, 3)
	group := uniqueName(t, "group")
	pub := newPublisher(t, broker)
	publish := func(from, to int) {
		publishNumbered(t, pub, topic, from, to, func(i int) string { return fmt.Sprintf("agg-%d", i%7) })
	}
	const firstBatch, total, handleBeforeStop = 30, 50, 10
	publish(0, firstBatch)

	var mu sync.Mutex
	handledA := map[string]int{}
	handledB := map[string]int{}
	blocked := make(chan struct{})
	var blockOnce sync.Once
	stopA := runSubscriber(t, fastSubscriberConfig(broker, group, topic), func(ctx context.Context, e eventbus.Event) error {
		mu.Lock()
		if len(handledA) >= handleBeforeStop {
			mu.Unlock()
			// Stay in flight until the subscriber stops: this record must
			// not be committed and must reach the next consumer.
			blockOnce.Do(func() { close(blocked) })
			<-ctx.Done()
			return ctx.Err()
		}
		handledA[e.ID]++
		mu.Unlock()
		return nil
	})
	select {
	case <-blocked:
	case <-time.After(30 * time.Second):
		t.Fatal("first consumer did not handle its share")
	}
	stopA()

	publish(firstBatch, total)
	runSubscriber(t, fastSubscriberConfig(broker, group, topic), func(ctx context.Context, e eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		handledB[e.ID]++
		return nil
	})
	waitFor(t, 30*time.Second, "every event handled by one of the consumers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handledA)+len(handledB) >= total && len(handledB) >= total-handleBeforeStop
	})

	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < total; i++ {
		id := fmt.Sprintf("evt-%03d", i)
		if handledA[id] == 0 && handledB[id] == 0 {
			t.Errorf("event %s lost", id)
		}
	}
	// A stopped gracefully and committed everything it handled: nothing it
	// handled may come back.
	for id := range handledA {
		if handledB[id] > 0 {
			t.Errorf("event %s handled and committed by the first consumer was redelivered", id)
		}
	}
	if len(handledA) != handleBeforeStop {
		t.Errorf("first consumer handled %d, want %d", len(handledA), handleBeforeStop)
	}
}

func TestPoisonAndPermanentGoToDLQAndPartitionMovesOn(t *testing.T) {
	broker := startBroker(t)
	topic := newTopic(t, broker, 1)
	ctx := context.Background()
	// Written with plain kafka-go so one record can lack ce_type.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Transport: transport, BatchTimeout: time.Millisecond}
	defer w.Close()
	ce := func(id, subject string) []kafka.Header {
		return []kafka.Header{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)},
			{Key: "ce_type", Value: []byte("test.happened")}, {Key: "ce_source", Value: []byte("/test")},
			{Key: "ce_subject", Value: []byte(subject)},
		}
	}
	records := []kafka.Message{
		{Topic: topic, Key: []byte("k"), Value: []byte(`{"n":0}`), Headers: ce("ok-0", "ok")},
		{Topic: topic, Key: []byte("k"), Value: []byte(`{"n":1}`), Headers: []kafka.Header{{Key: "ce_id", Value: []byte("no-type")}}},
		{Topic: topic, Key: []byte("k"), Value: []byte(`{"n":2}`), Headers: ce("poison-2", "poison")},
		{Topic: topic, Key: []byte("k"), Value: []byte(`{"n":3}`), Headers: ce("permanent-3", "permanent")},
		{Topic: topic, Key: []byte("k"), Value: []byte(`{"n":4}`), Headers: ce("ok-4", "ok")},
	}
	if err := w.WriteMessages(ctx, records...); err != nil {
		t.Fatalf("write: %v", err)
	}

	var mu sync.Mutex
	calls := map[string]int{}
	var handledOK []string
	group := uniqueName(t, "group")
	runSubscriber(t, fastSubscriberConfig(broker, group, topic), func(ctx context.Context, e eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		calls[e.ID]++
		switch e.Subject {
		case "poison":
			return eventbus.Poison(errors.New("payload does not match schema"))
		case "permanent":
			return fmt.Errorf("apply: %w", eventbus.Permanent(errors.New("instance already deleted")))
		}
		handledOK = append(handledOK, e.ID)
		return nil
	})
	waitFor(t, 30*time.Second, "the records behind the bad ones handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handledOK) == 2
	})

	dlq := readAll(t, broker, topic+".dlq", 3)
	byOffset := map[string]kafka.Message{}
	for _, m := range dlq {
		off, _ := header(m, "dlq_offset")
		byOffset[off] = m
	}
	for _, tc := range []struct {
		offset, class, reason string
	}{
		{"1", "poison", "missing ce_type header"},
		{"2", "poison", "payload does not match schema"},
		{"3", "permanent", "apply: instance already deleted"},
	} {
		m, ok := byOffset[tc.offset]
		if !ok {
			t.Errorf("no dead letter for offset %s", tc.offset)
			continue
		}
		for k, want := range map[string]string{
			"dlq_class": tc.class, "dlq_reason": tc.reason, "dlq_topic": topic, "dlq_partition": "0",
		} {
			if got, _ := header(m, k); got != want {
				t.Errorf("offset %s: %s = %q, want %q", tc.offset, k, got, want)
			}
		}
		if want := records[tc.offset[0]-'0']; string(m.Value) != string(want.Value) || string(m.Key) != "k" {
			t.Errorf("offset %s: dead letter value %q, want original %q", tc.offset, m.Value, want.Value)
		}
		if _, ok := header(m, "ce_id"); !ok {
			t.Errorf("offset %s: original headers not kept", tc.offset)
		}
	}
	mu.Lock()
	if calls["poison-2"] != 1 || calls["permanent-3"] != 1 || calls["no-type"] != 0 {
		t.Errorf("handler calls = %v; poison and permanent must not be retried, undecodable never handled", calls)
	}
	if len(handledOK) != 2 || handledOK[0] != "ok-0" || handledOK[1] != "ok-4" {
		t.Errorf("handled = %v, want [ok-0 ok-4]", handledOK)
	}
	mu.Unlock()
	waitFor(t, 10*time.Second, "all five records committed", func() bool {
		return committed(t, broker, group, topic, 0)[0] == 5
	})
}

func TestRetryableFailureIsRetriedWithBackoffThenCommitted(t *testing.T) {
	broker := startBroker(t)
	topic := newTopic(t, broker, 1)
	group := uniqueName(t, "group")
	publishNumbered(t, newPublisher(t, broker), topic, 1, 2, func(int) string { return "agg-1" })

	var mu sync.Mutex
	var attempts []time.Time
	cfg := fastSubscriberConfig(broker, group, topic)
	runSubscriber(t, cfg, func(ctx context.Context, e eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) <= 2 {
			return errors.New("database unavailable")
		}
		return nil
	})
	waitFor(t, 30*time.Second, "the event committed", func() bool {
		return committed(t, broker, group, topic, 0)[0] == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 {
		t.Fatalf("attempts = %d, want 3", len(attempts))
	}
	// Jitter is ±50%, so each wait is at least half the initial interval.
	minWait := cfg.Retry.Initial / 2
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < minWait {
			t.Errorf("attempt %d came %s after the previous one, want a backoff of at least %s", i+1, gap, minWait)
		}
	}
}

func TestRetriesExhaustedGoToDLQ(t *testing.T) {
	broker := startBroker(t)
	topic := newTopic(t, broker, 1)
	publishNumbered(t, newPublisher(t, broker), topic, 1, 2, func(int) string { return "agg-1" })
	var mu sync.Mutex
	attempts := 0
	cfg := fastSubscriberConfig(broker, uniqueName(t, "group"), topic)
	cfg.MaxAttempts = 3
	runSubscriber(t, cfg, func(context.Context, eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		return errors.New("still down")
	})
	dlq := readAll(t, broker, topic+".dlq", 1)
	if got, _ := header(dlq[0], "dlq_class"); got != "retries_exhausted" {
		t.Errorf("dlq_class = %q, want retries_exhausted", got)
	}
	if got, _ := header(dlq[0], "dlq_reason"); got != "still down" {
		t.Errorf("dlq_reason = %q, want %q", got, "still down")
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 3 {
		t.Errorf("attempts = %d, want 3", attempts)
	}
}

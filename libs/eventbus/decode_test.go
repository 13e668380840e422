package eventbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/eventbus"
)

// TestDecodeMessageRoundTrip publishes an event and reads its record with a
// plain kafka-go Reader (no Subscriber): DecodeMessage gives back what was
// published, with where it was read.
func TestDecodeMessageRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker := startBroker(t)
	topic := newTopic(t, broker, 1)
	pub := newPublisher(t, broker)

	at := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	ev, err := eventbus.NewEvent("test.happened", "/test", "agg-1", map[string]int{"n": 7})
	if err != nil {
		t.Fatal(err)
	}
	ev.ID, ev.Time, ev.Tenant = "evt-1", at, "acme"
	ev.Extensions = map[string]string{"x_note": "kept"}
	if err := pub.Publish(ctx, topic, ev); err != nil {
		t.Fatal(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	got, err := eventbus.DecodeMessage(m)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.ID != "evt-1" || got.Type != "test.happened" || got.Source != "/test" || got.Subject != "agg-1" ||
		got.Key != "agg-1" || got.Tenant != "acme" || !got.Time.Equal(at) || got.ContentType != eventbus.DefaultContentType ||
		string(got.Data) != `{"n":7}` || got.Extensions["x_note"] != "kept" {
		t.Fatalf("decoded %+v", got)
	}
	if got.Topic != topic || got.Partition != 0 || got.Offset != m.Offset {
		t.Fatalf("position %s/%d@%d, want %s/0@%d", got.Topic, got.Partition, got.Offset, topic, m.Offset)
	}
}

// TestDecodeMessagePoison: a record that is not a CloudEvent is poison, so a
// consumer can skip it rather than stall its partition.
func TestDecodeMessagePoison(t *testing.T) {
	tests := []struct {
		name    string
		headers []kafka.Header
	}{
		{name: "no headers", headers: nil},
		{name: "no type", headers: []kafka.Header{{Key: eventbus.HeaderID, Value: []byte("1")}}},
		{name: "bad time", headers: []kafka.Header{{Key: eventbus.HeaderID, Value: []byte("1")},
			{Key: eventbus.HeaderType, Value: []byte("t")}, {Key: eventbus.HeaderTime, Value: []byte("soon")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := eventbus.DecodeMessage(kafka.Message{Topic: "t", Value: []byte("{}"), Headers: tc.headers})
			var poison *eventbus.PoisonError
			if !errors.As(err, &poison) || eventbus.ClassOf(err) != eventbus.ClassPoison {
				t.Fatalf("err = %v, want a poison error", err)
			}
		})
	}
}

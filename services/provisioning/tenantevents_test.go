package provisioning

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/api/events"
)

// readDLQ reads n records of topic's dead-letter topic from the start.
func readDLQ(t *testing.T, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic + ".dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s.dlq: got %d of %d records: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func kafkaHeader(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestPlacementEventOfAnotherTenant: placement events whose tenant header
// disagrees with the payload or with the stored instance are dead-lettered
// with the reason and never fail (or place) the instance.
func TestPlacementEventOfAnotherTenant(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as("acme")
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "held", "plan_id": planRedisDev, "region": "hold"})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)

	publish := func(header, payload string) {
		t.Helper()
		ev, err := eventbus.NewEvent(events.TypePlacementFailed, "/services/scheduling", id,
			events.PlacementFailed{InstanceID: id, TenantID: payload, Kind: events.KindNew, Reason: "forged by " + header})
		if err != nil {
			t.Fatal(err)
		}
		ev.Tenant = header
		if err := e.pub.Publish(context.Background(), events.TopicPlacements, ev); err != nil {
			t.Fatal(err)
		}
	}
	publish("evil", "evil") // consistent event, another tenant's instance
	publish("evil", "acme") // header and payload disagree
	// The same key keeps the order: once the genuine event has failed the
	// create, the forged ones before it have been handled.
	publish("acme", "acme")
	inst := c.waitState(id, time.Minute, "failed")
	if reason, _ := inst["reason"].(string); strings.Contains(reason, "forged by evil") {
		t.Fatalf("a forged event was acted upon: %v", reason)
	}
	dlq := readDLQ(t, e.brokers, events.TopicPlacements, 2)
	for _, m := range dlq {
		if string(m.Key) != id || kafkaHeader(m, eventbus.HeaderDLQClass) != "poison" ||
			!strings.Contains(kafkaHeader(m, eventbus.HeaderDLQReason), eventbus.ErrTenantMismatch.Error()) {
			t.Errorf("dead letter key %s class %q reason %q", m.Key, kafkaHeader(m, eventbus.HeaderDLQClass), kafkaHeader(m, eventbus.HeaderDLQReason))
		}
	}
}

package shard

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/eventbus"
)

// FuzzDecode feeds arbitrary CloudEvents headers of an instance-topic record
// to the sharder's decoder: it must never panic, a rejection must be poison
// (dead-lettered, not retried), and an accepted event has an id and a type.
func FuzzDecode(f *testing.F) {
	f.Add("id-1", "provisioning.instance.ready", "/canopy/provisioning", "2024-05-06T07:08:09Z", "acme", "inst-1", []byte(`{"instance_id":"inst-1"}`))
	f.Add("", "provisioning.instance.ready", "", "", "", "", []byte(`{}`))
	f.Add("id-2", "", "", "yesterday", "Not A Tenant", "", []byte(nil))
	f.Add("id-3", "x", "", "2024-13-45T99:99:99Z", "", "", []byte("\xff"))
	f.Fuzz(func(t *testing.T, id, typ, source, at, tenant, key string, value []byte) {
		var hs []kafka.Header
		for _, h := range [][2]string{
			{eventbus.HeaderID, id}, {eventbus.HeaderType, typ}, {eventbus.HeaderSource, source},
			{eventbus.HeaderTime, at}, {eventbus.HeaderTenant, tenant},
		} {
			if h[1] != "" {
				hs = append(hs, kafka.Header{Key: h[0], Value: []byte(h[1])})
			}
		}
		m := kafka.Message{Topic: "canopy.instances.v1", Key: []byte(key), Value: value, Headers: hs}
		ev, err := decode(&m)
		if err != nil {
			if eventbus.ClassOf(err) != eventbus.ClassPoison {
				t.Fatalf("decode error %v is %s, want poison", err, eventbus.ClassOf(err))
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted an event without id or type: %+v", ev)
		}
	})
}

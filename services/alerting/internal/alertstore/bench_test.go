package alertstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

// BenchmarkUpsertAlerts writes batches of 1000 alerts (half new, half
// updates of the previous batch's) with 100 outbox events each, as the
// push path does under load; alerts/s is the figure to compare with the
// service's target (~5,000/s through the engine).
func BenchmarkUpsertAlerts(b *testing.B) {
	s, _ := newAlertStore(b)
	ctx := context.Background()
	const batch = 1000
	evs := make([]eventbus.Event, 100)
	for i := range evs {
		evs[i] = eventbus.Event{Type: events.TypeAlertFiring, Source: events.SourceAlerting, Key: fmt.Sprintf("%016x", i),
			Data: []byte(`{"fingerprint":"0000000000000000","status":"firing","labels":{"alertname":"Load"}}`)}
	}
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		alerts := make([]*alert.Alert, batch)
		for i := range alerts {
			id := n*batch/2 + i // half overlaps the previous batch
			alerts[i] = firing(t0.Add(time.Duration(n)*time.Second), alert.LabelAlertName, "Load",
				alert.LabelInstance, fmt.Sprintf("i-%07d", id), alert.LabelTenant, fmt.Sprintf("t%d", id%50),
				alert.LabelSeverity, "warning", "job", "node-exporter")
		}
		if err := s.UpsertAlerts(ctx, alerts, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkStoreNotifications stores 200 notifications (2 KB payloads)
// with their log entries per call, as one engine flush of many groups.
func BenchmarkStoreNotifications(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	const batch = 200
	payload := []byte(`{"version":"4","status":"firing","alerts":[` + strings.Repeat(`{"labels":{"alertname":"Load"}},`, 60) + `{}]}`)
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		ds := make([]alertstore.Delivery, batch)
		log := make([]dispatch.LogEntry, batch)
		for i := range ds {
			key := fmt.Sprintf(`{}/{tenant="t%d"}:{alertname="Load", instance="i-%d"}`, i%50, i)
			ds[i] = alertstore.Delivery{Receiver: fmt.Sprintf("r%d", i%50), Owner: fmt.Sprintf("t%d", i%50), GroupKey: key, Payload: payload}
			log[i] = dispatch.LogEntry{Receiver: ds[i].Receiver, GroupKey: key, Firing: []alert.Fingerprint{alert.Fingerprint(i), alert.Fingerprint(n)},
				SentAt: t0, ExpiresAt: t0.Add(4 * time.Hour)}
		}
		if err := s.StoreNotifications(ctx, ds, log); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "notifications/s")
}

// BenchmarkDeliveryCycle claims 100 due deliveries and marks them
// delivered, the delivery workers' round trip to the store.
func BenchmarkDeliveryCycle(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	const batch = 100
	ds := make([]alertstore.Delivery, batch)
	for i := range ds {
		ds[i] = alertstore.Delivery{Receiver: "r1", Owner: "t1", GroupKey: "g", Payload: []byte(`{"version":"4"}`), NextAt: t0}
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := s.StoreNotifications(ctx, ds, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		due, err := s.DueDeliveries(ctx, t0, batch)
		if err != nil || len(due) != batch {
			b.Fatalf("due %d, %v", len(due), err)
		}
		if err := s.Delivered(ctx, deliveryIDs(due), t0); err != nil {
			b.Fatal(err)
		}
	}
}

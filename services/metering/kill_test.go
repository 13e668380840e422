package metering_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

var (
	admin = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:svc-admin"}
	acme  = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:svc-acme"}
)

// TestKilledTenTimesCountsEveryEventOnce streams 100k usage events through
// the ingestion API, with duplicates (the same source and id sent again,
// sometimes much later) and late arrivals (older than the grace window),
// while the service is SIGKILLed at least ten times. Clients retry what
// failed, as a client of an API that went away must. The totals must equal
// exactly the sum of the distinct, timely events; the late ones are listed.
func TestKilledTenTimesCountsEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("service-level crash test")
	}
	broker := svctest.StartKafka(t)
	svc := startService(t, broker, map[string]string{"CANOPY_METERING_GRACE": "1h"})

	meterDef := map[string]any{"slug": "api_calls", "name": "API calls", "unit": "call", "aggregation": "SUM",
		"event_type": "com.acme.api.calls", "value_property": "calls"}
	if err := svc.Call(admin, http.MethodPost, "/api/v1/meters", meterDef, nil); err != nil {
		t.Fatal(err)
	}

	const (
		total     = 100_000
		batchSize = 500
		kills     = 12
	)
	rng := rand.New(rand.NewPCG(15, 100))
	now := time.Now().UTC()
	type ev struct {
		id    int
		calls int
		late  bool
		at    time.Time
	}
	var (
		stream       []ev
		wantCalls    int
		wantLate     int
		seen         = map[int]bool{}
		distinctSent int
	)
	for i := 0; i < total; i++ {
		late := rng.IntN(250) == 0
		e := ev{id: i, calls: 1 + rng.IntN(9), late: late, at: now.Add(-time.Duration(rng.IntN(45)) * time.Minute)}
		if late {
			e.at = now.Add(-3 * time.Hour)
		}
		stream = append(stream, e)
		if rng.IntN(10) == 0 && i > 0 { // a duplicate of an earlier event
			stream = append(stream, stream[rng.IntN(len(stream))])
		}
	}
	for _, e := range stream {
		if seen[e.id] {
			continue
		}
		seen[e.id] = true
		distinctSent++
		if e.late {
			wantLate++
		} else {
			wantCalls += e.calls
		}
	}

	var sentBatches atomic.Int64
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(stream); off += batchSize {
			end := min(off+batchSize, len(stream))
			batch := make([]map[string]any, 0, end-off)
			for _, e := range stream[off:end] {
				batch = append(batch, map[string]any{"specversion": "1.0", "id": fmt.Sprintf("req-%d", e.id),
					"source": "/acme/gateway", "type": "com.acme.api.calls", "subject": "tenant-gateway",
					"time": e.at.Format(time.RFC3339Nano), "data": map[string]any{"calls": e.calls}})
			}
			body, _ := json.Marshal(batch)
			ceBatch := http.Header{"Content-Type": {"application/cloudevents-batch+json"}}
			deadline := time.Now().Add(2 * time.Minute)
			for {
				code, raw, err := svc.Request(acme, http.MethodPost, "/api/v1/usage/events", body, ceBatch)
				if err == nil && code == http.StatusAccepted {
					break
				}
				if err == nil && code < 500 {
					done <- fmt.Errorf("batch at %d: %d %s", off, code, raw)
					return
				}
				if time.Now().After(deadline) {
					done <- fmt.Errorf("batch at %d not accepted within 2m: %v %d %s", off, err, code, raw)
					return
				}
				time.Sleep(20 * time.Millisecond) // the service is restarting: retry
			}
			sentBatches.Add(1)
		}
		done <- nil
	}()

	batches := int64((len(stream) + batchSize - 1) / batchSize)
	killed := 0
	for k := 1; k <= kills; k++ {
		at := batches * int64(k) / int64(kills+1)
		svctest.WaitFor(t, fmt.Sprintf("sender past batch %d", at), 2*time.Minute, func() (bool, string) {
			return sentBatches.Load() >= at, fmt.Sprintf("%d batches sent", sentBatches.Load())
		})
		svc.Kill()
		killed++
		svc.Restart(t)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if killed < 10 {
		t.Fatalf("killed %d times, want ≥ 10", killed)
	}

	q := url.Values{"meter": {"api_calls"}, "window": {"day"},
		"from": {now.Add(-48 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(24 * time.Hour).Format(time.RFC3339)}}.Encode()
	var last float64
	svctest.WaitFor(t, "api_calls total", 2*time.Minute, func() (bool, string) {
		rows, err := svc.usage(acme, q)
		if err != nil {
			return false, err.Error()
		}
		last = 0
		for _, r := range rows {
			last += r.Value
		}
		if last > float64(wantCalls) {
			t.Fatalf("api_calls = %v, more than the %d sent: something counted twice", last, wantCalls)
		}
		return last == float64(wantCalls), fmt.Sprintf("%v of %d", last, wantCalls)
	})
	t.Logf("%d events (%d distinct, %d late) through %d kills: api_calls = %v", len(stream), distinctSent, wantLate, killed, last)

	// The late ones are reported, each once.
	var late struct {
		Items []json.RawMessage `json:"items"`
	}
	lq := url.Values{"from": {now.Add(-24 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(time.Hour).Format(time.RFC3339)}, "limit": {"1000"}}.Encode()
	svctest.WaitFor(t, "late events reported", time.Minute, func() (bool, string) {
		if err := svc.Call(acme, http.MethodGet, "/api/v1/usage/late?"+lq, nil, &late); err != nil {
			return false, err.Error()
		}
		return len(late.Items) == wantLate, fmt.Sprintf("%d of %d", len(late.Items), wantLate)
	})

	// Another tenant sees none of it.
	other := tenancy.Principal{Tenant: "globex", Role: tenancy.RoleTenantMember, Subject: "apikey:svc-globex"}
	rows, err := svc.usage(other, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Value != 0 {
			t.Fatalf("tenant globex sees acme's usage: %+v", r)
		}
	}
}

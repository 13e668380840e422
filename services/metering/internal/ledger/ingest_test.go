package ledger

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

const apiCall = "com.acme.api.call"

func apiEvent(id, tenant, subject string, at time.Time, tokens int, user string) meter.Event {
	return meter.Event{SpecVersion: "1.0", ID: id, Source: "gw-1", Type: apiCall, Subject: subject, Time: at,
		Data: json.RawMessage(fmt.Sprintf(`{"tokens":%d,"user":%q}`, tokens, user)), TenantID: tenant}
}

// TestIngestDedupLateAndUndecodable: an ingested event is counted once
// whether its copy arrives in the same batch, a later batch or after a
// restart; a late one is recorded, not counted; a record that is not a
// CloudEvent is skipped without stalling the partition.
func TestIngestDedupLateAndUndecodable(t *testing.T) {
	h := newHarness(t)
	h.addMeter("api_tokens", meter.Sum, apiCall, "tokens")
	h.addMeter("api_calls", meter.Count, apiCall, "")
	h.addMeter("api_users", meter.UniqueCount, apiCall, "user")
	l := h.newLedger(Config{})
	stop := h.run(l)

	now := time.Now().UTC()
	h.publishInstance(events.TypeInstanceReady, instance("i-g", "ready", now.Add(-time.Hour), node("g1", "primary", "running")))
	h.waitApplied()
	at := now.Add(-10 * time.Minute)
	e1 := apiEvent("e-1", "acme", "i-g", at, 5, "ann")
	e2 := apiEvent("e-2", "acme", "customer-7", at, 7, "bob")
	// e-1 twice in one write (one batch); e-2 once.
	h.publishIngest(now, e1, e2, e1)
	h.waitApplied()
	// Copies in a later batch, one received later (the API got it again).
	h.publishIngest(now.Add(time.Second), e2, e1)
	// Late: 2 h old at receipt.
	h.publishIngest(now, apiEvent("e-late", "acme", "i-g", now.Add(-2*time.Hour), 100, "zed"))
	// No tenant: skipped. Garbage: skipped.
	h.publishIngest(now, apiEvent("e-anon", "", "i-g", at, 1000, "x"))
	h.publishRaw(kafka.Message{Topic: events.TopicUsageIngest, Key: []byte("junk"), Value: []byte("{not json")})
	// Another tenant naming acme's instance gets no plan/region from it.
	h.publishIngest(now, apiEvent("e-3", "beta", "i-g", at, 3, "cy"))
	h.waitApplied()
	stop()

	// After a restart the keys are still known.
	l2 := h.newLedger(Config{})
	h.run(l2)
	h.publishIngest(now.Add(2*time.Second), e1, apiEvent("e-4", "acme", "i-g", at, 11, "ann"))
	h.waitApplied()

	sum := func(m, tenant string) float64 {
		t.Helper()
		var v float64
		if err := h.db.SQL().QueryRow("SELECT COALESCE(SUM(total), 0) FROM usage_hour WHERE meter = ? AND tenant_id = ?", m, tenant).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := sum("api_tokens", "acme"); got != 5+7+11 {
		t.Errorf("acme api_tokens %v, want 23", got)
	}
	if got := sum("api_calls", "acme"); got != 3 {
		t.Errorf("acme api_calls %v, want 3", got)
	}
	if got := sum("api_tokens", "beta"); got != 3 {
		t.Errorf("beta api_tokens %v, want 3", got)
	}
	if n := h.count("SELECT COUNT(*) FROM usage_unique WHERE level = 'h' AND tenant_id = 'acme' AND meter = 'api_users'"); n != 2 {
		t.Errorf("acme distinct users per hour %d, want 2 (ann, bob)", n)
	}
	var plan, region string
	if err := h.db.SQL().QueryRow("SELECT plan_id, region FROM usage_hour WHERE meter = 'api_tokens' AND subject = 'i-g' AND tenant_id = 'acme' LIMIT 1").Scan(&plan, &region); err != nil {
		t.Fatal(err)
	}
	if plan != "mysql-s" || region != "eu-1" {
		t.Errorf("acme's instance subject keyed %q/%q, want mysql-s/eu-1", plan, region)
	}
	if n := h.count("SELECT COUNT(*) FROM usage_hour WHERE tenant_id = 'beta' AND plan_id <> ''"); n != 0 {
		t.Errorf("another tenant's event got the instance's plan")
	}
	if n := h.count("SELECT COUNT(*) FROM late_events WHERE event_id = 'e-late' AND meter = 'api_tokens' AND value = 100"); n != 1 {
		t.Errorf("late event not recorded with its meter and value")
	}
	if n := h.count("SELECT COUNT(*) FROM usage_minute WHERE tenant_id = ''"); n != 0 {
		t.Errorf("an event without tenant was counted")
	}
	if n := h.count("SELECT COUNT(*) FROM ingest_dedup"); n != 5 {
		t.Errorf("%d dedup keys, want 5 (e-1, e-2, e-late, e-3, e-4)", n)
	}
	dups := testutil.ToFloat64(l.metrics.events.WithLabelValues(events.TopicUsageIngest, outcomeDuplicate))
	if dups != 4 { // same registry: both ledgers' counts
		t.Errorf("duplicates metric %v, want 4", dups)
	}
	if got := testutil.ToFloat64(l.metrics.undecodable.WithLabelValues(events.TopicUsageIngest)); got != 1 {
		t.Errorf("undecodable metric %v, want 1", got)
	}
	h.checkRollups()
}

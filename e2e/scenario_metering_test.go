package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// The metering resources as a user reads them.
type usageReport struct {
	Window  string   `json:"window"`
	GroupBy []string `json:"group_by"`
	Data    []struct {
		WindowStart time.Time `json:"window_start"`
		Meter       string    `json:"meter"`
		Unit        string    `json:"unit"`
		Instance    string    `json:"instance_id"`
		Plan        string    `json:"plan_id"`
		Value       float64   `json:"value"`
	} `json:"data"`
}

type costReport struct {
	Currency string `json:"currency"`
	Total    string `json:"total"`
	Data     []struct {
		Meter    string  `json:"meter"`
		Instance string  `json:"instance_id"`
		Quantity float64 `json:"quantity"`
		Amount   string  `json:"amount"`
		Currency string  `json:"currency"`
	} `json:"data"`
}

type invoice struct {
	State    string `json:"state"`
	Currency string `json:"currency"`
	Total    string `json:"total"`
	Lines    []struct {
		Instance  string `json:"instance_id"`
		Meter     string `json:"meter"`
		Quantity  string `json:"quantity"`
		UnitPrice string `json:"unit_price"`
		Amount    string `json:"amount"`
	} `json:"lines"`
}

type budgetCrossing struct {
	Kind      string `json:"kind"`
	Threshold int    `json:"threshold_percent"`
}

type budget struct {
	Amount    string           `json:"amount"`
	Actual    string           `json:"actual"`
	Forecast  string           `json:"forecast"`
	Crossings []budgetCrossing `json:"crossings"`
}

// budgetEvent is the payload of metering.budget.threshold.
type budgetEvent struct {
	Tenant    string `json:"tenant_id"`
	Month     string `json:"month"`
	Kind      string `json:"kind"`
	Threshold int    `json:"threshold_percent"`
	Budget    string `json:"budget"`
	Actual    string `json:"actual"`
}

// usageValue sums the value of meter for subject over a usage answer.
func (c *client) usageValue(query, meterSlug, subject string) (float64, string) {
	c.t.Helper()
	var u usageReport
	c.must("GET", "/api/v1/usage?"+query, nil, http.StatusOK, &u)
	var v float64
	for _, r := range u.Data {
		if r.Meter == meterSlug && r.Instance == subject {
			v += r.Value
		}
	}
	return v, fmt.Sprintf("%s of %s: %v (%d rows)", meterSlug, subject, v, len(u.Data))
}

// rat parses a decimal amount or fails the test.
func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("%q is not a decimal", s)
	}
	return r
}

// budgetEvents follows canopy.usage.v1 from its start, every partition, and
// keeps the metering.budget.threshold events of one tenant (the topic's key).
type budgetEvents struct {
	mu   sync.Mutex
	seen []budgetEvent
	err  error
}

func followBudgetEvents(t *testing.T, broker, tenant string) *budgetEvents {
	t.Helper()
	const topic = "canopy.usage.v1"
	conn, err := kafka.DialContext(context.Background(), "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &budgetEvents{}
	var wg sync.WaitGroup
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						v.mu.Lock()
						v.err = err
						v.mu.Unlock()
					}
					return
				}
				if string(m.Key) != tenant || header(m, "ce_type") != "metering.budget.threshold" {
					continue
				}
				var e budgetEvent
				err = json.Unmarshal(m.Value, &e)
				v.mu.Lock()
				if err != nil {
					v.err = fmt.Errorf("undecodable metering.budget.threshold %q: %w", m.Value, err)
				} else {
					v.seen = append(v.seen, e)
				}
				v.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return v
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// events returns what was seen so far.
func (v *budgetEvents) events() ([]budgetEvent, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]budgetEvent(nil), v.seen...), v.err
}

// samePartitionID returns an event id whose record lands in the same
// partition of canopy.usage.ingest.v1 as source/id's: the ingestion API
// keys records by source NUL id with kafka-go's hash balancer, and the
// ledger applies a partition in order, so once an event sent after a
// duplicate on the same partition is counted, the duplicate was read.
func samePartitionID(t *testing.T, broker, source, id string) string {
	t.Helper()
	conn, err := kafka.DialContext(context.Background(), "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("canopy.usage.ingest.v1")
	if err != nil {
		t.Fatalf("partitions of canopy.usage.ingest.v1: %v", err)
	}
	ids := make([]int, len(parts))
	for i, p := range parts {
		ids[i] = p.ID
	}
	part := func(id string) int {
		return (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(source + "\x00" + id)}, ids...)
	}
	want := part(id)
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%s-marker-%d", id, i); part(c) == want {
			return c
		}
	}
}

// TestScenarioMetering is the walk through the gateway: a tenant
// orders an instance and sees its node-hours grow, what they cost, and the
// same as CSV; a platform-admin defines a meter over CloudEvents, the
// tenant reports usage with an event sent twice and it is counted once, a
// late one is listed and not counted; a budget set low publishes
// metering.budget.threshold on canopy.usage.v1; another tenant neither sees
// nor reports for it.
func TestScenarioMetering(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	tenantID := "meter-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")
	otherID := "meterx-" + randHex(3)
	other := p.newTenant(t, otherID, "tenant-admin")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("metering's log:\n%s", p.logLines("service=metering", "http request", 200))
		}
	})
	budgetTopic := followBudgetEvents(t, p.KafkaAddr, tenantID)

	// The catalog's price of the plan rates its node-hours from the hour
	// the plan was created in: no price is set here.
	const planName = "mysql-dev-single-az"
	planID := tenant.planID(planName)
	var cat struct {
		Items []struct {
			Plans []struct {
				ID     string `json:"id"`
				Prices struct {
					Currency string `json:"currency"`
					NodeHour string `json:"node_hour"`
				} `json:"prices"`
			} `json:"plans"`
		} `json:"items"`
	}
	tenant.must("GET", "/api/v1/catalog/services", nil, http.StatusOK, &cat)
	var nodeHour, currency string
	for _, s := range cat.Items {
		for _, pl := range s.Plans {
			if pl.ID == planID {
				nodeHour, currency = pl.Prices.NodeHour, pl.Prices.Currency
			}
		}
	}
	if nodeHour == "" || rat(t, nodeHour).Sign() <= 0 {
		t.Fatalf("plan %s has no node-hour price in the catalog", planName)
	}
	var acc instanceAccepted
	tenant.must("POST", "/api/v1/instances", map[string]any{"name": "metered", "plan_id": planID}, http.StatusAccepted, &acc)
	id := acc.Instance.ID
	t.Cleanup(func() { bestEffortDelete(t, admin, id) })
	waitOperation(t, tenant, acc.OperationID, readyTimeout)

	// Node-hours of the running instance, per hour and instance.
	byInstance := url.Values{"window": {"hour"}, "group_by": {"instance"}}.Encode()
	waitFor(t, "node_hours of the instance", 90*time.Second, func() (bool, string) {
		v, status := tenant.usageValue(byInstance, "node_hours", id)
		return v > 0, status
	})
	// They keep growing while it runs (accrued every few seconds).
	first, _ := tenant.usageValue(byInstance, "node_hours", id)
	waitFor(t, "node_hours to grow", 60*time.Second, func() (bool, string) {
		v, status := tenant.usageValue(byInstance, "node_hours", id)
		return v > first, status
	})

	// What they cost, at the plan's price.
	costQuery := url.Values{"window": {"day"}, "group_by": {"instance,meter"}, "meter": {"node_hours"}}.Encode()
	var costs costReport
	waitFor(t, "a cost for the instance's node-hours", 60*time.Second, func() (bool, string) {
		tenant.must("GET", "/api/v1/costs?"+costQuery, nil, http.StatusOK, &costs)
		for _, c := range costs.Data {
			if c.Instance == id && c.Meter == "node_hours" && rat(t, c.Amount).Sign() > 0 {
				// amount = quantity × price (6 decimals)
				want := new(big.Rat).Mul(new(big.Rat).SetFloat64(c.Quantity), rat(t, nodeHour))
				if diff := new(big.Rat).Sub(want, rat(t, c.Amount)); diff.Abs(diff).Cmp(big.NewRat(1, 100000)) > 0 {
					t.Fatalf("node_hours cost %s for %v node-hours at %s", c.Amount, c.Quantity, nodeHour)
				}
				return c.Currency == currency, fmt.Sprintf("%+v", c)
			}
		}
		return false, fmt.Sprintf("%+v", costs)
	})

	// The same as CSV downloads: a row for the instance.
	for _, path := range []string{"/api/v1/usage?" + byInstance, "/api/v1/costs?" + costQuery} {
		status, body, err := tenant.with("Accept", "text/csv").do("GET", path, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET %s as CSV: %d %v: %s", path, status, err, body)
		}
		rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Fatalf("GET %s as CSV: %v: %q", path, err, body)
		}
		col := -1
		for i, h := range rows[0] {
			if h == "instance_id" {
				col = i
			}
		}
		found := false
		for _, r := range rows[1:] {
			found = found || (col >= 0 && r[col] == id)
		}
		if !found {
			t.Fatalf("GET %s as CSV has no row for instance %s: %q", path, id, body)
		}
	}

	// This month's invoice draft has a node_hours line for it at the plan's
	// price, and its total is the sum of its lines.
	var inv invoice
	tenant.must("GET", "/api/v1/invoices?month="+time.Now().UTC().Format("2006-01"), nil, http.StatusOK, &inv)
	sum, line := new(big.Rat), false
	for _, l := range inv.Lines {
		sum.Add(sum, rat(t, l.Amount))
		line = line || (l.Instance == id && l.Meter == "node_hours" && rat(t, l.UnitPrice).Cmp(rat(t, nodeHour)) == 0 && rat(t, l.Quantity).Sign() > 0)
	}
	if inv.State != "draft" || !line || sum.Cmp(rat(t, inv.Total)) != 0 {
		t.Fatalf("invoice draft: state %s, node_hours line for %s: %v, total %s, sum of lines %s: %+v", inv.State, id, line, inv.Total, sum.FloatString(2), inv)
	}

	// Another tenant sees none of it and cannot ask for it.
	if v, status := other.usageValue(byInstance, "node_hours", id); v != 0 {
		t.Fatalf("another tenant sees the instance's usage: %s", status)
	}
	other.mustProblem("GET", "/api/v1/usage?tenant="+tenantID, nil, http.StatusForbidden)
	other.mustProblem("GET", "/api/v1/costs?tenant="+tenantID, nil, http.StatusForbidden)

	// A meter over CloudEvents, defined by a platform-admin (built-in
	// meters cannot be removed).
	slug := "e2e_calls_" + randHex(3)
	eventType := "com.example.e2e." + slug
	admin.must("POST", "/api/v1/meters", map[string]any{"slug": slug, "name": "E2E calls", "unit": "call",
		"aggregation": "SUM", "event_type": eventType, "value_property": "calls"}, http.StatusCreated, nil)
	t.Cleanup(func() { _ = admin.call("DELETE", "/api/v1/meters/"+slug, nil, http.StatusNoContent, nil) })
	tenant.must("GET", "/api/v1/meters/"+slug, nil, http.StatusOK, nil)
	admin.mustProblem("DELETE", "/api/v1/meters/node_hours", nil, http.StatusConflict)

	// The tenant reports usage; the same event sent twice counts once.
	source := "e2e-gateway-" + randHex(3)
	event := func(id string, calls int, at time.Time) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id, "source": source, "type": eventType,
			"subject": "checkout", "time": at.UTC().Format(time.RFC3339Nano), "data": map[string]any{"calls": calls}}
	}
	now := time.Now()
	var accepted struct {
		Accepted int `json:"accepted"`
	}
	single := tenant.with("Content-Type", "application/cloudevents+json")
	single.must("POST", "/api/v1/usage/events", event("call-1", 12, now), http.StatusAccepted, &accepted)
	single.must("POST", "/api/v1/usage/events", event("call-1", 12, now), http.StatusAccepted, &accepted)
	marker := samePartitionID(t, p.KafkaAddr, source, "call-1")
	tenant.with("Content-Type", "application/cloudevents-batch+json").must("POST", "/api/v1/usage/events",
		[]map[string]any{event(marker, 5, now)}, http.StatusAccepted, &accepted)
	if accepted.Accepted != 1 {
		t.Fatalf("batch of one: accepted %d", accepted.Accepted)
	}
	callsQuery := url.Values{"meter": {slug}, "window": {"day"}, "group_by": {"instance"}}.Encode()
	waitFor(t, "the event after the duplicate to be counted", 60*time.Second, func() (bool, string) {
		v, status := tenant.usageValue(callsQuery, slug, "checkout")
		return v >= 17, status
	})
	if v, status := tenant.usageValue(callsQuery, slug, "checkout"); v != 17 {
		t.Fatalf("12 calls sent twice and 5 once: %s, want 17", status)
	}

	// Invalid events are refused whole, naming the field.
	bad := event("call-2", 1, now)
	delete(bad, "source")
	prob := tenant.mustProblem("POST", "/api/v1/usage/events", []map[string]any{event("call-3", 1, now), bad}, http.StatusBadRequest)
	if len(prob.Errors) == 0 || prob.Errors[0].Field != "[1].source" {
		t.Fatalf("a batch without [1].source: %+v", prob)
	}
	// Another tenant can report neither for this tenant nor for its instance.
	forOther := event("call-4", 1, now)
	forOther["tenantid"] = tenantID
	other.mustProblem("POST", "/api/v1/usage/events", forOther, http.StatusForbidden)
	onInstance := event("call-5", 1, now)
	onInstance["subject"] = id
	other.mustProblem("POST", "/api/v1/usage/events", onInstance, http.StatusForbidden)

	// An event older than the grace window is listed as late, not counted.
	tenant.must("POST", "/api/v1/usage/events", event("call-late", 1000, now.Add(-3*time.Hour)), http.StatusAccepted, nil)
	waitFor(t, "the late event to be listed", 60*time.Second, func() (bool, string) {
		var late struct {
			Items []struct {
				EventID string `json:"event_id"`
				Source  string `json:"source"`
			} `json:"items"`
		}
		tenant.must("GET", "/api/v1/usage/late", nil, http.StatusOK, &late)
		for _, l := range late.Items {
			if l.EventID == "call-late" && l.Source == source {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", late.Items)
	})
	if v, status := tenant.usageValue(callsQuery, slug, "checkout"); v != 17 {
		t.Fatalf("after a late event: %s, want 17", status)
	}

	// A budget low enough to trip at once: the calls are priced for every
	// plan at 1.00 from this hour, so the month costs at least 17.00.
	admin.must("POST", "/api/v1/prices", map[string]any{"plan_id": "*", "meter": slug, "unit_price": "1.00",
		"currency": currency, "effective_from": time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)}, http.StatusCreated, nil)
	tenant.must("PUT", "/api/v1/budget", map[string]any{"amount": "1.00"}, http.StatusOK, nil)
	waitFor(t, "metering.budget.threshold at 80 and 100 % of the actual cost on canopy.usage.v1", 90*time.Second, func() (bool, string) {
		evs, err := budgetTopic.events()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, e := range evs {
			if e.Tenant != tenantID || e.Budget != "1.00" {
				t.Fatalf("budget event of another budget: %+v", e)
			}
			got[fmt.Sprintf("%s/%d", e.Kind, e.Threshold)]++
		}
		for k, n := range got {
			if n > 1 {
				t.Fatalf("threshold %s announced %d times", k, n)
			}
		}
		return got["actual/80"] == 1 && got["actual/100"] == 1, fmt.Sprintf("%+v", evs)
	})
	var b budget
	tenant.must("GET", "/api/v1/budget", nil, http.StatusOK, &b)
	crossed := map[string]bool{}
	for _, c := range b.Crossings {
		crossed[fmt.Sprintf("%s/%d", c.Kind, c.Threshold)] = true
	}
	if !crossed["actual/80"] || !crossed["actual/100"] || rat(t, b.Actual).Cmp(rat(t, "17")) < 0 {
		t.Fatalf("budget after the crossings: %+v", b)
	}
	other.mustProblem("GET", "/api/v1/budget?tenant="+tenantID, nil, http.StatusForbidden)
}

package metering_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/svctest"
)

// publish sends one Canopy event to topic, as the producing service would.
func publish(t *testing.T, pub *eventbus.Publisher, topic, typ, source, key, tenant string, at time.Time, payload any) {
	t.Helper()
	e, err := eventbus.NewEvent(typ, source, key, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.Time, e.Tenant = at, tenant
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, topic, e); err != nil {
		t.Fatal(err)
	}
}

// TestNodeHoursOfShortLivedInstanceArePricedByThePlan follows an instance
// that lives 90 s through provisioning's real lifecycle events and the
// catalog's plan event: its node-hours are exact to the second and its
// cost is those hours at the plan's node-hour price.
func TestNodeHoursOfShortLivedInstanceArePricedByThePlan(t *testing.T) {
	broker := svctest.StartKafka(t)
	svc := startService(t, broker, nil)
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: []string{broker}, Source: "/test"}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	now := time.Now().UTC()
	planCreated := now.Add(-3 * time.Hour)
	plan := events.Plan{ID: "plan-small-" + svctest.RandHex(t, 3), Name: "mysql-single-small", Engine: "mysql", DeploymentMode: "single-az",
		Resources: events.PlanResources{VCPU: 1, MemoryMB: 2048, StorageGB: 20},
		Prices:    events.PlanPrices{Currency: "USD", NodeHour: "0.030", StorageGBHour: "0.000140"},
		State:     "active", CreatedAt: planCreated, UpdatedAt: planCreated, Size: "small"}
	publish(t, pub, events.TopicCatalog, events.TypePlanCreated, events.SourceCatalog, plan.ID, "", planCreated, events.PlanEvent{Plan: plan})

	ready := now.Add(-20 * time.Minute).Truncate(time.Second)
	deleted := ready.Add(90 * time.Second)
	in := events.Instance{InstanceID: "in-" + svctest.RandHex(t, 4), TenantID: "acme", Name: "orders", PlanID: plan.ID, Engine: "mysql",
		DeploymentMode: "single-az", VCPU: 1, MemoryMB: 2048, StorageGB: 20,
		Nodes: []events.Node{{ID: "n1", Name: "orders-0", Role: "primary", Region: "eu-1", AZ: "eu-1a", Host: "h1", Address: "127.0.0.1:1", State: "running"}}}
	for _, step := range []struct {
		typ, state, node string
		at               time.Time
	}{
		{events.TypeInstanceRequested, "provisioning", "pending", ready.Add(-time.Minute)},
		{events.TypeInstanceReady, "ready", "running", ready},
		{events.TypeInstanceDeleting, "deleting", "running", deleted.Add(-time.Second)},
		{events.TypeInstanceDeleted, "deleted", "destroyed", deleted},
	} {
		in.State, in.Nodes[0].State, in.OccurredAt = step.state, step.node, step.at
		publish(t, pub, events.TopicInstances, step.typ, events.SourceProvisioning, in.InstanceID, in.TenantID, step.at, in)
	}

	from, to := now.Add(-2*time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	q := url.Values{"meter": {"node_hours"}, "window": {"hour"}, "group_by": {"instance"}, "from": {from}, "to": {to}}.Encode()
	want := 90.0 / 3600
	svctest.WaitFor(t, "node_hours of the 90 s instance", time.Minute, func() (bool, string) {
		rows, err := svc.usage(acme, q)
		if err != nil {
			return false, err.Error()
		}
		var got float64
		for _, r := range rows {
			if r.Instance == in.InstanceID {
				got += r.Value
			}
		}
		return math.Abs(got-want) < 1e-6, fmt.Sprintf("%v, want %v (%d rows)", got, want, len(rows))
	})

	// The plan and the instance come on different topics: the usage may
	// be counted before the plan's price is known, so wait for the price.
	cq := url.Values{"meter": {"node_hours"}, "window": {"day"}, "group_by": {"instance,meter"}, "from": {from}, "to": {to}}.Encode()
	svctest.WaitFor(t, "node_hours priced at the plan's node-hour price", time.Minute, func() (bool, string) {
		var costs struct {
			Data []struct {
				Instance string `json:"instance_id"`
				Meter    string `json:"meter"`
				Amount   string `json:"amount"`
				Currency string `json:"currency"`
			} `json:"data"`
		}
		if err := svc.Call(acme, http.MethodGet, "/api/v1/costs?"+cq, nil, &costs); err != nil {
			return false, err.Error()
		}
		var amount float64
		for _, c := range costs.Data {
			if c.Instance == in.InstanceID && c.Meter == "node_hours" {
				a, err := strconv.ParseFloat(c.Amount, 64)
				if err != nil {
					t.Fatal(err)
				}
				amount += a
				if c.Currency != "USD" {
					t.Fatalf("currency %q, want USD", c.Currency)
				}
			}
		}
		return math.Abs(amount-want*0.030) < 1e-6, fmt.Sprintf("cost %v, want %v (%+v)", amount, want*0.030, costs.Data)
	})
}

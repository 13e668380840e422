package scheduling_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling"
)

const secret = "scheduling-test-secret-0123456789"

type client struct {
	t    *testing.T
	base string
	role tenancy.Role
}

func (c client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.role != "" {
		p := tenancy.Principal{Role: c.role, Subject: "test"}
		if c.role != tenancy.RolePlatformAdmin {
			p.Tenant = "acme"
		}
		tenancy.NewSigner([]byte(secret)).SignRequest(req, b, tenancy.AudienceScheduling, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if strings.Contains(path, ":") || !strings.Contains(path, "/simulate") && !strings.HasSuffix(path, "/uncordon") && !strings.HasSuffix(path, "/cordon") {
		check, _ := http.NewRequest(method, c.base+path, nil)
		validateResponse(c.t, check, resp.StatusCode, resp.Header, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// TestService runs the whole service against MariaDB and the embedded broker:
// the dev inventory is loaded, a platform admin lists it, simulates a
// multi-az placement, cordons hosts until it becomes impossible and reads
// why; a placement request on Kafka is decided and confirmed.
func TestService(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	logger := slog.New(slog.DiscardHandler)
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: "/test"}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	store := storetest.NewConfig(t, "scheduling_svc")
	cfg := scheduling.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MySQLDSN, cfg.Database = store.DSN, store.Database
	cfg.InternalSecret = secret
	cfg.InventoryFile = "../../deploy/inventory/dev.yaml"
	cfg.Kafka.Brokers = brokers
	cfg.Consumer.SessionTimeout = 2 * time.Second
	cfg.Relay.PollInterval = 20 * time.Millisecond
	svc, err := scheduling.New(cfg, scheduling.Deps{Logger: logger, Registry: obs.NewRegistry(), Publisher: schemaChecked(t, pub)})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-runErr:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready")
	}
	admin := client{t: t, base: "http://" + svc.Addr() + "/api/v1", role: tenancy.RolePlatformAdmin}

	if code, _ := (client{t: t, base: admin.base}).do("GET", "/inventory/hosts", nil); code != 401 {
		t.Fatalf("anonymous: %d", code)
	}
	if code, _ := (client{t: t, base: admin.base, role: tenancy.RoleTenantAdmin}).do("GET", "/inventory/hosts", nil); code != 403 {
		t.Fatalf("tenant admin: %d", code)
	}
	code, body := admin.do("GET", "/inventory/hosts?limit=500", nil)
	if code != 200 || len(body["items"].([]any)) != 24 {
		t.Fatalf("hosts: %d %v", code, body)
	}
	code, body = admin.do("GET", "/inventory/latencies", nil)
	if code != 200 || len(body["items"].([]any)) != 7 {
		t.Fatalf("latencies: %d %v", code, body)
	}
	code, body = admin.do("GET", "/inventory/zones?region=eu-west", nil)
	if code != 200 || len(body["items"].([]any)) != 3 {
		t.Fatalf("zones: %d %v", code, body)
	}
	code, body = admin.do("GET", "/inventory/hosts/eu-west-2-h3", nil)
	if code != 200 || body["zone"] != "eu-west-2" {
		t.Fatalf("host: %d %v", code, body)
	}
	code, body = admin.do("GET", "/inventory/regions", nil)
	if code != 200 || len(body["items"].([]any)) != 2 {
		t.Fatalf("regions: %d %v", code, body)
	}

	plan := map[string]any{"engine": "mysql", "deployment_mode": "multi-az", "region": "eu-central", "nodes": []map[string]any{
		{"role": "primary", "vcpu": 2, "memory_mb": 8192, "storage_gb": 50},
		{"role": "replica", "vcpu": 2, "memory_mb": 8192, "storage_gb": 50},
		{"role": "replica", "vcpu": 2, "memory_mb": 8192, "storage_gb": 50}}}
	code, body = admin.do("POST", "/placements:simulate", plan)
	if code != 200 || len(body["nodes"].([]any)) != 3 {
		t.Fatalf("simulate: %d %v", code, body)
	}
	azs := map[any]bool{}
	for _, n := range body["nodes"].([]any) {
		azs[n.(map[string]any)["az"]] = true
	}
	if len(azs) != 3 {
		t.Fatalf("not spread: %v", body)
	}

	bad := map[string]any{"deployment_mode": "multi-az", "nodes": []map[string]any{{"role": "primary", "vcpu": 1, "memory_mb": -1, "storage_gb": 1}}}
	code, body = admin.do("POST", "/placements:simulate", bad)
	if code != 400 || !strings.Contains(toJSON(body["errors"]), "nodes[0].memory_mb") {
		t.Fatalf("bad input: %d %v", code, body)
	}
	code, _ = admin.do("POST", "/placements:simulate", map[string]any{"nodes": "x"})
	if code != 400 {
		t.Fatalf("wrong type: %d", code)
	}

	for _, h := range []string{"eu-central-3-h1", "eu-central-3-h2", "eu-central-3-h3", "eu-central-3-h4"} {
		if code, body := admin.do("POST", "/inventory/hosts/"+h+":cordon", nil); code != 200 || body["state"] != "cordoned" {
			t.Fatalf("cordon %s: %d %v", h, code, body)
		}
	}
	code, body = admin.do("POST", "/placements:simulate", plan)
	detail, _ := body["detail"].(string)
	if code != 422 || !strings.Contains(detail, "multi-az needs 3 AZs with capacity in eu-central, 2 have") || !strings.Contains(detail, "eu-central-3 cordoned") {
		t.Fatalf("refusal: %d %v", code, body)
	}
	if !strings.Contains(toJSON(body["filters"]), `{"name":"host-ready","reason":"cordoned","rejected":4}`) {
		t.Fatalf("filters: %v", body["filters"])
	}
	if code, _ := admin.do("POST", "/inventory/hosts/eu-central-3-h1/uncordon", nil); code != 200 {
		t.Fatalf("uncordon: %d", code)
	}
	if code, _ := admin.do("POST", "/placements/simulate", plan); code != 200 {
		t.Fatalf("simulate after uncordon: %d", code)
	}

	// Operators grow the inventory; the scheduler uses it at once.
	if code, body := admin.do("POST", "/inventory/regions", map[string]any{"id": "eu-north", "name": "EU North",
		"latencies": []map[string]any{{"to": "eu-central", "p95_ms": 30}, {"to": "eu-west", "p95_ms": 40}}}); code != 201 {
		t.Fatalf("create region: %d %v", code, body)
	}
	if code, body := admin.do("POST", "/inventory/zones", map[string]any{"id": "eu-north-1", "region": "eu-north"}); code != 201 {
		t.Fatalf("create zone: %d %v", code, body)
	}
	if code, body := admin.do("POST", "/inventory/hosts", map[string]any{"id": "eu-north-1-h1", "zone": "eu-north-1", "address": "127.0.0.1",
		"ports": map[string]any{"from": 23000, "to": 23099}, "capacity": map[string]any{"vcpu": 16, "memory_mb": 65536, "storage_gb": 1000},
		"labels": map[string]string{"disk": "nvme"}}); code != 201 || body["region"] != "eu-north" {
		t.Fatalf("create host: %d %v", code, body)
	}
	if code, body := admin.do("PATCH", "/inventory/hosts/eu-north-1-h1", map[string]any{"price": map[string]any{"per_vcpu_hour": 0.01, "per_gb_hour": 0.001}}); code != 200 {
		t.Fatalf("patch host: %d %v", code, body)
	}
	if code, body := admin.do("PATCH", "/inventory/zones/eu-north-1", map[string]any{"name": "EU North 1"}); code != 200 || body["name"] != "EU North 1" {
		t.Fatalf("patch zone: %d %v", code, body)
	}
	north := map[string]any{"deployment_mode": "single-az", "region": "eu-north", "nodes": []map[string]any{{"role": "primary", "vcpu": 4, "memory_mb": 16384, "storage_gb": 100}}}
	code, body = admin.do("POST", "/placements:simulate", north)
	if code != 200 || body["nodes"].([]any)[0].(map[string]any)["host"] != "eu-north-1-h1" {
		t.Fatalf("simulate in new region: %d %v", code, body)
	}

	// A placement request over Kafka is decided, published and confirmed.
	var mu sync.Mutex
	var seen []eventbus.Event
	sub, err := eventbus.NewSubscriber(eventbus.SubscriberConfig{Brokers: brokers, GroupID: "test-observer", Topics: []string{scheduling.TopicPlacements}, SessionTimeout: 2 * time.Second},
		func(_ context.Context, e eventbus.Event) error {
			mu.Lock()
			seen = append(seen, e)
			mu.Unlock()
			return nil
		}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Run(subCtx) }()
	defer func() { stopSub(); <-subDone }()

	reqEv, _ := eventbus.NewEvent("scheduling.placement.requested", "/services/provisioning", "inst-k1", map[string]any{
		"instance_id": "inst-k1", "tenant_id": "acme", "deployment_mode": "multi-az", "nodes": plan["nodes"]})
	reqEv.Tenant = "acme"
	badEv, _ := eventbus.NewEvent("scheduling.placement.requested", "/services/provisioning", "inst-k2", map[string]any{
		"instance_id": "inst-k2", "deployment_mode": "sideways", "nodes": plan["nodes"]})
	if err := pub.Publish(ctx, scheduling.TopicPlacements, reqEv, badEv); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		var decided, failed bool
		for _, e := range seen {
			decided = decided || (e.Type == "scheduling.placement.decided" && e.Key == "inst-k1" && e.Tenant == "acme")
			failed = failed || (e.Type == "scheduling.placement.failed" && e.Key == "inst-k2")
		}
		return decided && failed
	})
	code, body = admin.do("GET", "/placements/inst-k1", nil)
	if code != 200 || body["status"] != "reserved" || len(body["nodes"].([]any)) != 3 {
		t.Fatalf("placement: %d %v", code, body)
	}

	// Many requests at once: the consumers hand them to the batcher, which
	// writes those pending together in one transaction; each is answered.
	var burst []eventbus.Event
	for i := 0; i < 24; i++ {
		id := fmt.Sprintf("inst-b%02d", i)
		e, _ := eventbus.NewEvent("scheduling.placement.requested", "/services/provisioning", id, map[string]any{
			"instance_id": id, "tenant_id": "acme", "deployment_mode": "multi-az", "nodes": plan["nodes"]})
		e.Tenant = "acme"
		burst = append(burst, e)
	}
	if err := pub.Publish(ctx, scheduling.TopicPlacements, burst...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		answered := map[string]bool{}
		for _, e := range seen {
			if e.Type == "scheduling.placement.decided" || e.Type == "scheduling.placement.failed" {
				answered[e.Key] = true
			}
		}
		for _, e := range burst {
			if !answered[e.Key] {
				return false
			}
		}
		return true
	})
	for _, e := range burst {
		code, body := admin.do("GET", "/placements/"+e.Key, nil)
		if code != 200 || (body["status"] != "reserved" && body["status"] != "failed") {
			t.Fatalf("placement %s: %d %v", e.Key, code, body)
		}
	}
	code, body = admin.do("GET", "/inventory/hosts?limit=500", nil)
	for _, h := range body["items"].([]any) {
		free := h.(map[string]any)["free"].(map[string]any)
		for _, k := range []string{"vcpu", "memory_mb", "storage_gb"} {
			if v, _ := free[k].(float64); v < 0 {
				t.Fatalf("host overcommitted: %v", h)
			}
		}
	}
	// Events whose tenant header is not the placement's tenant are
	// dead-lettered, never acted upon: a forged failure does not free
	// inst-k1's reservation, a request whose header and payload disagree is
	// not placed. The genuine ready event after them (same key, same
	// partition) confirms the reservation.
	forgedFail, _ := eventbus.NewEvent("provisioning.instance.failed", "/services/provisioning", "inst-k1", map[string]any{"instance_id": "inst-k1", "tenant_id": "evil"})
	forgedFail.Tenant = "evil"
	forgedReq, _ := eventbus.NewEvent("scheduling.placement.requested", "/services/provisioning", "inst-f1", map[string]any{
		"instance_id": "inst-f1", "tenant_id": "acme", "deployment_mode": "multi-az", "nodes": plan["nodes"]})
	forgedReq.Tenant = "evil"
	if err := pub.Publish(ctx, "canopy.instances.v1", forgedFail); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, scheduling.TopicPlacements, forgedReq); err != nil {
		t.Fatal(err)
	}
	readyEv, _ := eventbus.NewEvent("provisioning.instance.ready", "/services/provisioning", "inst-k1", map[string]any{"instance_id": "inst-k1", "tenant_id": "acme"})
	readyEv.Tenant = "acme"
	if err := pub.Publish(ctx, "canopy.instances.v1", readyEv); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, body := admin.do("GET", "/placements/inst-k1", nil)
		return body["status"] == "confirmed"
	})
	for topic, key := range map[string]string{"canopy.instances.v1": "inst-k1", scheduling.TopicPlacements: "inst-f1"} {
		m := readDLQ(t, brokers, topic)
		if string(m.Key) != key || dlqHeader(m, eventbus.HeaderDLQClass) != "poison" || !strings.Contains(dlqHeader(m, eventbus.HeaderDLQReason), eventbus.ErrTenantMismatch.Error()) {
			t.Errorf("%s.dlq: key %s class %q reason %q", topic, m.Key, dlqHeader(m, eventbus.HeaderDLQClass), dlqHeader(m, eventbus.HeaderDLQReason))
		}
	}
	if code, _ := admin.do("GET", "/placements/inst-f1", nil); code != 404 {
		t.Errorf("forged request placed: %d", code)
	}
	if code, _ := admin.do("GET", "/placements/nope", nil); code != 404 {
		t.Fatalf("unknown placement: %d", code)
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("service did not stop")
	}
}

// readDLQ returns the first record of topic's dead-letter topic.
func readDLQ(t *testing.T, brokers []string, topic string) kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "test-dlq-" + topic, GroupTopics: []string{topic + ".dlq"},
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, SessionTimeout: 2 * time.Second, RebalanceTimeout: 2 * time.Second})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("read %s.dlq: %v", topic, err)
	}
	return m
}

func dlqHeader(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/httpapi"
)

// publishFailover publishes a failover.* event as the failover service would.
func publishFailover(t *testing.T, e *env, typ, instanceID, tenant string, payload any) {
	t.Helper()
	ev, err := eventbus.NewEvent(typ, events.SourceFailover, instanceID, payload)
	if err != nil {
		t.Fatal(err)
	}
	ev.Tenant = tenant
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.pub.Publish(ctx, events.TopicFailover, ev); err != nil {
		t.Fatal(err)
	}
}

// instanceTopology is what GET /api/v1/instances/{id} says of the roles.
type instanceTopology struct {
	roles    map[string]string // node id → role
	addr     map[string]string // node id → address
	primary  string
	replicas []string
}

func topologyOf(t *testing.T, inst map[string]any) instanceTopology {
	t.Helper()
	tp := instanceTopology{roles: map[string]string{}, addr: map[string]string{}}
	for _, n := range inst["nodes"].([]any) {
		nm := n.(map[string]any)
		tp.roles[nm["id"].(string)] = nm["role"].(string)
		tp.addr[nm["id"].(string)] = nm["address"].(string)
	}
	ep := inst["endpoints"].(map[string]any)
	tp.primary = ep["primary"].(string)
	for _, r := range ep["replicas"].([]any) {
		tp.replicas = append(tp.replicas, r.(string))
	}
	slices.Sort(tp.replicas)
	return tp
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// The failover service's side of provisioning on a multi-az Redis: its
// internal view (its identity only), fault injection with the supervisor
// restarting the killed node read-only, and failover outcomes moving the
// roles and endpoints the API shows, idempotently and in order.
func TestFailoverViewFaultsAndTopology(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil)
	s.start()
	c := s.as("acme")
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "ha-cache", "plan_id": planRedisHA})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	inst := c.waitState(id, readyWithin, "ready", "failed")
	if inst["state"] != "ready" {
		t.Fatalf("instance failed: %v", inst["reason"])
	}
	tp := topologyOf(t, inst)
	n0, n1, n2 := id+"-n0", id+"-n1", id+"-n2"
	if tp.roles[n0] != "primary" || tp.primary != tp.addr[n0] {
		t.Fatalf("initial topology %+v", tp)
	}

	// The view: every node with role, placement and promotion rule, the
	// admin and replication accounts; for service:failover only.
	fo := &client{t: t, s: s, role: tenancy.RolePlatformAdmin, subject: httpapi.FailoverReader}
	v := fo.do("GET", httpapi.FailoverPath+"/"+id, nil)
	if v.status != http.StatusOK {
		t.Fatalf("failover view: %d %s", v.status, v.body)
	}
	view := v.json(t)
	if view["engine"] != "redis" || view["deployment_mode"] != "multi-az" || view["tenant_id"] != "acme" || view["region"] != "local" ||
		view["admin"].(map[string]any)["password"] == "" || view["replication"].(map[string]any)["username"] == "" {
		t.Errorf("failover view: %s", v.body)
	}
	nodes := view["nodes"].([]any)
	if len(nodes) != 3 {
		t.Fatalf("failover view has %d nodes: %s", len(nodes), v.body)
	}
	for _, n := range nodes {
		nm := n.(map[string]any)
		if nm["promotion_rule"] != "neutral" || nm["zone"] == "" || nm["region"] != "local" || nm["role"] != tp.roles[nm["id"].(string)] {
			t.Errorf("failover view node: %v", nm)
		}
	}
	if l := fo.do("GET", httpapi.FailoverPath+"?limit=500", nil); l.status != http.StatusOK || !strings.Contains(string(l.body), id) {
		t.Errorf("failover list: %d %s", l.status, l.body)
	}
	fault := httpapi.FailoverPath + "/" + id + "/nodes/" + n0 + "/fault"
	for _, other := range []*client{c, {t: t, s: s, role: tenancy.RolePlatformAdmin, subject: "apikey:root"}, {t: t, s: s, role: tenancy.RolePlatformAdmin, subject: httpapi.MonitorReader}} {
		for _, rq := range []struct {
			m, p string
			body any
		}{{"GET", httpapi.FailoverPath + "/" + id, nil}, {"GET", httpapi.FailoverPath, nil}, {"POST", fault, map[string]any{"kind": "kill"}}} {
			if got := other.do(rq.m, rq.p, rq.body); got.status != http.StatusNotFound || strings.Contains(string(got.body), "password") {
				t.Errorf("%s %s %s: %d %s", other.subject, rq.m, rq.p, got.status, got.body)
			}
		}
	}

	// Faults: a bad kind, an unknown node; then kill -9 of the primary,
	// which the supervisor restarts read-only.
	if got := fo.do("POST", fault, map[string]any{"kind": "explode"}); got.status != http.StatusBadRequest {
		t.Errorf("fault kind explode: %d %s", got.status, got.body)
	}
	if got := fo.do("POST", httpapi.FailoverPath+"/"+id+"/nodes/nope/fault", map[string]any{"kind": "kill"}); got.status != http.StatusNotFound {
		t.Errorf("fault on an unknown node: %d %s", got.status, got.body)
	}
	before := nodePIDs(s.stateDir)[n0]
	if got := fo.do("POST", fault, map[string]any{"kind": "kill"}); got.status != http.StatusNoContent {
		t.Fatalf("kill the primary: %d %s", got.status, got.body)
	}
	admin := view["admin"].(map[string]any)
	rc := goredis.NewClient(&goredis.Options{Addr: tp.addr[n0], Username: admin["username"].(string), Password: admin["password"].(string),
		DialTimeout: time.Second, MaxRetries: -1})
	defer rc.Close()
	eventually(t, 30*time.Second, "killed primary restarted by the supervisor, read-only", func() error {
		if pid := nodePIDs(s.stateDir)[n0]; pid == 0 || pid == before {
			return fmt.Errorf("pid %d (was %d)", pid, before)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		role, err := rc.Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "slave" {
			return fmt.Errorf("ROLE %v", role)
		}
		if err := rc.Set(ctx, "after-restart", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
			return fmt.Errorf("write on the restarted primary: %v", err)
		}
		return nil
	})

	// A completed failover: n1 promoted, n0 fenced.
	completed := func(token int64, recovery string, roles map[string]string) events.Recovery {
		return events.Recovery{RecoveryID: recovery, InstanceID: id, TenantID: "acme", Engine: "redis", Kind: events.RecoveryDrill,
			Problem: "DeadPrimary", State: "completed", OldPrimary: n0, Roles: roles, FencingToken: token, DetectedAt: time.Now()}
	}
	publishFailover(t, e, events.TypeFailoverCompleted, id, "acme", completed(2, "rec-2", map[string]string{n0: "fenced", n1: "primary", n2: "replica"}))
	eventually(t, 30*time.Second, "roles follow the failover", func() error {
		got := topologyOf(t, c.do("GET", "/api/v1/instances/"+id, nil).json(t))
		if got.roles[n1] != "primary" || got.roles[n0] != "replica" || got.primary != tp.addr[n1] || !slices.Equal(got.replicas, []string{tp.addr[n2]}) {
			return fmt.Errorf("topology %+v", got)
		}
		return nil
	})
	checkRouterView(t, s, c, id, "ha-cache", 2, map[string]string{n0: "fenced", n1: "primary", n2: "replica"})

	// The driver records the roles for the nodes' next starts: the
	// replica follows the new primary, the fenced node nothing reachable.
	eventually(t, 10*time.Second, "driver follows the new roles", func() error {
		for node, want := range map[string]string{n2: strings.Replace(tp.addr[n1], ":", " ", 1), n0: "127.0.0.1 1"} {
			b, err := os.ReadFile(filepath.Join(s.stateDir, "nodes", node, "redis.conf"))
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "replicaof "+want+"\n") {
				return fmt.Errorf("%s's redis.conf does not follow %s", node, want)
			}
		}
		return nil
	})
	if v := fo.do("GET", httpapi.FailoverPath+"/"+id, nil).json(t); !strings.Contains(fmt.Sprint(v["nodes"]), "fenced:true") {
		t.Errorf("failover view does not show the fenced node: %v", v["nodes"])
	}

	// An older outcome (and a redelivery) change nothing; the rejoin that
	// follows on the same partition shows they were consumed.
	publishFailover(t, e, events.TypeFailoverCompleted, id, "acme", completed(1, "rec-1", map[string]string{n0: "primary", n1: "replica", n2: "replica"}))
	publishFailover(t, e, events.TypeFailoverCompleted, id, "acme", completed(2, "rec-2", map[string]string{n0: "fenced", n1: "primary", n2: "replica"}))
	publishFailover(t, e, events.TypeNodeRejoined, id, "acme", events.NodeRejoined{InstanceID: id, TenantID: "acme", NodeID: n0, Primary: n1, OccurredAt: time.Now()})
	eventually(t, 30*time.Second, "rejoined node back among the replicas", func() error {
		got := topologyOf(t, c.do("GET", "/api/v1/instances/"+id, nil).json(t))
		if !slices.Equal(got.replicas, sorted(tp.addr[n0], tp.addr[n2])) {
			return fmt.Errorf("topology %+v", got)
		}
		if got.roles[n1] != "primary" || got.primary != tp.addr[n1] {
			t.Fatalf("an older failover outcome was applied: %+v", got)
		}
		return nil
	})

	// The health checker's view follows the roles too.
	hc := &client{t: t, s: s, role: tenancy.RolePlatformAdmin, subject: httpapi.MonitorReader}
	if mv := hc.do("GET", httpapi.MonitoringPath+"/"+id, nil); !strings.Contains(string(mv.body), `"id":"`+n1+`","role":"primary"`) {
		t.Errorf("monitoring view after failover: %s", mv.body)
	}
}

// checkRouterView checks the router's side of an instance: its view (for
// service:router only, with the roles, the fencing token, the port pair
// and binding verifiers, never a password), the instance's router
// endpoints and a binding's credentials naming the read-write endpoint.
func checkRouterView(t *testing.T, s *stack, c *client, id, name string, token int64, roles map[string]string) {
	t.Helper()
	rt := &client{t: t, s: s, role: tenancy.RolePlatformAdmin, subject: httpapi.RouterReader}
	br := c.do("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "router-app"})
	if br.status != http.StatusCreated {
		t.Fatalf("bind: %d %s", br.status, br.body)
	}
	creds := br.json(t)["credentials"].(map[string]any)
	v := rt.do("GET", httpapi.RouterPath+"/"+id, nil)
	if v.status != http.StatusOK || strings.Contains(string(v.body), creds["password"].(string)) || strings.Contains(string(v.body), `password"`) {
		t.Fatalf("router view: %d %s", v.status, v.body)
	}
	view := v.json(t)
	ports := view["endpoints"].(map[string]any)
	rw, ro := int(ports["rw_port"].(float64)), int(ports["ro_port"].(float64))
	if rw < 16000 || rw > 16999 || ro < 16000 || ro > 16999 || rw == ro || view["failover_token"] != float64(token) || view["name"] != name {
		t.Errorf("router view: %s", v.body)
	}
	for _, n := range view["nodes"].([]any) {
		nm := n.(map[string]any)
		if nm["role"] != roles[nm["id"].(string)] {
			t.Errorf("router view node %v, want role %s", nm, roles[nm["id"].(string)])
		}
	}
	sum := sha256.Sum256([]byte(creds["password"].(string)))
	if !strings.Contains(string(v.body), `"username":"`+creds["username"].(string)+`","password_sha256":"`+hex.EncodeToString(sum[:])+`"`) {
		t.Errorf("router view lacks the binding's verifier: %s", v.body)
	}
	if l := rt.do("GET", httpapi.RouterPath+"?limit=500", nil); l.status != http.StatusOK || !strings.Contains(string(l.body), id) {
		t.Errorf("router list: %d %s", l.status, l.body)
	}
	for _, other := range []*client{c, {t: t, s: s, role: tenancy.RolePlatformAdmin, subject: httpapi.FailoverReader}} {
		if got := other.do("GET", httpapi.RouterPath+"/"+id, nil); got.status != http.StatusNotFound {
			t.Errorf("%s reads the router view: %d", other.subject, got.status)
		}
	}
	rwAddr, roAddr := fmt.Sprintf("127.0.0.1:%d", rw), fmt.Sprintf("127.0.0.1:%d", ro)
	ep := c.do("GET", "/api/v1/instances/"+id, nil).json(t)["endpoints"].(map[string]any)
	if ep["rw"] != rwAddr || ep["ro"] != roAddr || ep["sentinel"] != "127.0.0.1:26380" || ep["master_name"] != name {
		t.Errorf("instance endpoints %v, want rw %s ro %s", ep, rwAddr, roAddr)
	}
	ce, _ := creds["endpoints"].(map[string]any)
	if creds["host"] != "127.0.0.1" || creds["port"] != float64(rw) || ce["rw"] != rwAddr || ce["ro"] != roAddr || ce["master_name"] != name {
		t.Errorf("credentials %v, want the read-write endpoint %s", creds, rwAddr)
	}
}

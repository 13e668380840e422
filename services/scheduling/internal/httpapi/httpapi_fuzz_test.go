package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/httpapi"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// memInventory stands in for mysqlrepo.Repo without a database: the dev
// inventory in memory, every write checked with the same inventory
// validation (and latency-matrix check) the repository runs, nothing stored.
type memInventory struct{ inv inventory.Inventory }

func (m *memInventory) ListRegions(context.Context) ([]inventory.Region, error) {
	return m.inv.Regions, nil
}
func (m *memInventory) ListLatencies(context.Context) ([]inventory.Latency, error) {
	return m.inv.Latencies, nil
}
func (m *memInventory) ListZones(context.Context, string) ([]inventory.Zone, error) {
	return m.inv.Zones, nil
}
func (m *memInventory) ListHosts(context.Context, inventory.HostFilter) ([]inventory.Host, error) {
	return m.inv.Hosts, nil
}
func (m *memInventory) GetHost(_ context.Context, id string) (inventory.Host, error) {
	for _, h := range m.inv.Hosts {
		if h.ID == id {
			return h, nil
		}
	}
	return inventory.Host{}, fmt.Errorf("host %s: %w", id, inventory.ErrNotFound)
}

// check validates with field as the repository does, then the topology with
// the extra regions, zones and latencies.
func (m *memInventory) check(validate func(*inventory.ValidationError), regions []inventory.Region, zones []inventory.Zone, lat []inventory.Latency) error {
	ve := &inventory.ValidationError{}
	validate(ve)
	if err := ve.Err(); err != nil {
		return err
	}
	if len(lat) == 0 {
		return nil
	}
	_, err := inventory.NewTopology(append(append([]inventory.Region(nil), m.inv.Regions...), regions...),
		append(append([]inventory.Zone(nil), m.inv.Zones...), zones...), append(append([]inventory.Latency(nil), m.inv.Latencies...), lat...))
	return err
}

func (m *memInventory) CreateRegion(_ context.Context, r inventory.Region, lat []inventory.Latency) error {
	return m.check(func(ve *inventory.ValidationError) { inventory.ValidateRegion(ve, "", r) }, []inventory.Region{r}, nil, lat)
}
func (m *memInventory) UpdateRegion(_ context.Context, id string, fn func(*inventory.Region) error, lat []inventory.Latency) (inventory.Region, error) {
	for _, r := range m.inv.Regions {
		if r.ID == id {
			if err := fn(&r); err != nil {
				return r, err
			}
			return r, m.check(func(ve *inventory.ValidationError) { inventory.ValidateRegion(ve, "", r) }, nil, nil, lat)
		}
	}
	return inventory.Region{}, fmt.Errorf("region %s: %w", id, inventory.ErrNotFound)
}
func (m *memInventory) CreateZone(_ context.Context, z inventory.Zone, lat []inventory.Latency) error {
	return m.check(func(ve *inventory.ValidationError) { inventory.ValidateZone(ve, "", z) }, nil, []inventory.Zone{z}, lat)
}
func (m *memInventory) UpdateZone(_ context.Context, id string, name *string, lat []inventory.Latency) (inventory.Zone, error) {
	for _, z := range m.inv.Zones {
		if z.ID == id {
			if name != nil {
				z.Name = *name
			}
			return z, m.check(func(ve *inventory.ValidationError) { inventory.ValidateZone(ve, "", z) }, nil, nil, lat)
		}
	}
	return inventory.Zone{}, fmt.Errorf("zone %s: %w", id, inventory.ErrNotFound)
}
func (m *memInventory) CreateHost(_ context.Context, h inventory.Host) (inventory.Host, error) {
	for _, z := range m.inv.Zones {
		if z.ID == h.Zone {
			h.Region = z.Region
			return h, m.check(func(ve *inventory.ValidationError) { inventory.ValidateHost(ve, "", h) }, nil, nil, nil)
		}
	}
	return h, &inventory.ValidationError{Fields: []inventory.FieldError{{Field: "zone", Reason: "unknown zone"}}}
}
func (m *memInventory) UpdateHost(ctx context.Context, id string, fn func(*inventory.Host) error) (inventory.Host, error) {
	h, err := m.GetHost(ctx, id)
	if err != nil {
		return h, err
	}
	if err := fn(&h); err != nil {
		return h, err
	}
	return h, m.check(func(ve *inventory.ValidationError) { inventory.ValidateHost(ve, "", h) }, nil, nil, nil)
}

// decider simulates with the real placement pipeline on the dev inventory.
type decider struct {
	s *placement.Pipeline
	c *placement.Cluster
}

func (d *decider) Simulate(_ context.Context, req placement.Request) (placement.Decision, error) {
	return d.s.Decide(d.c, req)
}
func (d *decider) Get(context.Context, string) (placement.Record, error) {
	return placement.Record{}, placement.ErrNotPlaced
}
func (d *decider) Confirm(context.Context, string) (placement.Record, error) {
	return placement.Record{}, placement.ErrNotPlaced
}
func (d *decider) Release(context.Context, string, string) error { return placement.ErrNotPlaced }
func (d *decider) HostChanged(context.Context, string) error     { return nil }
func (d *decider) Load(context.Context) error                    { return nil }

var fuzzRoutes = []struct{ method, path string }{
	{http.MethodPost, "/inventory/regions"},
	{http.MethodPatch, "/inventory/regions/eu-west"},
	{http.MethodPost, "/inventory/zones"},
	{http.MethodPatch, "/inventory/zones/eu-west-1"},
	{http.MethodPost, "/inventory/hosts"},
	{http.MethodPatch, "/inventory/hosts/eu-west-1-h1"},
	{http.MethodPost, "/placements:simulate"},
}

// FuzzRequestBodies feeds arbitrary bodies to every create, patch and
// simulate route of the scheduling API through the real chi handler: never a
// panic or a 5xx, every rejection a 4xx problem+json.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"id":"us-east","name":"US East","labels":{"jurisdiction":"us"},"latencies":[{"to":"eu-west","p95_ms":80},{"to":"eu-central","p95_ms":90}]}`},
		{0, `{"id":"Bad Id","latencies":[{"to":"nowhere","p95_ms":-1},{"to":"eu-west-1","p95_ms":1e308}]}`},
		{1, `{"name":"EU West 2","labels":{"k":"v"},"latencies":[{"to":"eu-central","p95_ms":30}]}`},
		{1, `{"labels":{"":""},"latencies":[{"to":"eu-west","p95_ms":1}]}`},
		{2, `{"id":"eu-west-4","region":"eu-west","name":"AZ 4","latencies":[{"to":"eu-west-1","p95_ms":1},{"to":"eu-west-2","p95_ms":1},{"to":"eu-west-3","p95_ms":1}]}`},
		{2, `{"id":"z","region":"nowhere"}`},
		{3, `{"name":"AZ 1","latencies":[{"to":"eu-central-1","p95_ms":2}]}`},
		{4, `{"id":"eu-west-1-h9","zone":"eu-west-1","address":"127.0.0.1","ports":{"from":30000,"to":30099},"capacity":{"vcpu":8,"memory_mb":32768,"storage_gb":500},"price":{"per_vcpu_hour":0.02,"per_gb_hour":0.005},"state":"ready"}`},
		{4, `{"id":"h","zone":"eu-west-1","ports":{"from":70000,"to":1},"capacity":{"vcpu":1e-9,"memory_mb":-1,"storage_gb":0},"state":"melting"}`},
		{4, `{"id":"h"}`},
		{5, `{"state":"cordoned","capacity":{"vcpu":0.5,"memory_mb":1,"storage_gb":1}}`},
		{5, `{"ports":{"from":0,"to":0},"price":{"per_vcpu_hour":-1}}`},
		{6, `{"deployment_mode":"multi-az","nodes":[{"name":"n0","role":"primary","vcpu":1,"memory_mb":1024,"storage_gb":10},{"name":"n1","role":"replica","vcpu":1,"memory_mb":1024,"storage_gb":10}]}`},
		{6, `{"plan":{"engine":"mysql","deployment_mode":"multi-region","nodes":[{"role":"primary","vcpu":1,"memory_mb":1,"storage_gb":1},{"role":"dr-replica","vcpu":1,"memory_mb":1,"storage_gb":1}]},"region":"eu-west","dr_region":"eu-central"}`},
		{6, `{"plan_id":"p1"}`},
		{6, `{"deployment_mode":"single-az","nodes":[{"role":"primary","vcpu":1e308,"memory_mb":9223372036854775807,"storage_gb":1}],"labels":{"disk":"nvme"},"allowed_regions":["mars"]}`},
		{6, `{"nodes":[{"role":"replica"}]}`},
		{0, `[]`},
		{6, ``},
	} {
		f.Add(s.route, []byte(s.body))
	}
	routes := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		checkProblem(t, routes, req, fmt.Sprintf("%s %s %q", rt.method, rt.path, body))
	})
}

// FuzzListHosts feeds arbitrary limit, state, cursor and region parameters
// to the host list: a bad parameter is a 400 problem, never a 5xx.
func FuzzListHosts(f *testing.F) {
	f.Add("50", "ready", "eu-west-1-h1", "eu-west")
	f.Add("0", "melting", "", "")
	f.Add("501", "", "\x00", "nowhere")
	f.Add("9999999999999999999999", "cordoned", "", "")
	routes := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, limit, state, cursor, region string) {
		q := url.Values{"limit": {limit}, "state": {state}, "cursor": {cursor}, "region": {region}}
		req := httptest.NewRequest(http.MethodGet, "/inventory/hosts?"+q.Encode(), nil)
		checkProblem(t, routes, req, "GET /inventory/hosts?"+q.Encode())
	})
}

// fuzzAPI is the real router over the dev inventory in memory.
func fuzzAPI(f *testing.F) http.Handler {
	f.Helper()
	inv, err := inventory.LoadFile("../../../../deploy/inventory/dev.yaml")
	if err != nil {
		f.Fatal(err)
	}
	sched, err := placement.New(placement.DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	cluster, err := placement.NewCluster(inv)
	if err != nil {
		f.Fatal(err)
	}
	api, err := httpapi.New(&memInventory{inv: inv}, &decider{s: sched, c: cluster}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	return api.Routes()
}

// checkProblem serves req as a platform admin and asserts the answer is a
// success or a 4xx problem+json.
func checkProblem(t *testing.T, h http.Handler, req *http.Request, what string) {
	t.Helper()
	admin := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "t"}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(tenancy.WithPrincipal(req.Context(), admin)))
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	if rec.Code >= 400 && rec.Header().Get("Content-Type") != httpx.ProblemContentType {
		t.Fatalf("%s: status %d is not problem+json", what, rec.Code)
	}
}

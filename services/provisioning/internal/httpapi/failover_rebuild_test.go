package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// rebuildRepo is fuzzRepo's ready MySQL instance i1 with one address per
// node; instance "r1" is the same on Redis.
type rebuildRepo struct{ fuzzRepo }

func (rebuildRepo) GetAnyTenant(_ context.Context, id string) (*instance.Instance, error) {
	in, err := readyInstance("acme", "i1")
	if err != nil {
		return nil, err
	}
	switch id {
	case "i1":
	case "r1":
		in.Plan.Engine = instance.EngineRedis
	default:
		return readyInstance("acme", id)
	}
	for i := range in.Nodes {
		in.Nodes[i].Address = fmt.Sprintf("127.0.0.1:%d", 20000+i)
	}
	return in, nil
}

type rebuildCall struct {
	node   string
	source driver.Endpoint
}

// fakeRebuilder is the driver's fault and rebuild side.
type fakeRebuilder struct {
	mu    sync.Mutex
	calls []rebuildCall
	err   error
}

func (*fakeRebuilder) Kill(context.Context, string) error      { return nil }
func (*fakeRebuilder) Terminate(context.Context, string) error { return nil }

func (f *fakeRebuilder) Rebuild(_ context.Context, nodeID string, source driver.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, rebuildCall{nodeID, source})
	return f.err
}

func (f *fakeRebuilder) took() []rebuildCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rebuildCall(nil), f.calls...)
}

// onlyFaults can inject faults but not rebuild.
type onlyFaults struct{}

func (onlyFaults) Kill(context.Context, string) error      { return nil }
func (onlyFaults) Terminate(context.Context, string) error { return nil }

// The rebuild route: for service:failover only, a MariaDB node of the
// instance rebuilt from another node of it (204 once done); anything else
// refused before the driver is called.
func TestRebuildRoute(t *testing.T) {
	failover := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: FailoverReader}
	n0, n1 := "i1-n0", "i1-n1"
	path := func(id, node string) string { return FailoverPath + "/" + id + "/nodes/" + node + "/rebuild" }
	tests := []struct {
		name   string
		who    tenancy.Principal
		path   string
		body   string
		faults Faults
		err    error
		status int
		call   *rebuildCall
	}{
		{name: "rebuilt from the primary", who: failover, path: path("i1", n0), body: `{"source": "127.0.0.1:20001"}`,
			status: http.StatusNoContent, call: &rebuildCall{n0, driver.Endpoint{Host: "127.0.0.1", Port: 20001}}},
		{name: "tenant admin", who: tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:k1"},
			path: path("i1", n0), body: `{"source": "127.0.0.1:20001"}`, status: http.StatusNotFound},
		{name: "another platform admin", who: tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"},
			path: path("i1", n0), body: `{"source": "127.0.0.1:20001"}`, status: http.StatusNotFound},
		{name: "no body", who: failover, path: path("i1", n0), body: `{}`, status: http.StatusBadRequest},
		{name: "unknown field", who: failover, path: path("i1", n0), body: `{"source": "127.0.0.1:20001", "x": 1}`, status: http.StatusBadRequest},
		{name: "not host:port", who: failover, path: path("i1", n0), body: `{"source": "primary"}`, status: http.StatusBadRequest},
		{name: "from itself", who: failover, path: path("i1", n0), body: `{"source": "127.0.0.1:20000"}`, status: http.StatusBadRequest},
		{name: "from outside the instance", who: failover, path: path("i1", n0), body: `{"source": "127.0.0.1:3306"}`, status: http.StatusBadRequest},
		{name: "unknown node", who: failover, path: path("i1", "nope"), body: `{"source": "127.0.0.1:20001"}`, status: http.StatusNotFound},
		{name: "unknown instance", who: failover, path: path("nope", n0), body: `{"source": "127.0.0.1:20001"}`, status: http.StatusNotFound},
		{name: "redis", who: failover, path: path("r1", n0), body: `{"source": "127.0.0.1:20001"}`, status: http.StatusConflict},
		{name: "driver cannot rebuild", who: failover, path: path("i1", n0), body: `{"source": "127.0.0.1:20001"}`,
			faults: onlyFaults{}, status: http.StatusNotImplemented},
		{name: "driver refuses the engine", who: failover, path: path("i1", n0), body: `{"source": "127.0.0.1:20001"}`,
			err: fmt.Errorf("rebuild: %w", driver.ErrUnsupported), status: http.StatusConflict, call: &rebuildCall{n0, driver.Endpoint{Host: "127.0.0.1", Port: 20001}}},
		{name: "copy failed", who: failover, path: path("i1", n1), body: `{"source": "127.0.0.1:20000"}`,
			err: errors.New("mariadb-dump: access denied"), status: http.StatusBadGateway, call: &rebuildCall{n1, driver.Endpoint{Host: "127.0.0.1", Port: 20000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(rebuildRepo{}, fuzzSaga{}, fuzzCatalog{}, func(context.Context, string) (tenancy.Quota, error) { return tenancy.Quota{}, nil },
				slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			rb := &fakeRebuilder{err: tt.err}
			if tt.faults != nil {
				h.WithFaults(tt.faults)
			} else {
				h.WithFaults(rb)
			}
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			req = req.WithContext(tenancy.WithPrincipal(req.Context(), tt.who))
			rec := httptest.NewRecorder()
			h.Routes().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			calls := rb.took()
			switch {
			case tt.call == nil && len(calls) != 0:
				t.Fatalf("driver called: %+v", calls)
			case tt.call != nil && (len(calls) != 1 || calls[0] != *tt.call):
				t.Fatalf("driver calls %+v, want %+v", calls, *tt.call)
			}
		})
	}
}

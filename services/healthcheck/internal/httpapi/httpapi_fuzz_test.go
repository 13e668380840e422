package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/monitor"
)

// oneInstance is a view of instance i1 of tenant acme.
type oneInstance struct{}

func (oneInstance) Instance(id string) []monitor.NodeView {
	if id != "i1" {
		return nil
	}
	return []monitor.NodeView{{NodeID: "i1-n0", InstanceID: "i1", Tenant: "acme", Address: "127.0.0.1:3306"}}
}
func (oneInstance) All() []monitor.NodeView { return oneInstance{}.Instance("i1") }
func (oneInstance) Counts() (int64, int64)  { return 1, 0 }

// FuzzRoutes feeds arbitrary instance ids and identities to the healthcheck's
// routes (it has no request bodies): never a panic or a 5xx, refusals are 4xx
// problem+json, and one tenant never sees another's instance.
func FuzzRoutes(f *testing.F) {
	f.Add("i1", "acme", string(tenancy.RoleTenantViewer), false)
	f.Add("i1", "other", string(tenancy.RoleTenantAdmin), false)
	f.Add("i1", "", string(tenancy.RolePlatformAdmin), true)
	f.Add("../../health/targets", "acme", string(tenancy.RoleTenantViewer), true)
	f.Add("", "", "", false)
	r := chi.NewRouter()
	New(oneInstance{}, nil, "replica-0").Routes(r)
	f.Fuzz(func(t *testing.T, id, tenant, role string, targets bool) {
		path := "/api/v1/instances/" + url.PathEscape(id) + "/health"
		if targets {
			path = "/api/v1/health/targets"
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		p := tenancy.Principal{Tenant: tenancy.ID(tenant), Role: tenancy.Role(role), Subject: "fuzz"}
		if p.Validate() == nil {
			req = req.WithContext(tenancy.WithPrincipal(req.Context(), p))
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
		case rec.Code >= 400 && rec.Header().Get("Content-Type") != httpx.ProblemContentType:
			t.Fatalf("%s: status %d is not problem+json", path, rec.Code)
		case rec.Code == http.StatusOK && p.Role != tenancy.RolePlatformAdmin && (targets || tenant != "acme"):
			t.Fatalf("%s: %+v sees %s", path, p, rec.Body)
		}
	})
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/router/internal/httpapi"
	"github.com/canopy-platform/canopy/services/router/internal/table"
)

type endpoints []httpapi.Endpoint

func (e endpoints) Endpoints() []httpapi.Endpoint { return e }

func serve(t *testing.T, h *httpapi.Handler, p *tenancy.Principal, path string) (int, map[string]any) {
	t.Helper()
	r := chi.NewRouter()
	h.Routes(r)
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if p != nil {
		req = req.WithContext(tenancy.WithPrincipal(req.Context(), *p))
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// TestEndpointsAreTenantScoped: the owner's viewer reads the live state,
// another tenant gets the 404 of an unknown instance, only platform admins
// list everything.
func TestEndpointsAreTenantScoped(t *testing.T) {
	tbl := table.New()
	tbl.Apply(table.Instance{ID: "i-1", Tenant: "acme", Name: "orders", Engine: table.MySQL, RWPort: 16000, ROPort: 16001,
		Nodes: []table.Node{{ID: "n-0", Address: "127.0.0.1:20000", Role: table.Primary}, {ID: "n-1", Address: "127.0.0.1:20001", Role: table.Replica}}})
	h := httpapi.New(tbl, endpoints{{InstanceID: "i-1", Kind: "rw", Port: 16000, Listening: true, Active: 2,
		Backends: map[string]int{"127.0.0.1:20000": 2}}, {InstanceID: "i-1", Kind: "ro", Port: 16001, Listening: true}}, "r1")

	viewer := tenancy.Principal{Role: tenancy.RoleTenantViewer, Tenant: "acme", Subject: "k"}
	code, body := serve(t, h, &viewer, "/api/v1/instances/i-1/endpoints")
	if code != http.StatusOK {
		t.Fatalf("owner's viewer: %d %v", code, body)
	}
	primary, _ := body["primary"].(map[string]any)
	eps, _ := body["endpoints"].([]any)
	if primary["address"] != "127.0.0.1:20000" || len(eps) != 2 || body["router_replica"] != "r1" {
		t.Fatalf("answer %v", body)
	}

	other := tenancy.Principal{Role: tenancy.RoleTenantAdmin, Tenant: "globex", Subject: "k2"}
	if code, _ := serve(t, h, &other, "/api/v1/instances/i-1/endpoints"); code != http.StatusNotFound {
		t.Fatalf("another tenant: %d, want 404", code)
	}
	if code, _ := serve(t, h, &viewer, "/api/v1/instances/nope/endpoints"); code != http.StatusNotFound {
		t.Fatalf("unknown instance: %d", code)
	}
	if code, _ := serve(t, h, nil, "/api/v1/instances/i-1/endpoints"); code != http.StatusUnauthorized {
		t.Fatalf("no identity: %d", code)
	}
	if code, _ := serve(t, h, &viewer, "/api/v1/router/endpoints"); code != http.StatusForbidden {
		t.Fatalf("tenant listing every endpoint: %d", code)
	}
	admin := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "ops"}
	code, body = serve(t, h, &admin, "/api/v1/router/endpoints")
	if items, _ := body["instances"].([]any); code != http.StatusOK || len(items) != 1 {
		t.Fatalf("admin list: %d %v", code, body)
	}
}

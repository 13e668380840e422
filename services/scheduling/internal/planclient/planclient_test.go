package planclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

func TestResolve(t *testing.T) {
	secret := []byte("0123456789abcdef")
	catalog := httptest.NewServer(tenancy.Middleware(tenancy.AudienceCatalog, secret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		if p.Role != tenancy.RolePlatformAdmin || p.Subject != "service:scheduling" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/catalog/plans/mr":
			_, _ = w.Write([]byte(`{"engine":"mysql","deployment_mode":"multi-region","resources":{"vcpu":0.5,"memory_mb":2048,"storage_gb":20},
				"nodes":{"count":3,"zones":2,"groups":[{"role":"primary","region_role":"primary","count":1},{"role":"replica","region_role":"primary","count":1},{"role":"replica","region_role":"dr","count":1}]}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})))
	defer catalog.Close()
	c, err := New(catalog.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	shape, err := c.Resolve(context.Background(), "mr")
	if err != nil {
		t.Fatal(err)
	}
	if shape.DeploymentMode != "multi-region" || len(shape.Nodes) != 3 || shape.Nodes[2].Role != placement.RoleDRReplica ||
		shape.Nodes[0].Resources.MilliCPU != 500 || shape.Nodes[1].Name != "node-1" {
		t.Fatalf("%+v", shape)
	}
	if _, err := c.Resolve(context.Background(), "nope"); !errors.Is(err, placement.ErrUnknownPlan) {
		t.Fatalf("unknown plan: %v", err)
	}
	if _, err := New("not a url", nil); err == nil {
		t.Fatal("accepted a bad url")
	}
}

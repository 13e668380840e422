package osb

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

type seedPlans struct{ plans []plan.Plan }

func (s seedPlans) ListPlans(_ context.Context, q mysqlrepo.PlanQuery) ([]plan.Plan, error) {
	var out []plan.Plan
	for _, p := range s.plans {
		if p.Engine == q.Engine {
			out = append(out, p)
		}
	}
	return out, nil
}

type oneCredential struct{ c brokercred.Credential }

func (o oneCredential) CredentialByUsername(_ context.Context, user string) (brokercred.Credential, error) {
	if user != o.c.Username {
		return brokercred.Credential{}, fmt.Errorf("credential %s: %w", user, mysqlrepo.ErrNotFound)
	}
	return o.c, nil
}

// FuzzFrontDoor feeds arbitrary Authorization, X-Broker-API-Version and
// request-identity headers and paths to the OSB front door (the instance
// routes forwarded to a stub): never a panic or a 5xx, every refusal a 4xx
// with the OSB error object.
func FuzzFrontDoor(f *testing.F) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	plans, err := plan.Seed(t0)
	if err != nil {
		f.Fatal(err)
	}
	cred, password, err := brokercred.Issue("cf", "acme", "test", t0)
	if err != nil {
		f.Fatal(err)
	}
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	f.Add(basic(cred.Username, password), "2.17", "req-1", "/catalog")
	f.Add(basic(cred.Username, password), "2.12", "", "/catalog")
	f.Add(basic(cred.Username, password), "2.17", "", "/service_instances/x?accepts_incomplete=true")
	f.Add(basic(cred.Username, "wrong"), "2.17", "", "/catalog")
	f.Add(basic("", ""), "", "", "/catalog")
	f.Add("Basic !!!", "2.x", "", "/nope")
	f.Add("Bearer abc", "99999.99999", "", "/catalog")
	f.Add(basic(cred.Username, password), "", "", "/catalog")
	h, err := New(seedPlans{plans: plans}, oneCredential{c: cred}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	h.ForwardInstances(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusAccepted, map[string]string{"operation": "op1"})
	}))
	routes := h.Routes()
	f.Fuzz(func(t *testing.T, auth, version, reqID, path string) {
		req, err := http.NewRequest(http.MethodGet, "http://broker"+path, nil)
		if err != nil {
			return // not a URL a client could send
		}
		req.Header["Authorization"] = []string{auth}
		req.Header[VersionHeader] = []string{version}
		req.Header[RequestIdentityHeader] = []string{reqID}
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q %q %q: status %d: %s", auth, version, path, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e errorJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Description == "" {
				t.Fatalf("status %d without an OSB error body: %s", rec.Code, rec.Body)
			}
		}
		if wellFormed, supported := ParseVersion(version); supported && !wellFormed {
			t.Fatalf("version %q supported but not well formed", version)
		}
	})
}

package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// upstreamRecorder stands in for the backend services of the route tests:
// each upstream checks the gateway's signature for its own audience and
// records "audience METHOD request-URI tenant role[ body]". It answers JSON,
// or a CSV header when the request asks for text/csv.
type upstreamRecorder struct {
	mu   sync.Mutex
	seen []string
}

// upstream starts a stand-in for the service of audience.
func (u *upstreamRecorder) upstream(t *testing.T, audience string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(tenancy.Middleware(audience, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		body, _ := io.ReadAll(r.Body)
		line := audience + " " + r.Method + " " + r.URL.RequestURI() + " " + string(p.Tenant) + " " + string(p.Role)
		if len(body) > 0 {
			line += " " + string(body)
		}
		u.mu.Lock()
		u.seen = append(u.seen, line)
		u.mu.Unlock()
		if strings.Contains(r.Header.Get("Accept"), "text/csv") {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			_, _ = io.WriteString(w, "window_start,meter,value\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[],"items":[]}`)
	})))
	t.Cleanup(srv.Close)
	return srv
}

// take returns what was recorded since the last take.
func (u *upstreamRecorder) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := u.seen
	u.seen = nil
	return seen
}

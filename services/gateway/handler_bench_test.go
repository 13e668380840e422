package gateway_test

import (
	"net/http"
	"testing"

	"github.com/canopy-platform/canopy/services/gateway"
)

// BenchmarkGatewayHandler drives one proxied GET through the gateway's
// handler in this process (no client socket; the stand-in upstream is an
// in-process httptest server), with access logging on as in
// BenchmarkCatalogThroughGateway. Its allocations per op are the gateway's
// plus a constant share of the upstream's, so they compare across changes.
func BenchmarkGatewayHandler(b *testing.B) {
	e := newEnv(b, func(c *gateway.Config) { c.AccessLog = true })
	e.catalog.body = benchBody
	r := e.do("POST", "/api/v1/tenants", e.adminKey, map[string]any{"id": "bench", "name": "Bench",
		"rate_limit": map[string]any{"requests_per_second": 1_000_000, "burst": 1_000_000}})
	if r.StatusCode != http.StatusCreated {
		b.Fatalf("create tenant: %d %s", r.StatusCode, r.Body)
	}
	key := e.do("POST", "/api/v1/tenants/bench/api-keys", e.adminKey, map[string]any{"name": "bench", "role": "tenant-viewer"}).json(b)["key"].(string)
	h := e.svc.Handler()
	req, err := http.NewRequest(http.MethodGet, "http://gateway/api/v1/catalog/services", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RequestURI = "/api/v1/catalog/services"
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("User-Agent", "Go-http-client/1.1")
	w := &discardWriter{h: http.Header{}}
	serve := func() {
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	for range 1000 { // warm the key cache, the rate limiter's batch and the upstream pool
		serve()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		serve()
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canopy-platform/canopy/libs/obs"
)

func TestRequestsCountedByUpstreamAndCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there: every request fails without a response

	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{BreakerFailures: 100}, []Upstream{{Name: "up", URL: srv.URL}, {Name: "down", URL: down}},
		[]byte("test-secret-0123456789"), m, obs.NopLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	send := func(target, path string) {
		rec := httptest.NewRecorder()
		p.Target(target).Handler(false).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	}
	for range 3 {
		send("up", "/ok")
	}
	send("up", "/missing")
	send("down", "/ok")
	for _, tc := range []struct {
		upstream, code string
		want           float64
	}{
		{"up", "200", 3},
		{"up", "404", 1},
		{"down", "000", 1},
	} {
		got := testutil.ToFloat64(m.requests.WithLabelValues(tc.upstream, tc.code))
		if got != tc.want {
			t.Errorf("requests{upstream=%q,code=%q} = %v, want %v", tc.upstream, tc.code, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Errorf("%d request series, want 3", n)
	}
}

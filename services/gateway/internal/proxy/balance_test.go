package proxy

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

var testSecret = []byte("test-secret-0123456789")

// replica is a real HTTP server standing for one replica of a service: it
// counts requests by method, verifies the gateway's signature, and its
// /readyz answers what ready says.
type replica struct {
	name     string
	srv      *httptest.Server
	ready    atomic.Bool
	verifier *tenancy.Verifier
	mu       sync.Mutex
	byMethod map[string]int
	bodies   []string
	// drop, when set, makes requests of that method lose their connection
	// after the request was read: the replica got it, the client gets no answer.
	drop atomic.Value // string
}

func newReplica(t *testing.T, name string) *replica {
	t.Helper()
	v, err := tenancy.NewVerifier(tenancy.VerifierConfig{Audience: "svc", Secrets: [][]byte{testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, verifier: v, byMethod: map[string]int{}}
	r.ready.Store(true)
	r.drop.Store("")
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/readyz" {
			if !r.ready.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, `{"status":"ok"}`)
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.byMethod[req.Method]++
		r.bodies = append(r.bodies, string(body))
		r.mu.Unlock()
		if req.Method == r.drop.Load().(string) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		if req.Header.Get(tenancy.SignatureHeader) != "" {
			if _, err := r.verifier.Verify(req.Header, req.Method, req.RequestURI, sha256.Sum256(body)); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
		}
		_, _ = io.WriteString(w, r.name)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replica) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byMethod[method]
}

// deadURL is a base URL where nothing listens: connecting is refused.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	_ = ln.Close()
	return u
}

func newBalancedProxy(t *testing.T, cfg Config, urls ...string) *Target {
	t.Helper()
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, []Upstream{{Name: "svc", URL: strings.Join(urls, ", ")}}, testSecret, m, obs.NopLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	return p.Target("svc")
}

// send sends one request through target (signed for a tenant admin when
// body is not empty) and returns the status and the answer.
func send(t *testing.T, target *Target, method, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "/api/v1/things", rd)
	sign := body != ""
	if sign {
		req = req.WithContext(tenancy.WithPrincipal(req.Context(),
			tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:test"}))
	}
	rec := httptest.NewRecorder()
	target.Handler(sign).ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReplicasShareRequestsRoundRobin(t *testing.T) {
	a, b := newReplica(t, "a"), newReplica(t, "b")
	target := newBalancedProxy(t, Config{}, a.srv.URL, b.srv.URL)
	for range 10 {
		if code, _ := send(t, target, http.MethodGet, ""); code != http.StatusOK {
			t.Fatalf("GET: %d", code)
		}
	}
	if a.count("GET") != 5 || b.count("GET") != 5 {
		t.Fatalf("GETs a=%d b=%d, want 5 each", a.count("GET"), b.count("GET"))
	}
}

func TestRefusedConnectionGoesToAnotherReplica(t *testing.T) {
	live := newReplica(t, "live")
	target := newBalancedProxy(t, Config{HealthInterval: time.Hour}, deadURL(t), live.srv.URL)
	for i := range 6 {
		// A POST with a body, signed: safe to send elsewhere, since a
		// refused connection means the dead replica never saw it; the
		// signature is made anew for the replica that gets it.
		code, answer := send(t, target, http.MethodPost, `{"n":1}`)
		if code != http.StatusOK || answer != "live" {
			t.Fatalf("POST %d: %d %q", i, code, answer)
		}
	}
	if got := live.count("POST"); got != 6 {
		t.Fatalf("live replica got %d POSTs, want 6", got)
	}
	if target.backends[0].healthy.Load() {
		t.Fatal("the dead replica is still in rotation")
	}
}

func TestOnlyIdempotentRequestsAreRetriedAfterTheReplicaGotThem(t *testing.T) {
	a, b := newReplica(t, "a"), newReplica(t, "b")
	a.drop.Store(http.MethodPost)
	target := newBalancedProxy(t, Config{HealthInterval: time.Hour}, a.srv.URL, b.srv.URL)
	// Round robin starts at a: its POST is lost after a read it, and
	// must not be sent again (it may have taken effect).
	if code, _ := send(t, target, http.MethodPost, `{"n":1}`); code != http.StatusBadGateway {
		t.Fatalf("POST lost by its replica: %d, want 502", code)
	}
	if a.count("POST") != 1 || b.count("POST") != 0 {
		t.Fatalf("POST sent to a=%d b=%d, want once to a only", a.count("POST"), b.count("POST"))
	}
	// A DELETE lost the same way is not resent by the gateway either, but
	// its 502 tells the client to send it again (a repeat is harmless);
	// the unkeyed POST's 502 does not.
	a.drop.Store(http.MethodDelete)
	target.backends[0].healthy.Store(true)
	target.rr.Store(0)
	rec := httptest.NewRecorder()
	target.Handler(false).ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/api/v1/things/1", nil))
	if rec.Code != http.StatusBadGateway || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("DELETE lost by its replica: %d Retry-After %q, want 502 with Retry-After 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if a.count("DELETE") != 1 || b.count("DELETE") != 0 {
		t.Fatalf("DELETE sent to a=%d b=%d, want once to a only", a.count("DELETE"), b.count("DELETE"))
	}
	a.drop.Store(http.MethodPost)
	target.backends[0].healthy.Store(true)
	target.rr.Store(0)
	rec = httptest.NewRecorder()
	target.Handler(false).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/things", nil))
	if rec.Code != http.StatusBadGateway || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("unkeyed POST lost by its replica: %d Retry-After %q, want 502 without Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	// A GET lost the same way goes to the other replica.
	a.drop.Store(http.MethodGet)
	target.backends[0].healthy.Store(true)
	target.rr.Store(0)
	code, answer := send(t, target, http.MethodGet, "")
	if code != http.StatusOK || answer != "b" {
		t.Fatalf("GET lost by a: %d %q, want b's answer", code, answer)
	}
	if a.count("GET") != 1 {
		t.Fatalf("a got %d GETs, want 1", a.count("GET"))
	}
}

func TestHealthChecksTakeReplicasOutAndBack(t *testing.T) {
	a, b := newReplica(t, "a"), newReplica(t, "b")
	target := newBalancedProxy(t, Config{HealthInterval: 20 * time.Millisecond}, a.srv.URL, b.srv.URL)
	a.ready.Store(false)
	waitFor(t, "a out of rotation", func() bool { return !target.backends[0].healthy.Load() })
	for range 6 {
		if code, answer := send(t, target, http.MethodGet, ""); code != http.StatusOK || answer != "b" {
			t.Fatalf("GET while a is not ready: %d %q", code, answer)
		}
	}
	if a.count("GET") != 0 {
		t.Fatalf("a got %d GETs while not ready", a.count("GET"))
	}
	a.ready.Store(true)
	waitFor(t, "a back in rotation", func() bool { return target.backends[0].healthy.Load() })
	for range 4 {
		send(t, target, http.MethodGet, "")
	}
	if a.count("GET") != 2 {
		t.Fatalf("a got %d of 4 GETs once ready again, want 2", a.count("GET"))
	}
}

func TestAllReplicasDownAnswers503(t *testing.T) {
	target := newBalancedProxy(t, Config{HealthInterval: time.Hour}, deadURL(t), deadURL(t))
	for range 3 {
		if code, _ := send(t, target, http.MethodGet, ""); code != http.StatusServiceUnavailable {
			t.Fatalf("GET with every replica down: %d, want 503", code)
		}
	}
}

func TestSplitURLs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"http://a:1", []string{"http://a:1"}},
		{"http://a:1, http://b:2,", []string{"http://a:1", "http://b:2"}},
		{" , ", nil},
	} {
		got := SplitURLs(tc.in)
		if !slices.Equal(got, tc.want) {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestKeyedPOSTLostOnAReusedConnectionGoesToAnotherReplica: a replica that
// shuts down closes its idle keep-alive connections; a POST that meets
// such a close before any answer goes to the other replica when it carries
// an Idempotency-Key (a repeat is harmless), and is answered 502 without.
func TestKeyedPOSTLostOnAReusedConnectionGoesToAnotherReplica(t *testing.T) {
	a, b := newReplica(t, "a"), newReplica(t, "b")
	target := newBalancedProxy(t, Config{HealthInterval: time.Hour}, a.srv.URL, b.srv.URL)
	post := func(key string) (int, string) {
		// A GET first leaves a keep-alive connection to a in the pool.
		target.backends[0].healthy.Store(true)
		target.rr.Store(0)
		a.drop.Store("")
		if code, answer := send(t, target, http.MethodGet, ""); code != http.StatusOK || answer != "a" {
			t.Fatalf("GET: %d %q", code, answer)
		}
		a.drop.Store(http.MethodPost)
		target.rr.Store(0)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/things", strings.NewReader(`{"n":1}`))
		req = req.WithContext(tenancy.WithPrincipal(req.Context(),
			tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:test"}))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		rec := httptest.NewRecorder()
		target.Handler(true).ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, answer := post("k-1"); code != http.StatusOK || answer != "b" {
		t.Fatalf("keyed POST lost on a reused connection: %d %q, want b's answer", code, answer)
	}
	if code, _ := post(""); code != http.StatusBadGateway {
		t.Fatalf("POST without a key lost on a reused connection: %d, want 502", code)
	}
	if a.count("POST") != 2 || b.count("POST") != 1 {
		t.Fatalf("POSTs a=%d b=%d, want 2 to a and the keyed one again to b", a.count("POST"), b.count("POST"))
	}
}

package svcclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// replica is one callee replica on a real listener: it verifies the signed
// identity (so a resent request must be signed for it) and counts what it
// was sent. drop makes it read a request and then close the connection
// without answering; status makes it answer that status.
type replica struct {
	srv    *httptest.Server
	hits   atomic.Int64
	drop   atomic.Bool
	status atomic.Int64
}

func newReplica(t *testing.T, addr string) *replica {
	t.Helper()
	r := &replica{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body)
		r.hits.Add(1)
		if r.drop.Load() {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	r.srv = httptest.NewUnstartedServer(tenancy.Middleware("callee", []byte(secret))(mux))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
		_ = r.srv.Listener.Close()
		r.srv.Listener = ln
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

// newBalanced returns a client over the replicas' URLs, with its own
// transport (no idle connections shared between tests).
func newBalanced(t *testing.T, urls ...string) *Client {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := New(Config{Audience: "callee", Secret: []byte(secret), BaseURL: strings.Join(urls, ", "),
		Timeout: 5 * time.Second, HTTP: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReplicasSpread(t *testing.T) {
	a, b := newReplica(t, ""), newReplica(t, "")
	c := newBalanced(t, a.srv.URL, b.srv.URL)
	for range 10 {
		if _, err := c.Get(context.Background(), caller, "/x"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Do(context.Background(), caller, http.MethodPost, "/x", map[string]int{"n": 1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Round robin: 20 requests over two replicas, 10 each.
	if a.hits.Load() != 10 || b.hits.Load() != 10 {
		t.Fatalf("hits %d and %d, want 10 each", a.hits.Load(), b.hits.Load())
	}
}

func TestReplicaStopped(t *testing.T) {
	a, b := newReplica(t, ""), newReplica(t, "")
	c := newBalanced(t, a.srv.URL, b.srv.URL)
	a.srv.Close() // refused from now on
	for i := range 10 {
		if _, err := c.Get(context.Background(), caller, "/x"); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		if _, _, err := c.Do(context.Background(), caller, http.MethodPost, "/x", map[string]int{"n": i}, nil); err != nil {
			t.Fatalf("unkeyed POST %d (refused by the stopped replica): %v", i, err)
		}
	}
	if b.hits.Load() != 20 {
		t.Fatalf("the live replica had %d requests, want 20", b.hits.Load())
	}
}

func TestReplicaDropsAfterReading(t *testing.T) {
	keyed := http.Header{"Idempotency-Key": {"k-1"}}
	tests := []struct {
		name     string
		method   string
		header   http.Header
		status   int  // what the failing replica answers; 0: it drops the connection
		resent   bool // the request reaches the other replica and succeeds
		notResnt bool // the error says it was not resent
	}{
		{name: "unkeyed POST is not resent", method: http.MethodPost, notResnt: true},
		{name: "unkeyed DELETE is not resent", method: http.MethodDelete, notResnt: true},
		{name: "keyed POST is resent", method: http.MethodPost, header: keyed, resent: true},
		{name: "GET is resent", method: http.MethodGet, resent: true},
		{name: "GET after 503 is resent", method: http.MethodGet, status: http.StatusServiceUnavailable, resent: true},
		{name: "keyed POST after 502 is resent", method: http.MethodPost, header: keyed, status: http.StatusBadGateway, resent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad, good := newReplica(t, ""), newReplica(t, "")
			if tt.status != 0 {
				bad.status.Store(int64(tt.status))
			} else {
				bad.drop.Store(true)
			}
			c := newBalanced(t, bad.srv.URL, good.srv.URL)
			// Round robin from a random start: of two requests one starts on
			// the failing replica (it is not set aside before it failed).
			var failures int
			for range 2 {
				var err error
				if tt.method == http.MethodGet {
					_, err = c.Get(context.Background(), caller, "/x")
				} else {
					_, _, err = c.Do(context.Background(), caller, tt.method, "/x", map[string]int{"n": 1}, tt.header)
				}
				switch {
				case err == nil:
				case tt.resent:
					t.Fatalf("%s failed: %v", tt.method, err)
				case !errors.Is(err, ErrNotResent) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not resent"):
					t.Fatalf("err %v, want ErrNotResent", err)
				default:
					failures++
				}
			}
			if bad.hits.Load() != 1 {
				t.Fatalf("the failing replica had %d requests, want 1", bad.hits.Load())
			}
			if tt.notResnt && (failures != 1 || good.hits.Load() != 1) {
				t.Fatalf("%d failures, good replica %d requests; want 1 and 1 (no request sent twice)", failures, good.hits.Load())
			}
			if tt.resent && good.hits.Load() != 2 {
				t.Fatalf("the good replica had %d requests, want 2", good.hits.Load())
			}
		})
	}
}

func TestReplicaSetAsideComesBack(t *testing.T) {
	a, b := newReplica(t, ""), newReplica(t, "")
	addr := a.srv.Listener.Addr().String()
	c := newBalanced(t, a.srv.URL, b.srv.URL)
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	c.rotation.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	a.srv.Close()
	for range 4 {
		if _, err := c.Get(context.Background(), caller, "/x"); err != nil {
			t.Fatal(err)
		}
	}
	// Back on the same address, but still set aside: not asked yet.
	a = newReplica(t, addr)
	for range 4 {
		if _, err := c.Get(context.Background(), caller, "/x"); err != nil {
			t.Fatal(err)
		}
	}
	if a.hits.Load() != 0 || b.hits.Load() != 8 {
		t.Fatalf("hits %d and %d while set aside, want 0 and 8", a.hits.Load(), b.hits.Load())
	}
	mu.Lock()
	now = now.Add(DefaultSetAside)
	mu.Unlock()
	for range 4 {
		if _, err := c.Get(context.Background(), caller, "/x"); err != nil {
			t.Fatal(err)
		}
	}
	if a.hits.Load() != 2 {
		t.Fatalf("the replica back had %d of 4 requests, want 2", a.hits.Load())
	}
}

func TestReplicasAllDown(t *testing.T) {
	a, b := newReplica(t, ""), newReplica(t, "")
	c := newBalanced(t, a.srv.URL, b.srv.URL)
	a.srv.Close()
	b.srv.Close()
	// Both set aside after the first call: tried anyway, and the error is
	// the plain unavailable one (nothing reached a replica).
	for range 2 {
		_, _, err := c.Do(context.Background(), caller, http.MethodPost, "/x", nil, nil)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotResent) {
			t.Fatalf("err %v, want ErrUnavailable without ErrNotResent", err)
		}
	}
}

func TestSingleURLDropIsNotResentMark(t *testing.T) {
	a := newReplica(t, "")
	a.drop.Store(true)
	c := newBalanced(t, a.srv.URL)
	_, _, err := c.Do(context.Background(), caller, http.MethodPost, "/x", nil, nil)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotResent) || a.hits.Load() != 1 {
		t.Fatalf("err %v after %d requests, want ErrUnavailable after one, as before lists", err, a.hits.Load())
	}
}

func TestNewBadList(t *testing.T) {
	tests := []struct {
		name, base, want string
	}{
		{name: "second entry without a scheme", base: "http://127.0.0.1:8082, 127.0.0.1:8182", want: `entry 2 of "http://127.0.0.1:8082, 127.0.0.1:8182"`},
		{name: "ftp entry", base: "ftp://x,http://y", want: "entry 1"},
		{name: "only commas", base: " , ", want: "no URL"},
		{name: "empty", base: "", want: "no URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Audience: "callee", Secret: []byte(secret), BaseURL: tt.base})
			if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrBadURL naming %q", err, tt.want)
			}
			if CheckURLs(tt.base) == nil {
				t.Fatalf("CheckURLs(%q) passed", tt.base)
			}
		})
	}
	if err := CheckURLs("http://a:1/, https://b:2/base"); err != nil {
		t.Fatal(err)
	}
}

func TestLateList(t *testing.T) {
	a, b := newReplica(t, ""), newReplica(t, "")
	var list atomic.Value
	list.Store("")
	c, err := New(Config{Audience: "callee", Secret: []byte(secret), BaseURLFunc: func() string { return list.Load().(string) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), caller, "/x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v before the address is known, want ErrUnavailable", err)
	}
	list.Store(a.srv.URL + "," + b.srv.URL)
	for range 4 {
		if _, err := c.Get(context.Background(), caller, "/x"); err != nil {
			t.Fatal(err)
		}
	}
	if a.hits.Load() != 2 || b.hits.Load() != 2 {
		t.Fatalf("hits %d and %d, want 2 each", a.hits.Load(), b.hits.Load())
	}
}

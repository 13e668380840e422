package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestPool(t *testing.T, h http.Handler, connState ...func(net.Conn, http.ConnState)) (*connPool, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if len(connState) > 0 {
		srv.Config.ConnState = connState[0]
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return newConnPool(strings.TrimPrefix(srv.URL, "http://"), time.Second, 2*time.Second, 8), srv
}

func get(t *testing.T, p *connPool, ctx context.Context, method, url string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = http.NoBody
	}
	resp, err := p.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestConnPoolReusesAndFramesBodies(t *testing.T) {
	var conns atomic.Int64
	p, srv := newTestPool(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("chunked") != "" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b)+" "+r.Header.Get("X-Test"))
	}), func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	for i := range 5 {
		code, body, err := get(t, p, context.Background(), http.MethodGet, srv.URL+"/a?x=1", nil)
		if err != nil || code != 200 || body != "GET /a?x=1  " {
			t.Fatalf("get %d: %d %q %v", i, code, body, err)
		}
	}
	code, body, err := get(t, p, context.Background(), http.MethodPost, srv.URL+"/b?chunked=1", strings.NewReader("payload"))
	if err != nil || code != 200 || body != "POST /b?chunked=1 payload " {
		t.Fatalf("post: %d %q %v", code, body, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 reused", n)
	}
}

func TestConnPoolRetriesStaleConnectionForGET(t *testing.T) {
	p, srv := newTestPool(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	if _, _, err := get(t, p, context.Background(), http.MethodGet, srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections() // the upstream drops the idle connection
	time.Sleep(20 * time.Millisecond)
	code, body, err := get(t, p, context.Background(), http.MethodGet, srv.URL, nil)
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("after upstream close: %d %q %v", code, body, err)
	}
	// A POST checks the idle connection first instead of failing on it.
	srv.CloseClientConnections()
	time.Sleep(20 * time.Millisecond)
	code, _, err = get(t, p, context.Background(), http.MethodPost, srv.URL, strings.NewReader("x"))
	if err != nil || code != 200 {
		t.Fatalf("post after upstream close: %d %v", code, err)
	}
}

func TestConnPoolCancelAndHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	p, srv := newTestPool(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := get(t, p, ctx, http.MethodGet, srv.URL, nil); err != context.DeadlineExceeded {
		t.Fatalf("cancelled: %v, want context.DeadlineExceeded", err)
	}
	p.headerTimeout = 50 * time.Millisecond
	_, _, err := get(t, p, context.Background(), http.MethodGet, srv.URL, nil)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("header timeout: %v, want a net.Error timeout", err)
	}
}

func TestConnPoolDialErrorIsConnError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	p := newConnPool(addr, time.Second, time.Second, 8)
	_, _, err := get(t, p, context.Background(), http.MethodGet, "http://"+addr+"/", nil)
	if !isConnError(err) {
		t.Fatalf("dial error %v is not a connection error", err)
	}
}

package webhook

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

// recorder is a receiver that answers with a settable status and keeps
// what it got.
type recorder struct {
	status   atomic.Int32
	requests atomic.Int32
	conns    atomic.Int32
	mu       sync.Mutex
	headers  []http.Header
	bodies   [][]byte
}

func newRecorder(t *testing.T, status int) (*recorder, *httptest.Server) {
	t.Helper()
	r := &recorder{}
	r.status.Store(int32(status))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		r.requests.Add(1)
		if s := int(r.status.Load()); s/100 == 3 {
			w.Header().Set("Location", "http://169.254.169.254/")
			w.WriteHeader(s)
			return
		}
		w.WriteHeader(int(r.status.Load()))
		_, _ = w.Write([]byte("receiver says hi"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return r, srv
}

func localSender(cfg SenderConfig) *Sender {
	cfg.Policy.AllowPrivate = true // httptest listens on loopback
	return NewSender(cfg)
}

func TestSendClassifies(t *testing.T) {
	tests := []struct {
		status int
		want   Outcome
	}{
		{200, Delivered}, {202, Delivered}, {204, Delivered},
		{500, Retry}, {502, Retry}, {503, Retry}, {429, Retry}, {408, Retry},
		{400, Reject}, {401, Reject}, {404, Reject}, {413, Reject},
		{302, Reject}, {307, Reject}, // redirects are not followed
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			rec, srv := newRecorder(t, tt.status)
			s := localSender(SenderConfig{})
			got, err := s.Send(context.Background(), "r-1", srv.URL+"/hook", "", []byte(`{}`))
			if got != tt.want {
				t.Fatalf("status %d: outcome %v (%v), want %v", tt.status, got, err, tt.want)
			}
			if (got == Delivered) != (err == nil) {
				t.Fatalf("outcome %v with err %v", got, err)
			}
			if rec.requests.Load() != 1 {
				t.Fatalf("receiver got %d requests, want 1", rec.requests.Load())
			}
		})
	}
}

func TestSendNetworkErrorRetries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	got, err := localSender(SenderConfig{}).Send(context.Background(), "r-1", "http://"+addr+"/", "", []byte(`{}`))
	if got != Retry || err == nil {
		t.Fatalf("outcome %v, %v; want Retry with an error", got, err)
	}
}

func TestSendTimeoutRetries(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	got, err := localSender(SenderConfig{Timeout: 50 * time.Millisecond}).Send(context.Background(), "r-1", srv.URL, "", []byte(`{}`))
	if got != Retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("outcome %v, %v; want Retry, deadline exceeded", got, err)
	}
}

func TestBreakerOpensAfterFailures(t *testing.T) {
	rec, srv := newRecorder(t, http.StatusServiceUnavailable)
	s := localSender(SenderConfig{BreakerFailures: 3, BreakerOpen: time.Hour})
	ctx := context.Background()
	for i := range 3 {
		if got, _ := s.Send(ctx, "r-down", srv.URL, "", []byte(`{}`)); got != Retry {
			t.Fatalf("attempt %d: %v, want Retry", i, got)
		}
	}
	got, err := s.Send(ctx, "r-down", srv.URL, "", []byte(`{}`))
	if got != Retry || !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("after 3 failures: %v, %v; want Retry from an open breaker", got, err)
	}
	if n := rec.requests.Load(); n != 3 {
		t.Fatalf("receiver got %d requests, want 3 (none once open)", n)
	}
	// The breaker is per receiver: another receiver on the same URL still posts.
	rec.status.Store(http.StatusOK)
	if got, err := s.Send(ctx, "r-other", srv.URL, "", []byte(`{}`)); got != Delivered {
		t.Fatalf("other receiver: %v, %v", got, err)
	}
}

func TestBreakerHalfOpensAndCloses(t *testing.T) {
	rec, srv := newRecorder(t, http.StatusInternalServerError)
	s := localSender(SenderConfig{BreakerFailures: 1, BreakerOpen: 20 * time.Millisecond})
	ctx := context.Background()
	s.Send(ctx, "r-1", srv.URL, "", nil)
	if got, err := s.Send(ctx, "r-1", srv.URL, "", nil); !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("want open breaker, got %v %v", got, err)
	}
	rec.status.Store(http.StatusOK)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := s.Send(ctx, "r-1", srv.URL, "", nil)
		if got == Delivered {
			break
		}
		if !errors.Is(err, gobreaker.ErrOpenState) || time.Now().After(deadline) {
			t.Fatalf("breaker never let a probe through: %v %v", got, err)
		}
		time.Sleep(5 * time.Millisecond) // polling the breaker's open period
	}
}

func TestRejectDoesNotTripBreaker(t *testing.T) {
	rec, srv := newRecorder(t, http.StatusBadRequest)
	s := localSender(SenderConfig{BreakerFailures: 2, BreakerOpen: time.Hour})
	for range 5 {
		if got, _ := s.Send(context.Background(), "r-1", srv.URL, "", nil); got != Reject {
			t.Fatalf("outcome %v, want Reject", got)
		}
	}
	if rec.requests.Load() != 5 {
		t.Fatalf("requests %d, want 5: a receiver that answers 400 is up", rec.requests.Load())
	}
}

func TestSendSignsOnlyWithSecret(t *testing.T) {
	rec, srv := newRecorder(t, http.StatusOK)
	s := localSender(SenderConfig{UserAgent: "canopy-test"})
	body := []byte(`{"version":"4"}`)
	ctx := context.Background()
	if got, err := s.Send(ctx, "r-1", srv.URL, "", body); got != Delivered {
		t.Fatal(got, err)
	}
	if got, err := s.Send(ctx, "r-1", srv.URL, "s3cret", body); got != Delivered {
		t.Fatal(got, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	unsigned, signed := rec.headers[0], rec.headers[1]
	if unsigned.Get(SignatureHeader) != "" || unsigned.Get(TimestampHeader) != "" {
		t.Errorf("signed without a secret: %v", unsigned)
	}
	if ct := unsigned.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if ua := unsigned.Get("User-Agent"); ua != "canopy-test" {
		t.Errorf("User-Agent %q", ua)
	}
	ts, sig := signed.Get(TimestampHeader), signed.Get(SignatureHeader)
	if !receiverCheck("s3cret", ts, sig, rec.bodies[1]) {
		t.Fatalf("receiver cannot verify %s=%q %s=%q", TimestampHeader, ts, SignatureHeader, sig)
	}
	if err := Verify([]byte("s3cret"), ts, sig, rec.bodies[1], time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestSendRefusedURL(t *testing.T) {
	rec, srv := newRecorder(t, http.StatusOK)
	s := NewSender(SenderConfig{}) // private targets not allowed
	for _, url := range []string{srv.URL + "/hook", "ftp://93.184.216.34/", "http://169.254.169.254/"} {
		got, err := s.Send(context.Background(), "r-1", url, "", []byte(`{}`))
		if got != Reject || !errors.Is(err, ErrURLRefused) {
			t.Errorf("%s: %v, %v; want Reject, ErrURLRefused", url, got, err)
		}
	}
	if rec.requests.Load() != 0 {
		t.Fatalf("a refused receiver got %d requests", rec.requests.Load())
	}
}

func TestSendReusesConnections(t *testing.T) {
	rec, srv := newRecorder(t, http.StatusOK)
	s := localSender(SenderConfig{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if got, err := s.Send(context.Background(), "r-1", srv.URL, "", []byte(`{}`)); got != Delivered {
					t.Error(got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Without keep-alive this is 400; the transport may race a spare dial
	// against a connection coming back idle, so a few more than 8 happen.
	if n := rec.conns.Load(); n > 16 {
		t.Fatalf("400 posts by 8 workers opened %d connections, want <= 16 (keep-alive)", n)
	}
}

func TestBackoff(t *testing.T) {
	prevMax := time.Duration(0)
	for attempt := 1; attempt <= 40; attempt++ {
		d := min(time.Second<<min(attempt-1, 30), 5*time.Minute)
		for range 50 {
			got := Backoff(attempt)
			if got < d/2 || got > d {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", attempt, got, d/2, d)
			}
		}
		if d < prevMax {
			t.Fatalf("attempt %d: cap %s shrank", attempt, d)
		}
		prevMax = d
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[Backoff(5)] = true
	}
	if len(seen) < 2 {
		t.Fatal("no jitter")
	}
}

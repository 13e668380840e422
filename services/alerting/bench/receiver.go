package alertbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Labels every bench alert carries; the receiver finds the alert's run and
// index from them.
const (
	LabelRun     = "bench_run"
	LabelAlertID = "alert_id"
	LabelGroup   = "group"
	AlertName    = "BenchAlert"
)

// Receiver is the webhook receiver both servers deliver to. It records when
// each bench alert first arrived as firing, per run, and counts repeats.
type Receiver struct {
	srv *http.Server
	url string

	mu   sync.RWMutex
	runs map[string]*Run

	posts, badPosts atomic.Int64
}

// Run is one step's alerts: when each was posted and first delivered
// (unix nanoseconds, 0 for not yet), by alert index.
type Run struct {
	ID        string
	sent      []atomic.Int64
	got       []atomic.Int64
	delivered atomic.Int64
	repeats   atomic.Int64
	unknown   atomic.Int64
}

// payload is the part of a webhook v4 body the receiver reads.
type payload struct {
	Version string `json:"version"`
	Alerts  []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// StartReceiver listens on a free loopback port until ctx ends or Close.
func StartReceiver(ctx context.Context) (*Receiver, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver listen: %w", err)
	}
	r := &Receiver{runs: map[string]*Run{}, url: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.badPosts.Add(1)
		}
	}()
	return r, nil
}

// URL is where servers should post.
func (r *Receiver) URL() string { return r.url }

// Close stops the server.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

// NewRun registers a run of up to n alerts.
func (r *Receiver) NewRun(id string, n int) *Run {
	run := &Run{ID: id, sent: make([]atomic.Int64, n), got: make([]atomic.Int64, n)}
	r.mu.Lock()
	r.runs[id] = run
	r.mu.Unlock()
	return run
}

// EndRun forgets a run (later deliveries of it are ignored).
func (r *Receiver) EndRun(id string) {
	r.mu.Lock()
	delete(r.runs, id)
	r.mu.Unlock()
}

// ServeHTTP records one webhook post.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	var p payload
	if err := json.NewDecoder(req.Body).Decode(&p); err != nil || p.Version != "4" {
		r.badPosts.Add(1)
		http.Error(w, "not a webhook v4 payload", http.StatusBadRequest)
		return
	}
	r.posts.Add(1)
	for _, a := range p.Alerts {
		if a.Status != "firing" {
			continue
		}
		r.mu.RLock()
		run := r.runs[a.Labels[LabelRun]]
		r.mu.RUnlock()
		if run == nil {
			continue
		}
		run.record(a.Labels[LabelAlertID], now)
	}
	w.WriteHeader(http.StatusOK)
}

// record notes alert id's arrival at now.
func (run *Run) record(id string, now int64) {
	i, err := strconv.Atoi(id)
	if err != nil || i < 0 || i >= len(run.got) {
		run.unknown.Add(1)
		return
	}
	if run.got[i].CompareAndSwap(0, now) {
		run.delivered.Add(1)
		return
	}
	run.repeats.Add(1)
}

// Delivered is how many distinct alerts arrived.
func (run *Run) Delivered() int64 { return run.delivered.Load() }

// Posts is how many webhook payloads arrived in all, and how many were not
// valid v4 payloads.
func (r *Receiver) Posts() (ok, bad int64) { return r.posts.Load(), r.badPosts.Load() }

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

var errNoStream = errors.New("no such stream")

// repo is the stream store as a map: pure logic tests only (mysqlstore has
// its own tests against MariaDB).
type repo struct {
	mu      sync.Mutex
	streams map[string]stream.Stream
	saves   []change.Checkpoint
	events  []eventbus.Event
	deleted []string
	ddl     []capture.DDL
	failCP  error // SaveCheckpoint fails with it while set
	// pending is each stream's unreported usage; usage the reports.
	pending map[string]int64
	usage   []events.CDCStreamUsage
}

func newRepo(ss ...stream.Stream) *repo {
	r := &repo{streams: map[string]stream.Stream{}, pending: map[string]int64{}}
	for _, s := range ss {
		r.streams[s.ID] = s
	}
	return r
}

func (r *repo) Get(_ context.Context, id string) (stream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.streams[id]
	if !ok {
		return stream.Stream{}, errNoStream
	}
	return s, nil
}

func (r *repo) Active(context.Context) ([]stream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []stream.Stream
	for _, s := range r.streams {
		out = append(out, s)
	}
	return out, nil
}

func (r *repo) SaveCheckpoint(_ context.Context, id string, cp change.Checkpoint, st stream.State, rows int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failCP != nil {
		return r.failCP
	}
	s := r.streams[id]
	s.Checkpoint, s.State = cp, st
	r.streams[id] = s
	r.saves = append(r.saves, cp)
	r.pending[id] += rows
	return nil
}

func (r *repo) EmitUsage(_ context.Context, id string) (events.CDCStreamUsage, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.pending[id]
	if n == 0 {
		return events.CDCStreamUsage{}, false, nil
	}
	u := events.CDCStreamUsage{StreamID: id, Rows: n, To: time.Now()}
	r.pending[id] = 0
	r.usage = append(r.usage, u)
	return u, true, nil
}

// reported returns the usage reports so far and the rows they add up to.
func (r *repo) reported() ([]events.CDCStreamUsage, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum int64
	for _, u := range r.usage {
		sum += u.Rows
	}
	return slices.Clone(r.usage), sum
}

func (r *repo) SetStatus(_ context.Context, id string, st stream.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.streams[id]
	if !ok {
		return errNoStream
	}
	s.Status = st
	if st.State == stream.StateFailed {
		s.State = st.State
	}
	r.streams[id] = s
	return nil
}

func (r *repo) RecordDDL(_ context.Context, _ string, d capture.DDL) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ddl = append(r.ddl, d)
	return nil
}

func (r *repo) Publish(_ context.Context, ev eventbus.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *repo) Delete(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.streams, id)
	r.deleted = append(r.deleted, id)
	return nil
}

func (r *repo) stream(id string) stream.Stream {
	s, _ := r.Get(context.Background(), id)
	return s
}

func (r *repo) set(id string, fn func(*stream.Stream)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.streams[id]
	fn(&s)
	r.streams[id] = s
}

func (r *repo) eventTypes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

// nodes is provisioning's view as a value the test swaps.
type nodes struct {
	mu sync.Mutex
	in provview.Instance
}

func (n *nodes) Instance(_ context.Context, id string) (provview.Instance, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if id != n.in.ID {
		return provview.Instance{}, provview.ErrNotFound
	}
	return n.in, nil
}

func (n *nodes) set(nodes ...provview.Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.in.Nodes = nodes
}

// gate is a sink double that holds each Write until the test answers it.
type gate struct {
	writes chan *write
}

type write struct {
	msgs   []change.Message
	answer chan error
}

func newGate() *gate { return &gate{writes: make(chan *write)} }

func (g *gate) Write(ctx context.Context, msgs []change.Message) error {
	w := &write{msgs: msgs, answer: make(chan error, 1)}
	select {
	case g.writes <- w:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-w.answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next waits for the next write.
func (g *gate) next(t *testing.T) *write {
	t.Helper()
	select {
	case w := <-g.writes:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("no write to the sink")
		return nil
	}
}

// okSink acknowledges everything.
type okSink struct{}

func (okSink) Write(context.Context, []change.Message) error { return nil }

// captures is a capture double: each run is handed to the test, which
// feeds its channel and ends it.
type captures struct {
	runs chan *run
}

type run struct {
	cfg    capture.Config
	out    chan<- change.Batch
	ctx    context.Context
	finish chan error
}

func newCaptures() *captures { return &captures{runs: make(chan *run, 16)} }

func (c *captures) Run(ctx context.Context, cfg capture.Config, out chan<- change.Batch) error {
	r := &run{cfg: cfg, out: out, ctx: ctx, finish: make(chan error, 1)}
	c.runs <- r
	select {
	case err := <-r.finish:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *captures) next(t *testing.T) *run {
	t.Helper()
	select {
	case r := <-c.runs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("capture not started")
		return nil
	}
}

func (c *captures) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-c.runs:
		t.Fatalf("unexpected capture from %s at %q", r.cfg.Source.Addr, r.cfg.Start)
	case <-time.After(d):
	}
}

// send hands a batch to the pipeline.
func (r *run) send(t *testing.T, b change.Batch) {
	t.Helper()
	select {
	case r.out <- b:
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline does not take batches")
	}
}

// ended waits until the run's context ended (stopped or moved).
func (r *run) ended(t *testing.T) {
	t.Helper()
	select {
	case <-r.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("capture was not stopped")
	}
}

func rows(topic string, gtid string, n int) []change.Message {
	out := make([]change.Message, n)
	for i := range out {
		out[i] = change.Message{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, i), Value: []byte(`{}`), GTID: gtid, Row: i,
			EventTime: time.Now()}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const inst = "i1"

var (
	primary = provview.Node{ID: "n0", Address: "10.0.0.1:3306", Role: "primary", RegionRole: "primary", Healthy: true}
	replica = provview.Node{ID: "n1", Address: "10.0.0.2:3306", Role: "replica", RegionRole: "primary", Healthy: true}
	other   = provview.Node{ID: "n2", Address: "10.0.0.3:3306", Role: "replica", RegionRole: "primary", Healthy: true}
)

func newNodes(ns ...provview.Node) *nodes {
	return &nodes{in: provview.Instance{ID: inst, Tenant: "acme", Engine: "mysql", State: "ready", Nodes: ns,
		CDC: provview.Credentials{Username: "canopy_cdc", Password: "pw"}}}
}

func streamOf(id string, st stream.State, gtid string) stream.Stream {
	return stream.Stream{ID: id, Tenant: "acme", Instance: inst, State: st,
		Spec:       stream.Spec{Tables: []string{"app.*"}, Snapshot: "initial"},
		Checkpoint: change.Checkpoint{GTID: gtid}}
}

// harness runs a manager until the test ends.
type harness struct {
	m    *Manager
	repo *repo
	reg  *prometheus.Registry
}

func start(t *testing.T, cfg Config, rp *repo, ns Nodes, sk Sink, opts ...Option) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts = append([]Option{WithPosition(func(context.Context, capture.Source) (string, error) { return "", nil }),
		WithSnapshot(func(context.Context, snapshot.Config, *snapshot.Progress, chan<- change.Batch) (snapshot.Progress, error) {
			return snapshot.Progress{}, errors.New("no snapshot in this test")
		})}, opts...)
	m, err := New(cfg, rp, ns, sk, slog.New(slog.DiscardHandler), reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("manager did not stop")
		}
	})
	return &harness{m: m, repo: rp, reg: reg}
}

package syncrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// The fakes model MySQL instances just enough for the Manager's logic: a
// binlog of transactions (GTIDs of domain 0, each with the writer's server
// id), one table app.t of rows keyed by an int id, and the watermarks a
// sync applier keeps in the instance. Writes of an applier go to the
// instance's binlog with the job's server id, as apply's
// SET SESSION server_id does, so two-way echo is modelled.

const testTable = "app.t"

type ftx struct {
	seq    uint64
	server uint32
	msgs   []change.Message
}

type instance struct {
	id, addr string
	server   uint32
	binlog   []ftx
	rows     map[int64][]any
	wms      map[string]syncjob.Watermark // from → watermark
	seen     map[string]bool              // from/gtid/row of every applied change
	dups     int
	changed  chan struct{}
}

func (in *instance) pos() string {
	if len(in.binlog) == 0 {
		return ""
	}
	l := in.binlog[len(in.binlog)-1]
	return fmt.Sprintf("0-%d-%d", l.server, l.seq)
}

// world is every fake instance, and what the Manager asked of them.
type world struct {
	t  *testing.T
	mu sync.Mutex
	// byID and byAddr index the instances; nodes may move (failover).
	byID   map[string]*instance
	byAddr map[string]*instance
	nodes  map[string][]provview.Node

	captures []CaptureSpec
	loads    []LoadSpec
	resumes  []*snapshot.Progress
	opens    []string // "to@addr from"
	resolved []syncjob.Conflict
	// failApply fails an Apply (before it commits anything); failCapture
	// fails a capture before it sends its n-th batch.
	failApply   func(to string, b change.Batch) error
	failCapture func(s CaptureSpec, n int) error
	onLoad      func(s LoadSpec)
	verify      VerifyFunc
}

func newWorld(t *testing.T) *world {
	return &world{t: t, byID: map[string]*instance{}, byAddr: map[string]*instance{}, nodes: map[string][]provview.Node{}}
}

func (w *world) add(id string, server uint32) *instance {
	w.mu.Lock()
	defer w.mu.Unlock()
	addr := fmt.Sprintf("127.0.0.1:%d", 33000+server)
	in := &instance{id: id, addr: addr, server: server, rows: map[int64][]any{}, wms: map[string]syncjob.Watermark{},
		seen: map[string]bool{}, changed: make(chan struct{})}
	w.byID[id], w.byAddr[addr] = in, in
	w.nodes[id] = []provview.Node{{ID: id + "-n1", Address: addr, Role: provview.RolePrimary, Healthy: true}}
	return in
}

// write commits a user transaction on an instance: each op is "c"/"u"/"d"
// of row id with value v.
func (w *world) write(id string, server uint32, ops ...op) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in := w.byID[id]
	tx := ftx{seq: uint64(len(in.binlog) + 1), server: server}
	g := fmt.Sprintf("0-%d-%d", server, tx.seq)
	for i, o := range ops {
		rc := &change.RowChange{DB: "app", Table: "t", Op: o.op, Columns: []string{"id", "v"}, Key: []int{0}}
		old, had := in.rows[o.id]
		switch o.op {
		case "c":
			rc.After = []any{o.id, o.v}
		case "u":
			rc.Before, rc.After = old, []any{o.id, o.v}
		case "d":
			rc.Before = old
		}
		if o.op != "c" && !had {
			w.t.Fatalf("write %s of missing row %d on %s", o.op, o.id, id)
		}
		applyRow(in, rc)
		tx.msgs = append(tx.msgs, change.Message{Topic: "x", GTID: g, Row: i, Change: rc, ServerID: server, EventTime: time.Now()})
	}
	in.binlog = append(in.binlog, tx)
	close(in.changed)
	in.changed = make(chan struct{})
}

type op struct {
	op string
	id int64
	v  string
}

func applyRow(in *instance, rc *change.RowChange) {
	switch rc.Op {
	case "c", "u", "r":
		if rc.Before != nil {
			delete(in.rows, rc.Before[0].(int64))
		}
		in.rows[rc.After[0].(int64)] = slices.Clone(rc.After)
	case "d":
		delete(in.rows, rc.Before[0].(int64))
	}
}

func (w *world) rows(id string) map[int64]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[int64]string{}
	for k, r := range w.byID[id].rows {
		out[k] = r[1].(string)
	}
	return out
}

func (w *world) watermark(to, from string) (syncjob.Watermark, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wm, ok := w.byID[to].wms[from]
	return wm, ok
}

func (w *world) capturesSnapshot() []CaptureSpec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.captures)
}

// Instance is the Nodes fake.
func (w *world) Instance(_ context.Context, id string) (provview.Instance, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ns, ok := w.nodes[id]
	if !ok {
		return provview.Instance{}, fmt.Errorf("instance %s: %w", id, provview.ErrNotFound)
	}
	return provview.Instance{ID: id, Engine: "mysql", Nodes: slices.Clone(ns),
		CDC: provview.Credentials{Username: "canopy_cdc", Password: "pw"}}, nil
}

func (w *world) inst(addr string) (*instance, error) {
	in, ok := w.byAddr[addr]
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	return in, nil
}

func (w *world) position(_ context.Context, src capture.Source) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in, err := w.inst(src.Addr)
	if err != nil {
		return "", err
	}
	return in.pos(), nil
}

func seqOf(pos string) uint64 {
	if pos == "" {
		return 0
	}
	f := strings.Split(pos, "-")
	n, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
	return n
}

// capture reads an instance's fake binlog after s.Start, one batch per
// message, the checkpoint on a transaction's last one, skipping the
// transactions of s.SkipServerID (their position still moves).
func (w *world) capture(ctx context.Context, s CaptureSpec, out chan<- change.Batch) error {
	w.mu.Lock()
	w.captures = append(w.captures, s)
	in, err := w.inst(s.Source.Addr)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	var cur uint64
	switch {
	case s.Start != "":
		cur = seqOf(s.Start)
	case !s.FromStart:
		cur = seqOf(in.pos())
	}
	fail := w.failCapture
	w.mu.Unlock()
	if fail != nil {
		if err := fail(s, -1); err != nil { // at connect
			return err
		}
	}
	sent := 0
	for {
		w.mu.Lock()
		var next *ftx
		if int(cur) < len(in.binlog) {
			tx := in.binlog[cur]
			next = &tx
		}
		wait := in.changed
		fail := w.failCapture
		w.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wait:
				continue
			}
		}
		cur = next.seq
		cp := &change.Checkpoint{GTID: fmt.Sprintf("0-%d-%d", next.server, next.seq)}
		var batches []change.Batch
		if next.server == s.SkipServerID {
			batches = append(batches, change.Batch{})
		} else {
			for _, m := range next.msgs {
				if s.Include(m.Change.DB, m.Change.Table) {
					batches = append(batches, change.Batch{Messages: []change.Message{m}})
				}
			}
			if len(batches) == 0 {
				batches = append(batches, change.Batch{})
			}
		}
		batches[len(batches)-1].Checkpoint = cp
		for _, b := range batches {
			if fail != nil {
				if err := fail(s, sent); err != nil {
					return err
				}
			}
			sent++
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// load is the decoded snapshot: the included rows at the current position,
// two per chunk, resumable from the progress's last key.
func (w *world) load(ctx context.Context, s LoadSpec, resume *snapshot.Progress, out chan<- change.Batch) (snapshot.Progress, error) {
	if w.onLoad != nil {
		w.onLoad(s)
	}
	w.mu.Lock()
	w.loads = append(w.loads, s)
	w.resumes = append(w.resumes, resume)
	in, err := w.inst(s.Source.Addr)
	if err != nil {
		w.mu.Unlock()
		return snapshot.Progress{}, err
	}
	pos := in.pos()
	var ids []int64
	for id := range in.rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	rows := map[int64][]any{}
	for _, id := range ids {
		rows[id] = slices.Clone(in.rows[id])
	}
	w.mu.Unlock()
	p := snapshot.Progress{GTID: pos, Tables: []snapshot.TableProgress{{Name: testTable}}}
	var after int64 = -1
	if resume != nil {
		p = *resume
		p.Tables = slices.Clone(resume.Tables) // the caller's progress stays as it was handed over
		if k := p.Tables[0].LastKey; len(k) > 0 {
			after = int64(k[0].(float64))
		}
	}
	var chunk []change.Message
	flush := func(last int64) error {
		p.Tables[0].LastKey = []any{last}
		p.Tables[0].Rows += int64(len(chunk))
		raw, _ := json.Marshal(p)
		b := change.Batch{Messages: chunk, Checkpoint: &change.Checkpoint{GTID: p.GTID, Snapshot: raw}}
		chunk = nil
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, id := range ids {
		if id <= after {
			continue
		}
		chunk = append(chunk, change.Message{Topic: "x", GTID: p.GTID, Row: int(id), EventTime: time.Now(),
			Change: &change.RowChange{DB: "app", Table: "t", Op: "r", Columns: []string{"id", "v"}, Key: []int{0}, After: rows[id]}})
		if len(chunk) == 2 {
			if err := flush(id); err != nil {
				return snapshot.Progress{}, err
			}
		}
	}
	if len(chunk) > 0 {
		if err := flush(ids[len(ids)-1]); err != nil {
			return snapshot.Progress{}, err
		}
	}
	p.Tables[0].Done, p.Tables[0].LastKey = true, nil
	return p, nil
}

// target is the fake applier: a transaction of pending changes committed
// with the watermark when a batch has a checkpoint.
type target struct {
	w       *world
	in      *instance
	cfgFrom string
	server  uint32
	pending []change.Message
	closed  bool
}

func (w *world) openMySQL(_ context.Context, t MySQLTarget) (Target, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in, err := w.inst(t.Target.Addr)
	if err != nil {
		return nil, err
	}
	w.opens = append(w.opens, t.To+"@"+t.Target.Addr+" from "+t.From)
	return &target{w: w, in: in, cfgFrom: t.From, server: t.ServerID}, nil
}

func (w *world) openRedis(_ context.Context, t RedisTarget) (Target, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in, err := w.inst(t.Addr)
	if err != nil {
		return nil, err
	}
	w.opens = append(w.opens, "redis@"+t.Addr+" from "+t.From)
	return &target{w: w, in: in, cfgFrom: t.From}, nil
}

func (t *target) Watermark(context.Context) (syncjob.Watermark, error) {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	return t.in.wms[t.cfgFrom], nil
}

func (t *target) Apply(_ context.Context, b change.Batch) (syncjob.Stats, error) {
	t.w.mu.Lock()
	fail := t.w.failApply
	t.w.mu.Unlock()
	if fail != nil {
		if err := fail(t.in.id, b); err != nil {
			t.pending = nil // the target rolled the open transaction back
			return syncjob.Stats{}, err
		}
	}
	t.pending = append(t.pending, b.Messages...)
	if b.Checkpoint == nil {
		return syncjob.Stats{}, nil
	}
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	in := t.in
	st := syncjob.Stats{Tables: map[string]int64{}}
	tx := ftx{seq: uint64(len(in.binlog) + 1), server: t.server}
	for i, m := range t.pending {
		rc := m.Change
		if rc.Op != "r" {
			k := t.cfgFrom + "/" + m.GTID + "/" + strconv.Itoa(m.Row)
			if in.seen[k] {
				in.dups++
			}
			in.seen[k] = true
		}
		applyRow(in, rc)
		st.Applied++
		st.Tables[rc.DB+"."+rc.Table]++
		tx.msgs = append(tx.msgs, change.Message{Topic: "x", GTID: fmt.Sprintf("0-%d-%d", t.server, tx.seq), Row: i,
			Change: rc, ServerID: t.server, EventTime: time.Now()})
	}
	wm := in.wms[t.cfgFrom]
	wm.Position, wm.Load, wm.Applied = b.Checkpoint.GTID, b.Checkpoint.Snapshot, wm.Applied+st.Applied
	in.wms[t.cfgFrom] = wm
	if len(tx.msgs) > 0 && t.server != 0 {
		in.binlog = append(in.binlog, tx)
		close(in.changed)
		in.changed = make(chan struct{})
	}
	t.pending = nil
	return st, nil
}

func (t *target) Drop(context.Context) error {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	delete(t.in.wms, t.cfgFrom)
	return nil
}

func (t *target) Resolve(_ context.Context, c syncjob.Conflict, _ syncjob.Resolution) error {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	t.w.resolved = append(t.w.resolved, c)
	return nil
}

func (t *target) Close() error {
	t.pending = nil
	t.closed = true
	return nil
}

// repo is the job store as a map.
type repo struct {
	mu       sync.Mutex
	jobs     map[string]syncjob.Job
	states   []string // "id:state:reason"
	deleted  []string
	created  []syncjob.Verification
	finished []syncjob.Verification
	resolved map[string]syncjob.Resolution
}

func newRepo(jobs ...syncjob.Job) *repo {
	r := &repo{jobs: map[string]syncjob.Job{}, resolved: map[string]syncjob.Resolution{}}
	for _, j := range jobs {
		r.jobs[j.ID] = j
	}
	return r
}

func (r *repo) ActiveJobs(context.Context) ([]syncjob.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []syncjob.Job
	for _, j := range r.jobs {
		out = append(out, j)
	}
	return out, nil
}

func (r *repo) GetJob(_ context.Context, _, id string) (syncjob.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return syncjob.Job{}, fmt.Errorf("job %s: %w", id, syncjob.ErrNotFound)
	}
	return j, nil
}

func (r *repo) job(id string) syncjob.Job {
	j, _ := r.GetJob(context.Background(), "", id)
	return j
}

func (r *repo) SetJobState(_ context.Context, id string, st syncjob.State, lastError string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[id]
	j.State, j.Status.LastError = st, lastError
	r.jobs[id] = j
	r.states = append(r.states, id+":"+string(st)+":"+lastError)
	return nil
}

// set is what the API does: a user's state change.
func (r *repo) set(id string, st syncjob.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[id]
	j.State = st
	r.jobs[id] = j
}

func (r *repo) SaveJobStatus(_ context.Context, id string, st syncjob.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return syncjob.ErrNotFound
	}
	// As the store: the last error is SetJobState's.
	st.LastError = j.Status.LastError
	j.Status = st
	r.jobs[id] = j
	return nil
}

func (r *repo) DeleteJob(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, id)
	r.deleted = append(r.deleted, id)
	return nil
}

func (r *repo) CreateVerification(_ context.Context, v syncjob.Verification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.created = append(r.created, v)
	return nil
}

func (r *repo) FinishVerification(_ context.Context, v syncjob.Verification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, v)
	return nil
}

func (r *repo) ResolveConflict(_ context.Context, cid string, use syncjob.Resolution) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolved[cid] = use
	return nil
}

func (r *repo) Record(context.Context, syncjob.Conflict) error { return nil }

func (r *repo) finishedVerifications() []syncjob.Verification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.finished)
}

// start runs a Manager over the world until the test (or stop) ends it.
func start(t *testing.T, w *world, r *repo, opts ...Option) (*Manager, func()) {
	t.Helper()
	base := []Option{WithCapture(w.capture), WithSnapshot(w.load), WithOpenMySQL(w.openMySQL), WithOpenRedis(w.openRedis),
		WithPosition(w.position), WithTables(func(context.Context, capture.Source, func(string, string) bool) ([]string, error) {
			return []string{testTable}, nil
		}),
		WithVerify(func(ctx context.Context, s VerifySpec) (syncjob.Report, error) {
			if w.verify != nil {
				return w.verify(ctx, s)
			}
			return syncjob.Report{Consistent: true}, nil
		})}
	cfg := Config{StatusInterval: 20 * time.Millisecond, ResyncInterval: time.Hour, RetryInitial: 5 * time.Millisecond,
		RetryMax: 20 * time.Millisecond, ApplyRows: 5, OwnGrace: 200 * time.Millisecond, SettleTimeout: 5 * time.Second}
	m, err := New(cfg, r, w, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return m, stop
}

// eventually waits for cond with a deadline.
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

func job(id string, spec syncjob.Spec) syncjob.Job {
	if spec.Tables == nil {
		spec.Tables = []string{"app.*"}
	}
	if spec.Conflict == "" {
		spec.Conflict = syncjob.SourceWins
	}
	return syncjob.Job{ID: id, Tenant: "t1", Spec: spec, State: syncjob.StateRunning, ServerID: 0x7d000042}
}

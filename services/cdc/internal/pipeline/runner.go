package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// queueDepth is how many batches may wait between a capture and Kafka:
// with batches of at most MaxBatch messages, a stream's memory is bounded
// and a slow Kafka slows the binlog read down (back-pressure).
const queueDepth = 4

// errStalled: the replica being read stopped following the primary.
var errStalled = errors.New("stalled behind the primary")

// errReconnect: the attempt was cut to move to another node.
var errReconnect = errors.New("reconnect to the preferred node")

// permanentError is a failure retrying cannot fix; the stream fails with
// reason as its last_error.
type permanentError struct {
	reason string
	err    error
}

func (e *permanentError) Error() string { return e.reason }
func (e *permanentError) Unwrap() error { return e.err }

// runner runs one stream until stopped or failed.
type runner struct {
	m        *Manager
	id       string
	tenant   string
	instance string
	spec     stream.Spec
	prefix   string
	logger   *slog.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	kick    chan struct{} // cap 1: the topology changed
	started time.Time

	// writeMu orders the runner's writes of state (checkpoints, status,
	// failure), so a status computed before a state change is never stored
	// after it.
	writeMu sync.Mutex

	mu     sync.Mutex
	state  stream.State
	cp     change.Checkpoint // last stored
	source capture.Source
	// lagSource is the node whose binlog end the lag is measured against
	// (the primary, else source).
	lagSource  capture.Source
	sourceNode string
	connected  bool
	lastEvent  time.Time // commit time of the last acknowledged message
	events     int64     // messages acknowledged, from the stored count on
	// uncovered counts the data rows (row changes and snapshot reads, not
	// tombstones or schema changes) Kafka acknowledged in this attempt
	// since the last stored checkpoint: the usage the next checkpoint
	// stores. An attempt starts from that checkpoint, re-publishing them,
	// so it starts again from 0 and no row is counted twice.
	uncovered int64
	tables    map[string]bool
	lastErr   string // the last transient failure, until a batch is delivered again
	ended     atomic.Bool
}

func newRunner(m *Manager, s stream.Stream) *runner {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &runner{m: m, id: s.ID, tenant: s.Tenant, instance: s.Instance, spec: s.Spec, prefix: Prefix(s.Tenant, s.Instance),
		logger: m.logger.With("stream_id", s.ID, "instance_id", s.Instance, "tenant", s.Tenant),
		ctx:    ctx, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1), started: time.Now(),
		state: s.State, cp: s.Checkpoint, events: s.Checkpoint.Events, tables: make(map[string]bool)}
	for _, t := range s.Status.CapturedTables {
		r.tables[t] = true
	}
	return r
}

func (r *runner) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (r *runner) finished() bool { return r.ended.Load() }

func (r *runner) currentState() stream.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func (r *runner) checkpoint() change.Checkpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cp
}

// run is the runner's loop: attempts (snapshot, then streaming) from the
// last checkpoint, reconnecting with backoff after each failure that
// retrying can fix; a permanent failure fails the stream. Once stopped
// it reports the usage its checkpoints counted and no event reported yet.
func (r *runner) run() {
	defer close(r.done)
	defer r.ended.Store(true)
	defer func() {
		// The runner's ctx is over; the report still gets a moment (the
		// pipeline stops before the database and the outbox relay).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), usageReportTimeout)
		defer cancel()
		r.reportUsage(ctx)
	}()
	ctx := r.ctx
	var status sync.WaitGroup
	status.Add(1)
	go func() {
		defer status.Done()
		r.statusLoop(ctx)
	}()
	defer status.Wait()
	defer r.cancel() // stops the status loop when the runner ends by itself

	r.m.metrics.setState(r.id, r.currentState())
	r.logger.Info("stream runner started", "state", r.currentState(), "gtid", r.checkpoint().GTID)
	bo := retry.Policy{Initial: r.m.cfg.RetryInitial, Max: r.m.cfg.RetryMax}.NewBackOff()
	prev, avoid := "", ""
	for ctx.Err() == nil {
		node, progressed, err := r.attempt(ctx, prev, avoid)
		prev, avoid = node, ""
		if ctx.Err() != nil {
			break
		}
		if err == nil {
			bo.Reset() // a phase ended (snapshot → streaming): go on at once
			continue
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			r.fail(ctx, perm)
			return
		}
		if errors.Is(err, errReconnect) {
			r.logger.Info("topology changed; reconnecting to the preferred node", "from", node)
			bo.Reset()
			continue
		}
		avoid = node
		if progressed {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		r.setTransient(err)
		r.logger.Warn("capture interrupted; resuming from the last checkpoint", "node", node, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		case <-r.kick:
		}
	}
	r.logger.Info("stream runner stopped", "gtid", r.checkpoint().GTID)
}

// attempt resolves the source node and runs the stream's current phase
// from the last checkpoint until it fails, ends (snapshot done) or the
// topology asks for another node. It returns the node it read and whether
// a checkpoint was stored.
func (r *runner) attempt(ctx context.Context, prev, avoid string) (nodeID string, progressed bool, err error) {
	in, err := r.m.nodes.Instance(ctx, r.instance)
	if err != nil {
		return "", false, fmt.Errorf("resolve nodes: %w", err)
	}
	node, err := PickSource(in, prev, avoid)
	if err != nil {
		return "", false, err
	}
	src := capture.Source{Addr: node.Address, User: in.CDC.Username, Password: in.CDC.Password}
	r.mu.Lock()
	// Lag is measured against the primary's binlog when there is one: a
	// replica whose replication stopped has an end the stream reaches
	// while missing everything the primary committed since.
	lagSrc := src
	for _, n := range in.Nodes {
		if n.Role == provview.RolePrimary && n.Address != "" {
			lagSrc.Addr = n.Address
		}
	}
	r.source, r.lagSource, r.sourceNode, r.connected = src, lagSrc, node.ID, true
	startCP := r.cp
	r.uncovered = 0 // this attempt re-publishes what startCP does not cover
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.connected = false
		progressed = r.cp.GTID != startCP.GTID || !bytes.Equal(r.cp.Snapshot, startCP.Snapshot)
		r.mu.Unlock()
	}()

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var moved atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watchTopology(actx, node.ID, node.Address, func() { moved.Store(true); cancel() })
	}()
	defer func() { <-watched }()
	var stalled atomic.Bool
	if lagSrc.Addr != src.Addr {
		stallWatched := make(chan struct{})
		go func() {
			defer close(stallWatched)
			r.watchStall(actx, node.ID, src, lagSrc, func() { stalled.Store(true); cancel() })
		}()
		defer func() { <-stallWatched }()
	}
	defer cancel()

	switch r.currentState() {
	case stream.StateSnapshotting:
		err = r.snapshot(ctx, actx, src)
	default:
		err = r.stream(ctx, actx, src)
	}
	if err != nil && moved.Load() && ctx.Err() == nil {
		return node.ID, false, errReconnect
	}
	if err != nil && stalled.Load() && ctx.Err() == nil {
		return node.ID, false, fmt.Errorf("source replica %s: %w", node.ID, errStalled)
	}
	var perm *permanentError
	if errors.As(err, &perm) && errors.Is(err, capture.ErrPositionLost) && node.Role != provview.RolePrimary {
		// A replica answers "not in the master's binlog" (1236) for a GTID
		// it has not applied yet: one back from a restart, or lagging. That
		// is no lost position while the primary may still have it; retry
		// away from the replica, and fail only if the primary lacks it too.
		return node.ID, false, fmt.Errorf("replica %s does not hold the checkpoint (yet): %w", node.ID, perm.err)
	}
	return node.ID, false, err
}

// watchStall cuts an attempt that reads a replica whose binlog stopped
// moving while the primary's went on: its replication broke (or it is
// frozen) and it would otherwise hold the stream silently. The next
// attempt avoids that node, so the stream goes on from the primary or
// another replica.
func (r *runner) watchStall(ctx context.Context, nodeID string, src, primary capture.Source, cut func()) {
	t := time.NewTicker(r.m.cfg.StatusInterval)
	defer t.Stop()
	var last string
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		pos, err := r.m.position(ctx, src)
		if err != nil {
			continue // a dead source fails the capture itself
		}
		if pos != last || since.IsZero() {
			last, since = pos, now
			continue
		}
		ppos, err := r.m.position(ctx, primary)
		if err != nil {
			continue
		}
		if behind, caught, err := distance(ppos, pos); err != nil || behind <= 0 && caught {
			since = now // idle, not stalled: the primary has nothing newer
			continue
		}
		if now.Sub(since) >= r.m.cfg.StallAfter {
			r.logger.Warn("source replica stalled behind the primary; moving off it", "node", nodeID,
				"replica_position", pos, "primary_position", ppos, "for", now.Sub(since))
			cut()
			return
		}
	}
}

// watchTopology waits for a topology change and cuts the attempt when the
// preferred source is no longer the node being read.
func (r *runner) watchTopology(ctx context.Context, nodeID, addr string, cut func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		in, err := r.m.nodes.Instance(ctx, r.instance)
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("re-read nodes after a topology change failed; staying on the current node", "err", err)
			}
			continue
		}
		n, err := PickSource(in, nodeID, "")
		if err == nil && (n.ID != nodeID || n.Address != addr) {
			r.logger.Info("preferred source moved", "from", nodeID, "to", n.ID)
			cut()
			return
		}
	}
}

// stream reads the binlog from the checkpoint's GTID.
func (r *runner) stream(ctx, actx context.Context, src capture.Source) error {
	cp := r.checkpoint()
	// An empty position after a snapshot is the position of a source that
	// had logged nothing yet: everything after it is in its binlog.
	fromStart := cp.GTID == "" && r.spec.Snapshot == stream.SnapshotInitial
	if cp.GTID == "" && !fromStart {
		// No position yet (snapshot "never"): start at the source's current
		// end and store it first, so a restart before the first change
		// resumes there instead of at a later end.
		pos, err := r.m.position(actx, src)
		if err != nil {
			return fmt.Errorf("read start position: %w", err)
		}
		if pos != "" {
			cp = change.Checkpoint{GTID: pos, Events: cp.Events}
			if err := r.save(ctx, cp, stream.StateStreaming); err != nil {
				return err
			}
		}
		fromStart = pos == ""
	}
	cfg := capture.Config{Source: src, ServerID: ServerID(r.id), Prefix: r.prefix, Include: r.spec.Includes,
		Tombstones: r.spec.Tombstones, Start: cp.GTID, FromStart: fromStart, MaxBatch: r.m.cfg.MaxBatch,
		OnDDL: func(ctx context.Context, d capture.DDL) error {
			if err := r.m.repo.RecordDDL(ctx, r.id, d); err != nil {
				return fmt.Errorf("record ddl at %s: %w", d.GTID, err)
			}
			return nil
		}}
	err := r.pump(ctx, actx, stream.StateStreaming, func(pctx context.Context, out chan<- change.Batch) error {
		return r.m.capture(pctx, cfg, out)
	})
	return r.classify(err, cp.GTID)
}

// snapshot copies the selected tables (resuming a crashed snapshot from its
// progress), then hands over to the binlog at the snapshot's GTID.
func (r *runner) snapshot(ctx, actx context.Context, src capture.Source) error {
	cp := r.checkpoint()
	var resume *snapshot.Progress
	if len(cp.Snapshot) > 0 {
		var p snapshot.Progress
		if err := json.Unmarshal(cp.Snapshot, &p); err != nil {
			return &permanentError{reason: fmt.Sprintf("stored snapshot progress is unreadable (%v); re-snapshot with POST /api/v1/instances/%s/cdc-streams/%s:resnapshot",
				err, r.instance, r.id), err: err}
		}
		resume = &p
	}
	cfg := snapshot.Config{Source: src, Prefix: r.prefix, Include: r.spec.Includes, ChunkSize: r.m.cfg.ChunkSize}
	var final snapshot.Progress
	err := r.pump(ctx, actx, stream.StateSnapshotting, func(pctx context.Context, out chan<- change.Batch) error {
		p, err := r.m.snapshot(pctx, cfg, resume, out)
		final = p
		return err
	})
	if err != nil {
		return r.classify(err, cp.GTID)
	}
	if final.GTID == "" {
		return errors.New("snapshot ended without a GTID position")
	}
	r.mu.Lock()
	for _, t := range final.Tables {
		r.tables[t.Name] = true
	}
	r.mu.Unlock()
	// Every chunk is acknowledged: streaming starts exactly at the
	// snapshot's position, so nothing is missed or doubled at the hand-over.
	next := change.Checkpoint{GTID: final.GTID, Events: r.eventCount()}
	if err := r.save(ctx, next, stream.StateStreaming); err != nil {
		return err
	}
	r.logger.Info("snapshot done; streaming", "gtid", final.GTID, "tables", len(final.Tables))
	return nil
}

// pump runs produce (a capture or a snapshot) into a bounded queue and
// delivers each batch in order. Writes use the runner's ctx, not the
// attempt's, so batches read before a reconnect still reach Kafka.
func (r *runner) pump(ctx, actx context.Context, state stream.State,
	produce func(ctx context.Context, out chan<- change.Batch) error) error {
	pctx, pcancel := context.WithCancel(actx)
	defer pcancel()
	ch := make(chan change.Batch, queueDepth)
	perr := make(chan error, 1)
	go func() {
		err := produce(pctx, ch)
		close(ch)
		perr <- err
	}()
	var werr error
	for b := range ch {
		if werr != nil {
			continue // drain, so the producer is never stuck on a send
		}
		b = r.coalesce(b, ch)
		if err := r.deliver(ctx, b, state); err != nil {
			werr = err
			pcancel()
		}
	}
	err := <-perr
	if werr != nil {
		return werr
	}
	return err
}

// deliver writes a batch and, only once Kafka acknowledged it, stores its
// checkpoint.
// coalesce appends to b the batches already waiting in ch (never waiting
// for one) up to MaxBatch messages, so a run of small transactions costs
// one Kafka write and one checkpoint instead of one each. The merged
// checkpoint is the last one: every message before it is in the write.
func (r *runner) coalesce(b change.Batch, ch <-chan change.Batch) change.Batch {
	for len(b.Messages) < r.m.cfg.MaxBatch {
		select {
		case nb, ok := <-ch:
			if !ok {
				return b
			}
			b.Messages = append(b.Messages, nb.Messages...)
			if nb.Checkpoint != nil {
				b.Checkpoint = nb.Checkpoint
			}
		default:
			return b
		}
	}
	return b
}

func (r *runner) deliver(ctx context.Context, b change.Batch, state stream.State) error {
	if len(b.Messages) > 0 {
		if err := r.m.sink.Write(ctx, b.Messages); err != nil {
			return fmt.Errorf("write %d messages to kafka: %w", len(b.Messages), err)
		}
		r.acked(b.Messages)
	}
	if b.Checkpoint == nil {
		return nil
	}
	cp := *b.Checkpoint
	cp.Events = r.eventCount()
	return r.save(ctx, cp, state)
}

func (r *runner) save(ctx context.Context, cp change.Checkpoint, state stream.State) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	rows := r.uncovered
	r.mu.Unlock()
	if err := r.m.repo.SaveCheckpoint(ctx, r.id, cp, state, rows); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", cp.GTID, err)
	}
	r.mu.Lock()
	changed := r.state != state
	r.cp, r.state, r.lastErr = cp, state, ""
	r.uncovered -= rows
	r.mu.Unlock()
	if changed {
		r.m.metrics.setState(r.id, state)
	}
	return nil
}

func (r *runner) acked(msgs []change.Message) {
	last := msgs[len(msgs)-1].EventTime
	r.mu.Lock()
	r.events += int64(len(msgs))
	if !last.IsZero() {
		r.lastEvent = last
	}
	for i := range msgs {
		t := tableOf(r.prefix, msgs[i].Topic)
		if t == "" {
			continue // a schema change
		}
		if !r.tables[t] {
			r.tables[t] = true
		}
		if msgs[i].Value != nil { // not a tombstone
			r.uncovered++
		}
	}
	r.lastErr = ""
	r.mu.Unlock()
	r.m.metrics.events.WithLabelValues(r.id).Add(float64(len(msgs)))
}

func (r *runner) eventCount() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

func (r *runner) setTransient(err error) {
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

// classify turns the failures no retry can fix into permanent errors with
// the reason the stream's last_error shows.
func (r *runner) classify(err error, gtid string) error {
	var poison *capture.PoisonError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, capture.ErrPositionLost):
		// Not always a purge: a node promoted in a failover that never
		// received the checkpoint's last transactions answers the same
		// error 1236, so the reason carries the server's own words.
		return &permanentError{err: err, reason: fmt.Sprintf(
			"the source's binlog does not hold position %s (purged past it, or never had it: transactions lost in a failover) [%v]; re-snapshot with POST /api/v1/instances/%s/cdc-streams/%s:resnapshot",
			gtid, err, r.instance, r.id)}
	case errors.As(err, &poison):
		return &permanentError{err: err, reason: fmt.Sprintf(
			"cannot decode the change at GTID %s in table %s, column %s: %v; the stream stopped rather than skip it",
			poison.GTID, poison.Table, poison.Column, poison.Err)}
	}
	return err
}

// fail marks the stream failed with the reason and publishes
// cdc.stream.failed.
func (r *runner) fail(ctx context.Context, perm *permanentError) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	r.state = stream.StateFailed
	cp := r.cp
	r.mu.Unlock()
	r.m.metrics.setState(r.id, stream.StateFailed)
	r.logger.Error("stream failed", "reason", perm.reason, "gtid", cp.GTID, "err", perm.err)
	st := r.status(0, 0, 0)
	st.LastError = perm.reason
	if err := r.m.repo.SetStatus(ctx, r.id, st); err != nil {
		r.logger.Error("store failed state", "err", err)
	}
	r.publish(ctx, events.TypeCDCStreamFailed, events.CDCStreamStatus{State: string(stream.StateFailed),
		Reason: perm.reason, GTID: cp.GTID})
}

// usageReportTimeout bounds a stopping runner's usage report.
const usageReportTimeout = 5 * time.Second

// reportUsage publishes cdc.stream.usage with the rows the stream's stored
// checkpoints counted since its last report (also by an earlier process
// that crashed before reporting). A failure loses nothing: the rows stay
// counted for the next report.
func (r *runner) reportUsage(ctx context.Context) {
	u, ok, err := r.m.repo.EmitUsage(ctx, r.id)
	if err != nil {
		r.logger.Warn("report usage; the rows stay counted for the next report", "err", err)
		return
	}
	if ok {
		r.logger.Debug("usage reported", "rows", u.Rows, "from", u.From, "to", u.To)
	}
}

func (r *runner) publish(ctx context.Context, typ string, p events.CDCStreamStatus) {
	p.StreamID, p.InstanceID, p.TenantID = r.id, r.instance, r.tenant
	ev, err := eventbus.NewEvent(typ, EventSource, r.id, p)
	if err != nil {
		r.logger.Error("build event", "type", typ, "err", err)
		return
	}
	ev.Tenant = r.tenant
	if err := r.m.repo.Publish(ctx, ev); err != nil {
		r.logger.Error("publish event", "type", typ, "err", err)
	}
}

// status is the runner's status with the given lag and rate.
func (r *runner) status(lag time.Duration, lagEvents int64, rate float64) stream.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	tables := make([]string, 0, len(r.tables))
	for t := range r.tables {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	return stream.Status{State: r.state, LastError: r.lastErr, SourceNode: r.sourceNode, CapturedTables: tables,
		LagMs: lag.Milliseconds(), LagEvents: lagEvents, RowsPerSecond: rate, EventsTotal: r.events}
}

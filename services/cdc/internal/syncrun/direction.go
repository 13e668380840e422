package syncrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/pipeline"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// queueDepth is how many batches may wait between a capture and the
// target: with batches of at most MaxBatch messages a direction's memory
// is bounded, and a slow target slows the binlog read down.
const queueDepth = 4

// errReconnect: the attempt was cut to follow a topology change.
var errReconnect = errors.New("reconnect after a topology change")

// permanentError is a failure retrying cannot fix; the job fails with
// reason as its last error.
type permanentError struct {
	reason string
	err    error
}

func (e *permanentError) Error() string { return e.reason }
func (e *permanentError) Unwrap() error { return e.err }

func ddlReason(stmt string, err error) string {
	return fmt.Sprintf("DDL statement stopped the job (ddl: stop, or its replay failed): %q: %v; apply it to the target by hand, then resume", stmt, err)
}

func noKeyReason(err error) string {
	return fmt.Sprintf("a synced table has no primary key (%v); sync needs one to find a row on the target: add a primary key or leave the table out, then resume", err)
}

// direction applies one instance's changes to the other instance of a job
// until stopped or failed.
type direction struct {
	route
	j       *jobRunner
	m       *Manager
	include func(db, table string) bool
	log     *slog.Logger
	kick    chan struct{} // cap 1: an instance of the direction changed its topology

	mu          sync.Mutex
	wm          syncjob.Watermark // what the target holds, as far as this process knows
	moved       chan struct{}     // closed and replaced whenever wm.Position moves
	loading     bool
	streaming   bool
	connected   bool
	node        string
	lagSource   capture.Source // the source instance's primary (else the node read)
	conflicts   int64
	skippedBase int64 // transactions skipped by earlier captures
	skipped     int64 // by the current capture
	tables      map[string]int64
	lastEvent   time.Time // commit time of the last applied change
	lastCovered time.Time // when the watermark last covered the source's end
	// readAddr is the node read; stillSince is when the watermark was last
	// seen move (or covered the end), stalled a replica left for standing
	// still longer than StallAfter.
	readAddr   string
	stillPos   string
	stillSince time.Time
	stalled    string
	lag        time.Duration
	lastErr    string
	// reconcileUntil is the last load attempt's position while the stream
	// catches up with it after a resumed load; loadDone the load's final
	// progress, kept in the watermark meanwhile.
	reconcileUntil string
	loadDone       []byte
}

func newDirection(j *jobRunner, r route) *direction {
	d := &direction{route: r, j: j, m: j.m, include: includes(r.tables(j.job.Spec)),
		log:   j.log.With("from", r.from, "to", r.to),
		moved: make(chan struct{}), tables: map[string]int64{}, lastCovered: time.Now(), kick: make(chan struct{}, 1)}
	for _, ds := range j.job.Status.Directions {
		if ds.From == r.from && ds.To == r.to {
			d.wm = syncjob.Watermark{Position: ds.Watermark, Applied: ds.Applied}
			d.conflicts, d.skippedBase, d.node = ds.Conflicts, ds.Skipped, ds.SourceNode
		}
	}
	return d
}

// run is the direction's loop: attempts from the target's watermark,
// reconnecting (to a re-picked source node and target primary) with backoff
// after each failure retrying can fix. It returns the failure that ends
// the job, or nil when ctx ended.
func (d *direction) run(ctx context.Context) *permanentError {
	bo := retry.Policy{Initial: d.m.cfg.RetryInitial, Max: d.m.cfg.RetryMax}.NewBackOff()
	prev, avoid := "", ""
	d.log.Info("sync direction started")
	defer d.log.Info("sync direction stopped", "watermark", d.watermark().Position)
	for ctx.Err() == nil {
		node, progressed, err := d.attempt(ctx, prev, avoid)
		prev, avoid = node, ""
		if ctx.Err() != nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm
		}
		if errors.Is(err, errReconnect) {
			d.mu.Lock()
			if d.stalled != "" {
				prev, avoid, d.stalled = "", d.stalled, ""
			}
			d.mu.Unlock()
			d.log.Info("topology changed; reconnecting", "node", node, "avoid", avoid)
			bo.Reset()
			continue
		}
		if err == nil {
			err = errors.New("capture ended")
		}
		avoid = node
		if progressed {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		d.setTransient(err)
		d.log.Warn("sync interrupted; resuming from the target's watermark", "node", node, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// attempt resolves the nodes, opens the target, reads its watermark and
// runs the phases from there until a failure. It returns the source node
// read and whether the watermark moved.
func (d *direction) attempt(pctx context.Context, prev, avoid string) (nodeID string, progressed bool, err error) {
	// A topology change cuts the attempt: the next one re-picks the source
	// node and the target primary. An apply cut midway is rolled back, so
	// the watermark stays exact.
	ctx, cancel := context.WithCancel(pctx)
	var moved atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
		case <-d.kick:
			moved.Store(true)
			cancel()
		}
	}()
	defer func() {
		cancel()
		<-watched
		if moved.Load() && pctx.Err() == nil {
			err = errReconnect
		}
	}()
	in, err := d.m.nodes.Instance(ctx, d.from)
	if err != nil {
		return "", false, fmt.Errorf("resolve source %s: %w", d.from, err)
	}
	n, err := pipeline.PickSource(in, prev, avoid)
	if err != nil {
		return "", false, err
	}
	src := capture.Source{Addr: n.Address, User: in.CDC.Username, Password: in.CDC.Password}
	// Positions are read on the primary when there is one: a lagging
	// replica's end is not the instance's.
	lagSrc := src
	if p, err := primaryOf(in); err == nil {
		lagSrc.Addr = p.Address
	}
	tgt, err := d.m.openDirection(ctx, d.j.job, d.route)
	if err != nil {
		return n.ID, false, err
	}
	defer func() {
		if cerr := tgt.Close(); cerr != nil {
			d.log.Warn("close target", "err", cerr)
		}
	}()
	wm, err := tgt.Watermark(ctx)
	if err != nil {
		return n.ID, false, fmt.Errorf("read watermark on %s: %w", d.to, err)
	}
	d.connect(n.ID, src.Addr, lagSrc, wm)
	defer func() {
		d.mu.Lock()
		d.connected, d.streaming, d.loading = false, false, false
		progressed = d.wm.Position != wm.Position || !bytes.Equal(d.wm.Load, wm.Load)
		d.mu.Unlock()
	}()
	err = d.phases(ctx, tgt, src, lagSrc, wm)
	return n.ID, false, d.classify(err, n, wm.Position)
}

// phases runs the initial load when the watermark asks for it, then the
// capture from the watermark's position.
func (d *direction) phases(ctx context.Context, tgt Target, src, lagSrc capture.Source, wm syncjob.Watermark) error {
	start, fromStart := wm.Position, false
	switch {
	case d.forward && d.needsLoad(wm):
		// Two-way: the reverse watermark is in place before the load, so
		// the target's own writes during the load are captured back.
		if err := d.j.waitReverse(ctx); err != nil {
			return err
		}
		pos, err := d.load(ctx, tgt, src, wm)
		if err != nil {
			return err
		}
		// An empty position is that of a source that had logged nothing:
		// every change after the load is in its binlog from the start.
		start, fromStart = pos, pos == ""
	case wm.Position == "":
		// Nothing applied and nothing to load: start at the source's
		// current end, stored first so a restart resumes there.
		pos, err := d.m.position(ctx, lagSrc)
		if err != nil {
			return fmt.Errorf("read start position of %s: %w", d.from, err)
		}
		if pos != "" {
			if err := d.apply(ctx, tgt, change.Batch{Checkpoint: &change.Checkpoint{GTID: pos}}); err != nil {
				return err
			}
		}
		start, fromStart = pos, pos == ""
	}
	if d.forward {
		d.j.setState(ctx, syncjob.StateRunning)
	} else {
		d.j.reverseReady()
	}
	d.mu.Lock()
	d.streaming = true
	d.skippedBase += d.skipped
	d.skipped = 0
	d.mu.Unlock()
	spec := CaptureSpec{Source: src, ServerID: pipeline.ServerID(d.j.job.ID + "/" + d.from), SkipServerID: d.j.job.ServerID,
		Prefix: pipeline.Prefix(d.j.job.Tenant, d.from), Include: d.include, Start: start, FromStart: fromStart,
		MaxBatch: d.m.cfg.MaxBatch, Logger: d.log}
	d.log.Info("sync streaming", "node", src.Addr, "start", start, "from_start", fromStart)
	return d.pump(ctx, tgt, func(pctx context.Context, out chan<- change.Batch) error {
		return d.m.capture(pctx, spec, out)
	})
}

// needsLoad: the load never ran (no position, no progress) or was cut. A
// load of a source that had logged nothing leaves an empty position too, so
// a restart before the first streamed change loads again: upserts of the
// same rows, harmless.
func (d *direction) needsLoad(wm syncjob.Watermark) bool {
	il := d.j.job.Spec.InitialLoad
	if il != nil && !*il {
		return false
	}
	return len(wm.Load) > 0 || wm.Position == ""
}

// load copies the tables (resuming a cut load from the watermark's
// progress) and leaves the watermark at the snapshot's position with the
// progress cleared; it returns that position.
func (d *direction) load(ctx context.Context, tgt Target, src capture.Source, wm syncjob.Watermark) (string, error) {
	var resume *snapshot.Progress
	if len(wm.Load) > 0 {
		var p snapshot.Progress
		if err := json.Unmarshal(wm.Load, &p); err != nil {
			return "", &permanentError{err: err, reason: fmt.Sprintf(
				"the load progress stored on %s is unreadable (%v); delete and recreate the job", d.to, err)}
		}
		resume = &p
	}
	d.mu.Lock()
	d.loading = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.loading = false
		d.mu.Unlock()
	}()
	d.j.setState(ctx, syncjob.StateLoading)
	spec := LoadSpec{Source: src, Prefix: pipeline.Prefix(d.j.job.Tenant, d.from), Include: d.include,
		ChunkSize: d.m.cfg.ChunkSize, Logger: d.log}
	d.log.Info("initial load started", "node", src.Addr, "resumed", resume != nil)
	var final snapshot.Progress
	err := d.pump(ctx, tgt, func(pctx context.Context, out chan<- change.Batch) error {
		p, err := d.m.load(pctx, spec, resume, out)
		final = p
		return err
	})
	if err != nil {
		return "", err
	}
	// The hand-over: streaming starts exactly at the snapshot's position,
	// so nothing is missed or applied twice between load and binlog.
	hand := &change.Checkpoint{GTID: final.GTID}
	if final.Latest != "" {
		// A resumed load read some rows later than final.GTID: until the
		// stream passes the last attempt's position its changes may meet
		// those later states. The finished progress stays in the watermark
		// for that stretch, so a restart knows it is still in it.
		done, err := json.Marshal(final)
		if err != nil {
			return "", fmt.Errorf("encode load progress: %w", err)
		}
		hand.Snapshot = done
		d.mu.Lock()
		d.reconcileUntil, d.loadDone = final.Latest, done
		d.mu.Unlock()
	}
	if err := d.apply(ctx, tgt, change.Batch{Checkpoint: hand}); err != nil {
		return "", err
	}
	d.log.Info("initial load done", "gtid", final.GTID, "tables", len(final.Tables))
	return final.GTID, nil
}

// pump runs produce (a capture or a load) into a bounded queue and applies
// what it sends, queued batches coalesced into one target transaction.
func (d *direction) pump(ctx context.Context, tgt Target, produce func(ctx context.Context, out chan<- change.Batch) error) error {
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	ch := make(chan change.Batch, queueDepth)
	perr := make(chan error, 1)
	go func() {
		err := produce(pctx, ch)
		close(ch)
		perr <- err
	}()
	var werr error
	var pending []change.Batch
	open := false // messages applied without a checkpoint: the target transaction is open
	for b := range ch {
		if werr != nil {
			continue // drain, so the producer is never stuck on a send
		}
		pending = collect(append(pending, b), ch, d.m.cfg.ApplyRows)
		for {
			merged, rest, ok := split(pending, d.m.cfg.ApplyRows)
			if !ok {
				break
			}
			pending = rest
			if !open && len(merged.Messages) == 0 && merged.Checkpoint != nil && merged.Checkpoint.Snapshot == nil {
				// Only skipped or filtered transactions: the position moves in
				// memory, not on the target. Writing it there would be a
				// transaction of the job's on the target, which the other
				// direction of a two-way job skips and answers with a
				// watermark write of its own: an endless echo of watermarks.
				// A restart re-reads that stretch, which applies nothing.
				d.advance(merged.Checkpoint)
				continue
			}
			if err := d.apply(ctx, tgt, merged); err != nil {
				werr = err
				pcancel()
				break
			}
			open = merged.Checkpoint == nil
		}
	}
	// What is left ends inside a transaction: the next attempt reads it
	// again from the watermark.
	err := <-perr
	if werr != nil {
		return werr
	}
	return err
}

func rowsOf(bs []change.Batch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Messages)
	}
	return n
}

// collect appends the batches already waiting in ch (never waiting for
// one) up to limit rows, so a run of small transactions costs one target
// transaction instead of one each.
func collect(pending []change.Batch, ch <-chan change.Batch, limit int) []change.Batch {
	for n := rowsOf(pending); n < limit; {
		select {
		case b, ok := <-ch:
			if !ok {
				return pending
			}
			pending = append(pending, b)
			n += len(b.Messages)
		default:
			return pending
		}
	}
	return pending
}

// split takes from pending what one Apply gets: everything up to the last
// checkpoint, merged under it. Messages after it belong to a transaction
// not complete yet and wait for the rest, unless they reach limit alone (a
// big transaction: the applier keeps its target transaction open until a
// batch with a checkpoint follows). A merged batch must never carry a
// checkpoint with messages of a later transaction before it: a restart
// from that watermark would apply them twice.
func split(pending []change.Batch, limit int) (merged change.Batch, rest []change.Batch, ok bool) {
	last := -1
	for i := range pending {
		if pending[i].Checkpoint != nil {
			last = i
		}
	}
	take := pending[:last+1]
	if last < 0 {
		if len(pending) == 0 || rowsOf(pending) < limit {
			return change.Batch{}, pending, false
		}
		take = pending
	}
	merged.Messages = make([]change.Message, 0, rowsOf(take))
	for _, b := range take {
		merged.Messages = append(merged.Messages, b.Messages...)
	}
	if last >= 0 {
		merged.Checkpoint = pending[last].Checkpoint
	}
	return merged, slices.Clone(pending[len(take):]), true
}

// reconciling marks a streamed batch of the catch-up after a resumed load
// (see load) and keeps the load's progress in the watermark until the
// stream passes the last load attempt's position.
func (d *direction) reconciling(b change.Batch) change.Batch {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reconcileUntil == "" || (b.Checkpoint != nil && b.Checkpoint.Snapshot != nil) {
		return b
	}
	b.Reconcile = true
	if cp := b.Checkpoint; cp != nil {
		if gtidpos.CoversText(cp.GTID, d.reconcileUntil, 0) {
			d.reconcileUntil, d.loadDone = "", nil
			return b
		}
		held := *cp
		held.Snapshot = d.loadDone
		b.Checkpoint = &held
	}
	return b
}

// advance records a checkpoint passed without applying anything.
func (d *direction) advance(cp *change.Checkpoint) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.wm.Position = cp.GTID
	d.skipped = skippedOf(cp)
	close(d.moved)
	d.moved = make(chan struct{})
}

// apply applies one batch and records what it did.
func (d *direction) apply(ctx context.Context, tgt Target, b change.Batch) error {
	b = d.reconciling(b)
	st, err := tgt.Apply(ctx, renamed(b, d.route.targetDB(d.j.job.Spec)))
	if err != nil {
		return fmt.Errorf("apply %d changes of %s to %s: %w", len(b.Messages), d.from, d.to, err)
	}
	d.mu.Lock()
	d.wm.Applied += st.Applied
	d.conflicts += st.Conflicts
	for t, n := range st.Tables {
		d.tables[t] += n
	}
	for i := len(b.Messages) - 1; i >= 0; i-- {
		if at := b.Messages[i].EventTime; !at.IsZero() {
			d.lastEvent = at
			break
		}
	}
	if cp := b.Checkpoint; cp != nil {
		d.wm.Position, d.wm.Load = cp.GTID, cp.Snapshot
		d.skipped = skippedOf(cp)
		close(d.moved)
		d.moved = make(chan struct{})
	}
	d.lastErr = ""
	d.mu.Unlock()
	job := d.j.job.ID
	d.m.metrics.applied.WithLabelValues(job, d.from).Add(float64(st.Applied))
	d.m.metrics.conflicts.WithLabelValues(job, d.from).Add(float64(st.Conflicts))
	return nil
}

// classify turns the failures no retry can fix into permanent errors with
// the reason the job shows.
func (d *direction) classify(err error, node provview.Node, pos string) error {
	var poison *capture.PoisonError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*permanentError)):
		return err
	case errors.Is(err, capture.ErrPositionLost):
		if node.Role != provview.RolePrimary {
			// A replica answers 1236 for a position it has not applied
			// yet; only the primary's answer is final.
			return fmt.Errorf("replica %s does not hold the watermark's position (yet): %w", node.ID, err)
		}
		return &permanentError{err: err, reason: fmt.Sprintf(
			"the binlog of %s does not hold the watermark's position %q (purged past it, or transactions lost in a failover) [%v]; delete and recreate the job to load again",
			d.from, pos, err)}
	case errors.As(err, &poison):
		return &permanentError{err: err, reason: fmt.Sprintf(
			"cannot decode the change of %s at GTID %s (table %s, column %s): %v; the job stopped rather than skip it",
			d.from, poison.GTID, poison.Table, poison.Column, poison.Err)}
	case errors.Is(err, provview.ErrNotFound):
		return &permanentError{err: err, reason: fmt.Sprintf("an instance of the job no longer exists (%v); delete the job", err)}
	case errors.Is(err, snapshot.ErrNoBinlog):
		return &permanentError{err: err, reason: fmt.Sprintf("%s has no binary log to stream from after the load", d.from)}
	}
	if reason, ok := applyFailure(err); ok {
		return &permanentError{err: err, reason: reason}
	}
	return err
}

func (d *direction) connect(node, readAddr string, lagSrc capture.Source, wm syncjob.Watermark) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.node, d.readAddr, d.lagSource, d.connected = node, readAddr, lagSrc, true
	d.stillPos, d.stillSince = "", time.Now()
	if wm.Position != d.wm.Position || !bytes.Equal(wm.Load, d.wm.Load) {
		close(d.moved)
		d.moved = make(chan struct{})
	}
	// The target's watermark is the truth; what was cached from the stored
	// status may be older or (after a restore of the target) newer.
	d.wm = wm
}

// poke asks the direction to reconnect (without blocking).
func (d *direction) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *direction) setTransient(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	d.mu.Unlock()
}

func (d *direction) watermark() syncjob.Watermark {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wm
}

// settled returns the applied position once streaming (nil during a load
// or while disconnected: no position holds then) and a channel closed when
// it moves.
func (d *direction) settled() (pos string, streaming bool, moved <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wm.Position, d.streaming && len(d.wm.Load) == 0, d.moved
}

// measure polls the source's end and sets the lag: 0 when the watermark
// covers it, else the age of the later of the last applied change and the
// last time it was covered (everything not applied was committed after
// both).
func (d *direction) measure(ctx context.Context, now time.Time) {
	d.mu.Lock()
	src, connected, wm, loading := d.lagSource, d.connected, d.wm.Position, d.loading
	d.mu.Unlock()
	covered, known := false, false
	if connected && !loading {
		if pos, err := d.m.position(ctx, src); err == nil {
			covered, known = gtidpos.CoversText(wm, pos, d.j.job.ServerID), true
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if known {
		d.watchStill(now, covered)
	}
	if covered {
		d.lastCovered, d.lag = now, 0
	} else {
		since := d.lastCovered
		if d.lastEvent.After(since) {
			since = d.lastEvent
		}
		d.lag = max(now.Sub(since), 0)
	}
	d.m.metrics.lag.WithLabelValues(d.j.job.ID, d.from).Set(d.lag.Seconds())
}

// watchStill leaves a replica that stands still while the primary moves
// on: its replication broke, and reading it would stall the job for good.
// The primary itself is never left for that (its binlog is the end).
// Called with d.mu held.
func (d *direction) watchStill(now time.Time, covered bool) {
	if covered || !d.streaming || d.wm.Position != d.stillPos {
		d.stillPos, d.stillSince = d.wm.Position, now
		return
	}
	if d.readAddr == d.lagSource.Addr || now.Sub(d.stillSince) < d.m.cfg.StallAfter || d.stalled != "" {
		return
	}
	d.log.Warn("the replica read stands still while the primary moves on; reading another node",
		"node", d.node, "watermark", d.wm.Position, "still_for", now.Sub(d.stillSince).Round(time.Second))
	d.stalled = d.node
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// status is the direction's part of the job's status.
func (d *direction) status() (syncjob.DirectionStatus, map[string]int64, time.Duration, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return syncjob.DirectionStatus{From: d.from, To: d.to, Watermark: d.wm.Position, SourceNode: d.node,
		Applied: d.wm.Applied, Conflicts: d.conflicts, Skipped: d.skippedBase + d.skipped,
		LagMs: d.lag.Milliseconds()}, maps.Clone(d.tables), d.lag, d.lastErr
}

package syncrun

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// writeTimeout bounds the writes a runner makes after its context ended
// (the final status, the failure).
const writeTimeout = 10 * time.Second

// jobRunner runs one job's directions until stopped or failed.
type jobRunner struct {
	m   *Manager
	job syncjob.Job
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	ended  atomic.Bool

	dirs []*direction
	// reverse is closed once the reverse direction's watermark is on the
	// source (two-way only): the forward load waits for it.
	reverse     chan struct{}
	reverseOnce sync.Once

	// writeMu orders the runner's writes of state and status, so a status
	// computed before a failure is never stored after it.
	writeMu sync.Mutex

	mu         sync.Mutex
	state      syncjob.State
	failure    string
	tables     map[string]int64 // applied rows per table before this runner
	storedErr  string           // the last error as stored with the state
	nextVerify time.Time
}

func newJobRunner(m *Manager, j syncjob.Job) *jobRunner {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &jobRunner{m: m, job: j, log: m.logger.With("job_id", j.ID, "tenant", j.Tenant), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), reverse: make(chan struct{}), state: j.State, tables: map[string]int64{},
		storedErr: j.Status.LastError}
	for t, ts := range j.Status.Tables {
		r.tables[t] = ts.Applied
	}
	if every := time.Duration(j.Spec.VerifyEvery); every > 0 {
		// The schedule stored with the status survives restarts; a job
		// that never had one starts its clock now.
		r.nextVerify = j.Status.NextVerification
		if r.nextVerify.IsZero() {
			r.nextVerify = time.Now().Add(every)
		}
	}
	for _, rt := range directionsOf(j) {
		r.dirs = append(r.dirs, newDirection(r, rt))
	}
	return r
}

func (r *jobRunner) stop() {
	r.cancel()
	<-r.done
}

func (r *jobRunner) finished() bool { return r.ended.Load() }

func (r *jobRunner) run() {
	defer close(r.done)
	defer r.ended.Store(true)
	defer r.cancel()
	r.m.metrics.setState(r.job.ID, r.job.State)
	if perm := r.check(); perm != nil {
		r.fail(perm)
		return
	}
	r.log.Info("sync job runner started", "state", r.job.State, "directions", len(r.dirs))

	fails := make(chan *permanentError, len(r.dirs))
	var wg sync.WaitGroup
	for _, d := range r.dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if perm := d.run(r.ctx); perm != nil {
				fails <- perm
				r.cancel() // the job fails as a whole: stop the other direction
			}
		}()
	}
	sctx, scancel := context.WithCancel(r.ctx)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		r.statusLoop(sctx)
	}()
	wg.Wait()
	scancel()
	<-statusDone

	select {
	case perm := <-fails:
		r.fail(perm)
	default:
		r.saveStatus(context.WithoutCancel(r.ctx))
		r.log.Info("sync job runner stopped")
	}
}

// check refuses what cannot run safely.
func (r *jobRunner) check() *permanentError {
	if r.job.ServerID == 0 && r.job.Spec.Target.Instance != "" {
		return &permanentError{err: errors.New("server id 0"), reason: "the job has no server id: its writes would not be told from the application's (echo loops)"}
	}
	return nil
}

// waitReverse returns once the reverse watermark exists (at once for a
// one-way job).
func (r *jobRunner) waitReverse(ctx context.Context) error {
	if len(r.dirs) < 2 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.reverse:
		return nil
	}
}

func (r *jobRunner) reverseReady() { r.reverseOnce.Do(func() { close(r.reverse) }) }

// setState stores the job's state (loading ↔ running) when it changed. A
// job paused or deleted meanwhile keeps the user's state.
func (r *jobRunner) setState(ctx context.Context, st syncjob.State) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	same := r.state == st
	r.mu.Unlock()
	if same {
		return
	}
	cur, err := r.m.repo.GetJob(ctx, "", r.job.ID)
	if err != nil {
		r.log.Warn("read job before a state change", "state", st, "err", err)
		return
	}
	if !cur.State.Running() {
		return
	}
	if err := r.m.repo.SetJobState(ctx, r.job.ID, st, ""); err != nil {
		r.log.Warn("store job state", "state", st, "err", err)
		return
	}
	r.mu.Lock()
	r.state, r.storedErr = st, ""
	r.mu.Unlock()
	r.m.metrics.setState(r.job.ID, st)
	r.log.Info("sync job state", "state", st)
}

// fail marks the job failed with the reason (unless the user paused or
// deleted it meanwhile).
func (r *jobRunner) fail(perm *permanentError) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), writeTimeout)
	defer cancel()
	r.log.Error("sync job failed", "reason", perm.reason, "err", perm.err)
	r.mu.Lock()
	r.failure = perm.reason
	r.mu.Unlock()
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if cur, err := r.m.repo.GetJob(ctx, "", r.job.ID); err == nil && !cur.State.Running() {
		return
	}
	if err := r.m.repo.SetJobState(ctx, r.job.ID, syncjob.StateFailed, perm.reason); err != nil {
		r.log.Error("store failed state", "err", err)
	}
	r.mu.Lock()
	r.state = syncjob.StateFailed
	r.mu.Unlock()
	if err := r.m.repo.SaveJobStatus(ctx, r.job.ID, r.status()); err != nil {
		r.log.Error("store failed status", "err", err)
	}
	r.m.metrics.setState(r.job.ID, syncjob.StateFailed)
}

// statusLoop measures and stores the status every StatusInterval and
// starts scheduled verifications, until ctx ends.
func (r *jobRunner) statusLoop(ctx context.Context) {
	t := time.NewTicker(r.m.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, d := range r.dirs {
				d.measure(ctx, now)
			}
			r.saveStatus(ctx)
			r.maybeVerify(ctx, now)
		}
	}
}

func (r *jobRunner) saveStatus(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	st := r.status()
	if err := r.m.repo.SaveJobStatus(ctx, r.job.ID, st); err != nil && ctx.Err() == nil {
		r.log.Warn("store sync job status", "err", err)
	}
	// The last error lives with the state (the status does not carry it):
	// a transient one (target unreachable, retrying) is shown while it
	// lasts, and cleared once changes flow again.
	r.mu.Lock()
	state, stored, failed := r.state, r.storedErr, r.failure != ""
	r.mu.Unlock()
	if failed || st.LastError == stored || !state.Running() {
		return
	}
	if err := r.m.repo.SetJobState(ctx, r.job.ID, state, st.LastError); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("store sync job last error", "err", err)
		}
		return
	}
	r.mu.Lock()
	r.storedErr = st.LastError
	r.mu.Unlock()
}

// status is the job's status now.
func (r *jobRunner) status() syncjob.Status {
	r.mu.Lock()
	st := syncjob.Status{Tables: map[string]syncjob.TableStatus{}, LastError: r.failure, NextVerification: r.nextVerify}
	for t, n := range r.tables {
		st.Tables[t] = syncjob.TableStatus{Applied: n}
	}
	r.mu.Unlock()
	for _, d := range r.dirs {
		ds, tables, lag, lastErr := d.status()
		st.Directions = append(st.Directions, ds)
		st.Applied += ds.Applied
		st.Conflicts += ds.Conflicts
		if st.LastError == "" {
			st.LastError = lastErr
		}
		for t, n := range tables {
			ts := st.Tables[t]
			ts.Applied += n
			st.Tables[t] = ts
		}
		// A table's lag is its direction's (the slower one of a two-way
		// job): every table of a direction waits on the same binlog.
		for t, ts := range st.Tables {
			if l := lag.Milliseconds(); l > ts.LagMs && (tables[t] > 0 || d.include(splitTable(t))) {
				ts.LagMs = l
				st.Tables[t] = ts
			}
		}
	}
	return st
}

// maybeVerify starts the job's scheduled verification when it is due, the
// job streams and no other verification of it runs.
func (r *jobRunner) maybeVerify(ctx context.Context, now time.Time) {
	r.mu.Lock()
	due := !r.nextVerify.IsZero() && !now.Before(r.nextVerify)
	r.mu.Unlock()
	if !due {
		return
	}
	for _, d := range r.dirs {
		if _, streaming, _ := d.settled(); !streaming {
			return // not before the load is done: the check would only find what is still to come
		}
	}
	r.mu.Lock()
	r.nextVerify = now.Add(time.Duration(r.job.Spec.VerifyEvery))
	r.mu.Unlock()
	if err := r.m.scheduledVerify(ctx, r.job); err != nil {
		r.log.Warn("scheduled verification not started", "err", err)
	}
}

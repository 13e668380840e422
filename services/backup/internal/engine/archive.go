package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/backup/internal/aofarchive"
	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/binlogarchive"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

// archiver is one instance's archiving goroutine and what the lag loop
// knows of it.
type archiver struct {
	tenant, id string
	engine     backup.Engine
	cancel     context.CancelFunc
	done       chan struct{}
	// kick says a full backup of the instance completed (an archive
	// stopped by a gap waits for one).
	kick chan struct{}
	// cur is the running binlogarchive.Archiver (nil between runs), aof
	// the running aofarchive.Archiver of a Redis instance.
	cur atomic.Pointer[binlogarchive.Archiver]
	aof atomic.Pointer[aofarchive.Archiver]
	// noAOF: the Redis instance keeps no AOF, so it has no archive whose
	// lag could be measured.
	noAOF atomic.Bool
	// lagNanos is the last measured lag.
	lagNanos atomic.Int64

	// Owned by the lag loop.
	lastConnected time.Time
	lagging       bool
}

// archiveServerID is the replica server id an instance's archiver
// presents: in 0x7F000000..0x7FFFFFFF, apart from the ids provisioning
// derives for nodes (a full 32-bit hash) in all but a sliver of cases,
// and stable across restarts so the primary replaces a dead session.
func archiveServerID(instanceID string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(instanceID))
	return 0x7F000000 | h.Sum32()&0x00FFFFFF
}

// segmentKey is where segment seq of an instance is stored.
func segmentKey(tenant, instanceID string, seq int64) string {
	return fmt.Sprintf("%s/%s/binlog/%012d", tenant, instanceID, seq)
}

// reconcileArchivers starts an archiver for each wanted instance without
// one and stops those no longer wanted.
func (e *Engine) reconcileArchivers(ctx context.Context, want map[string]backup.Instance) {
	e.mu.Lock()
	runCtx := e.runCtx
	var stop []*archiver
	for id, ar := range e.archivers {
		if _, ok := want[id]; !ok {
			stop = append(stop, ar)
			delete(e.archivers, id)
		}
	}
	if runCtx != nil {
		for id, in := range want {
			if _, ok := e.archivers[id]; ok {
				continue
			}
			actx, cancel := context.WithCancel(runCtx)
			ar := &archiver{tenant: in.TenantID, id: id, engine: in.Engine, cancel: cancel, done: make(chan struct{}),
				kick: make(chan struct{}, 1), lastConnected: e.now()}
			e.archivers[id] = ar
			if in.Engine == backup.EngineRedis {
				go e.archiveAOF(actx, ar)
			} else {
				go e.archive(actx, ar)
			}
		}
	}
	e.mu.Unlock()
	for _, ar := range stop {
		e.log.InfoContext(ctx, "archiver stopping", slog.String("tenant", ar.tenant), slog.String("instance", ar.id))
		ar.cancel()
		<-ar.done
		e.m.archiveLag.DeleteLabelValues(ar.id)
	}
}

// stopArchivers stops every archiver and waits for them.
func (e *Engine) stopArchivers() {
	e.mu.Lock()
	all := e.archivers
	e.archivers = make(map[string]*archiver)
	e.mu.Unlock()
	for _, ar := range all {
		ar.cancel()
	}
	for _, ar := range all {
		<-ar.done
		e.m.archiveLag.DeleteLabelValues(ar.id)
	}
}

// fullDone tells the instance's archiver a full backup completed.
func (e *Engine) fullDone(instanceID string) {
	e.mu.Lock()
	ar := e.archivers[instanceID]
	e.mu.Unlock()
	if ar == nil {
		return
	}
	select {
	case ar.kick <- struct{}{}:
	default:
	}
}

// archive runs the instance's archiver until ctx ends: from the last
// segment's end, or after a gap (the primary purged binlogs the archive
// needed) from the primary's oldest binlog once a full backup that covers
// the gap completed.
func (e *Engine) archive(ctx context.Context, ar *archiver) {
	defer close(ar.done)
	log := e.log.With(slog.String("tenant", ar.tenant), slog.String("instance", ar.id))
	fromOldest := false
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		last, ok, err := e.st.LastSegment(ctx, ar.id)
		if err != nil {
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "archiver: last segment", slog.Any("err", err))
			}
			if !wait(archiveRetry) {
				return
			}
			continue
		}
		start, seq := "", int64(0)
		if ok {
			start, seq = last.EndPos, last.Seq
		}
		if fromOldest {
			start = ""
		}
		a := binlogarchive.New(binlogarchive.Config{ServerID: archiveServerID(ar.id), FlushEvery: e.cfg.ArchiveFlushEvery, Log: log})
		ar.cur.Store(a)
		log.InfoContext(ctx, "archiver starting", slog.String("from", start), slog.Int64("last_seq", seq))
		err = a.Run(ctx, e.locate(ar.id), start, e.sink(ar, &seq))
		if ctx.Err() != nil {
			return
		}
		fromOldest = false
		if errors.Is(err, binlogarchive.ErrGap) {
			e.m.gaps.Inc()
			log.ErrorContext(ctx, "binlog archive gap: archiving resumes after the next full backup", slog.Any("err", err))
			// Only a backup completed after the gap covers it.
			select {
			case <-ar.kick:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-ar.kick:
			}
			fromOldest = true
			continue
		}
		log.ErrorContext(ctx, "archiver stopped", slog.Any("err", err))
		if !wait(archiveRetry) {
			return
		}
	}
}

// locate finds the instance's current primary through provisioning.
func (e *Engine) locate(instanceID string) binlogarchive.Locate {
	return func(ctx context.Context) (binlogarchive.Source, error) {
		in, err := e.inst.Get(ctx, instanceID)
		if err != nil {
			return binlogarchive.Source{}, fmt.Errorf("locate primary of %s: %w", instanceID, err)
		}
		n, err := backup.Primary(in)
		if err != nil {
			return binlogarchive.Source{}, fmt.Errorf("locate primary of %s: %w", instanceID, err)
		}
		return binlogarchive.Source{NodeID: n.ID, Address: n.Address, User: in.Admin.Username, Password: in.Admin.Password}, nil
	}
}

// sink stores binlog segments under the next sequence numbers; *seq is
// the last committed one.
func (e *Engine) sink(ar *archiver, seq *int64) binlogarchive.Sink {
	return func(ctx context.Context, seg binlogarchive.Segment) error {
		return e.storeSegment(ctx, ar, seq, segmentKey(ar.tenant, ar.id, *seq+1), bytes.NewReader(seg.Data),
			backup.Segment{StartPos: seg.StartPos, EndPos: seg.EndPos, FirstAt: seg.FirstAt.UTC(), LastAt: seg.LastAt.UTC(),
				Transactions: seg.Transactions, SourceNode: seg.SourceNode})
	}
}

// storeSegment seals data as segment *seq+1 under key (a data key of its
// own, wrapped), copies it to the secondary repository and records s with
// it; *seq is the last committed one.
func (e *Engine) storeSegment(ctx context.Context, ar *archiver, seq *int64, key string, data io.Reader, s backup.Segment) error {
	next := *seq + 1
	dataKey, err := repo.NewDataKey()
	if err != nil {
		return fmt.Errorf("segment %s: data key: %w", key, err)
	}
	wrapped, err := repo.WrapKey(e.box, dataKey, key)
	if err != nil {
		return fmt.Errorf("segment %s: wrap data key: %w", key, err)
	}
	obj, err := repo.Seal(ctx, e.blobs, key, dataKey, data)
	if err != nil {
		return fmt.Errorf("segment %s: seal: %w", key, err)
	}
	if e.secondary != nil {
		if err := repo.Copy(ctx, e.blobs, e.secondary, obj); err != nil {
			return fmt.Errorf("segment %s: secondary copy: %w", key, err)
		}
	}
	s.TenantID, s.InstanceID, s.Seq, s.Object, s.WrappedKey, s.ArchivedAt = ar.tenant, ar.id, next, obj, wrapped, e.now().UTC()
	if err := e.st.AppendSegment(ctx, s); err != nil {
		// The commit may have happened with its answer lost: then the
		// segment is stored and the archiver must move on.
		last, ok, lerr := e.st.LastSegment(ctx, ar.id)
		if lerr == nil && ok {
			*seq = last.Seq
			if last.Seq == next && last.EndPos == s.EndPos {
				return nil
			}
		}
		return fmt.Errorf("segment %s: record: %w", key, err)
	}
	*seq = next
	return nil
}

// lagLoop measures each archive's lag every lagEvery, exports it and
// announces when it passes the bound and when it is back within it.
func (e *Engine) lagLoop(ctx context.Context) {
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		ars := make([]*archiver, 0, len(e.archivers))
		for _, ar := range e.archivers {
			ars = append(ars, ar)
		}
		e.mu.Unlock()
		for _, ar := range ars {
			e.measureLag(ctx, ar)
		}
	}
}

// measureLag updates one archiver's lag: the age of the oldest
// transaction read but not committed; zero when connected with nothing
// pending; the time since it was last connected otherwise.
func (e *Engine) measureLag(ctx context.Context, ar *archiver) {
	if ar.noAOF.Load() {
		e.m.archiveLag.DeleteLabelValues(ar.id)
		return
	}
	now := e.now()
	var st binlogarchive.Stats
	if a := ar.cur.Load(); a != nil {
		st = a.Stats()
	}
	if a := ar.aof.Load(); a != nil {
		s := a.Stats()
		st = binlogarchive.Stats{Connected: s.Connected, PendingSince: s.PendingSince, Committed: s.Committed}
	}
	var lag time.Duration
	switch {
	case !st.PendingSince.IsZero():
		lag = now.Sub(st.PendingSince)
	case st.Connected:
		lag = 0
	default:
		lag = now.Sub(ar.lastConnected)
	}
	if st.Connected {
		ar.lastConnected = now
	}
	lag = max(lag, 0)
	ar.lagNanos.Store(int64(lag))
	e.m.archiveLag.WithLabelValues(ar.id).Set(lag.Seconds())

	bound := e.cfg.ArchiveLagBound
	var typ string
	switch {
	case lag > bound && !ar.lagging:
		typ = events.TypeArchiveLagging
	case lag <= bound && ar.lagging:
		typ = events.TypeArchiveCaughtUp
	default:
		return
	}
	ev, err := eventbus.NewEvent(typ, events.SourceBackup, ar.id, events.ArchiveLag{TenantID: ar.tenant,
		InstanceID: ar.id, LagSeconds: lag.Seconds(), BoundSeconds: bound.Seconds(), ArchivedGTID: st.Committed})
	if err == nil {
		ev.Tenant = ar.tenant
		err = e.st.Emit(ctx, ev)
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.WarnContext(ctx, "emit archive lag event", slog.String("tenant", ar.tenant), slog.String("instance", ar.id),
				slog.String("type", typ), slog.Any("err", err))
		}
		return // tried again at the next measurement
	}
	ar.lagging = typ == events.TypeArchiveLagging
	e.log.InfoContext(ctx, "archive lag", slog.String("tenant", ar.tenant), slog.String("instance", ar.id),
		slog.String("event", typ), slog.Duration("lag", lag))
}

// ArchiveLag is the instance's current archive lag (false: not archived).
func (e *Engine) ArchiveLag(instanceID string) (time.Duration, bool) {
	e.mu.Lock()
	ar := e.archivers[instanceID]
	e.mu.Unlock()
	if ar == nil || ar.noAOF.Load() {
		return 0, false
	}
	return time.Duration(ar.lagNanos.Load()), true
}

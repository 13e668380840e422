package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/aofarchive"
	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// notPrimaryRetry is the wait before an AOF archiver looks again for the
// primary after the node it found was not one.
const notPrimaryRetry = time.Second

// aofSegmentKey is where AOF segment seq of an instance is stored.
func aofSegmentKey(tenant, instanceID string, seq int64) string {
	return fmt.Sprintf("%s/%s/aof/%012d", tenant, instanceID, seq)
}

// archiveAOF runs a Redis instance's AOF archiver until ctx ends, from
// the last stored segment; it runs again after a failover (against the
// new primary: a new chain) or any other stop.
func (e *Engine) archiveAOF(ctx context.Context, ar *archiver) {
	defer close(ar.done)
	log := e.log.With(slog.String("tenant", ar.tenant), slog.String("instance", ar.id))
	quietAOFOff := false
	for ctx.Err() == nil {
		retry := archiveRetry
		var resume aofarchive.Resume
		seq := int64(0)
		last, ok, err := e.st.LastSegment(ctx, ar.id)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "aof archiver: last segment", slog.Any("err", err))
			}
		case ok:
			resume, seq = aofarchive.Resume{End: last.EndPos, LastAt: last.LastAt}, last.Seq
		}
		if err == nil {
			a := aofarchive.New(aofarchive.Config{PollEvery: e.cfg.ArchiveFlushEvery, NewChain: newID, Log: log})
			ar.aof.Store(a)
			err = a.Run(ctx, e.locateRedis(ar.id), resume, e.aofSink(ar, &seq))
			if ctx.Err() != nil {
				return
			}
			ar.noAOF.Store(errors.Is(err, aofarchive.ErrNoAOF))
			switch {
			case errors.Is(err, aofarchive.ErrNoAOF):
				// A plan that turned the AOF off: snapshots only.
				if !quietAOFOff {
					log.InfoContext(ctx, "aof archiver: the instance keeps no AOF; point in time is by snapshot only")
					quietAOFOff = true
				}
			case errors.Is(err, aofarchive.ErrNotPrimary):
				// Provisioning may name the old primary a little longer
				// while a failover completes: ask again soon, not at once.
				log.InfoContext(ctx, "aof archiver: the node is not the primary; following the new one")
				retry = notPrimaryRetry
			default:
				log.ErrorContext(ctx, "aof archiver stopped", slog.Any("err", err))
			}
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// locateRedis finds a Redis instance's current primary through
// provisioning.
func (e *Engine) locateRedis(instanceID string) aofarchive.Locate {
	return func(ctx context.Context) (aofarchive.Source, error) {
		in, err := e.inst.Get(ctx, instanceID)
		if err != nil {
			return aofarchive.Source{}, fmt.Errorf("locate primary of %s: %w", instanceID, err)
		}
		n, err := backup.Primary(in)
		if err != nil {
			return aofarchive.Source{}, fmt.Errorf("locate primary of %s: %w", instanceID, err)
		}
		return aofarchive.Source{NodeID: n.ID, Address: n.Address, User: in.Admin.Username, Password: in.Admin.Password,
			DataDir: n.DataDir}, nil
	}
}

// aofSink stores AOF segments under the next sequence numbers; *seq is
// the last committed one.
func (e *Engine) aofSink(ar *archiver, seq *int64) aofarchive.Sink {
	return func(ctx context.Context, seg aofarchive.Segment) error {
		var data io.Reader = bytes.NewReader(seg.Data)
		if seg.Base {
			data = seg.File
		}
		return e.storeSegment(ctx, ar, seq, aofSegmentKey(ar.tenant, ar.id, *seq+1), data,
			backup.Segment{StartPos: seg.Start.String(), EndPos: seg.End.String(), FirstAt: seg.FirstAt.UTC(),
				LastAt: seg.LastAt.UTC(), SourceNode: seg.SourceNode})
	}
}

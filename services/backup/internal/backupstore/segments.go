package backupstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const segmentColumns = "instance_id, seq, tenant_id, object, wrapped_key, start_pos, end_pos, first_at, last_at," +
	" transactions, source_node, archived_at"

func scanSegment(r store.Scanner) (backup.Segment, error) {
	var sg backup.Segment
	var object sql.NullString
	var first, last sql.NullTime
	err := r.Scan(&sg.InstanceID, &sg.Seq, &sg.TenantID, &object, &sg.WrappedKey, &sg.StartPos, &sg.EndPos, &first, &last,
		&sg.Transactions, &sg.SourceNode, &sg.ArchivedAt)
	if err != nil {
		return backup.Segment{}, err
	}
	if err := jsonScan("segment object", object, &sg.Object); err != nil {
		return backup.Segment{}, err
	}
	sg.FirstAt, sg.LastAt, sg.ArchivedAt = fromNull(first), fromNull(last), sg.ArchivedAt.UTC()
	if len(sg.WrappedKey) == 0 {
		sg.WrappedKey = nil
	}
	return sg, nil
}

// AppendSegment records the instance's next segment; its Seq must be the
// last one's + 1 (1 for the first), ErrSeq otherwise. The newest row is
// locked while checking, and the (instance, seq) key refuses a second
// writer of the same seq.
func (s *Store) AppendSegment(ctx context.Context, seg backup.Segment) error {
	object, err := jsonArg("segment object", seg.Object)
	if err != nil {
		return fmt.Errorf("append segment %s/%d: %w", seg.InstanceID, seg.Seq, err)
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		var last sql.NullInt64
		err := tx.QueryRowContext(ctx, "SELECT MAX(seq) FROM segments WHERE instance_id = ? FOR UPDATE", seg.InstanceID).Scan(&last)
		if err != nil {
			return fmt.Errorf("append segment %s/%d: %w", seg.InstanceID, seg.Seq, err)
		}
		if want := last.Int64 + 1; seg.Seq != want {
			return fmt.Errorf("append segment %s/%d: %w: the next is %d", seg.InstanceID, seg.Seq, ErrSeq, want)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO segments ("+segmentColumns+") VALUES "+store.Placeholders(12),
			seg.InstanceID, seg.Seq, seg.TenantID, object, nullBytes(seg.WrappedKey), seg.StartPos, seg.EndPos,
			nullTime(seg.FirstAt), nullTime(seg.LastAt), seg.Transactions, seg.SourceNode, dbTime(seg.ArchivedAt))
		if isDuplicate(err) {
			return fmt.Errorf("append segment %s/%d: %w: appended already", seg.InstanceID, seg.Seq, ErrSeq)
		}
		if err != nil {
			return fmt.Errorf("append segment %s/%d: %w", seg.InstanceID, seg.Seq, err)
		}
		return nil
	})
}

// Segments returns an instance's segments from fromSeq on, in order.
func (s *Store) Segments(ctx context.Context, instanceID string, fromSeq int64) ([]backup.Segment, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list segments of "+instanceID, scanSegment,
		"SELECT "+segmentColumns+" FROM segments WHERE instance_id = ? AND seq >= ? ORDER BY seq", instanceID, fromSeq)
}

// LastSegment returns an instance's newest segment.
func (s *Store) LastSegment(ctx context.Context, instanceID string) (backup.Segment, bool, error) {
	sg, err := scanSegment(s.db.SQL().QueryRowContext(ctx,
		"SELECT "+segmentColumns+" FROM segments WHERE instance_id = ? ORDER BY seq DESC LIMIT 1", instanceID))
	if errors.Is(err, sql.ErrNoRows) {
		return backup.Segment{}, false, nil
	}
	if err != nil {
		return backup.Segment{}, false, fmt.Errorf("last segment of %s: %w", instanceID, err)
	}
	return sg, true, nil
}

// DeleteSegments removes segment rows (their objects are removed first by
// the caller). Deleting the newest one would restart the numbering at 1
// on the next append: retention (backup.Retain) never asks for it.
func (s *Store) DeleteSegments(ctx context.Context, instanceID string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		for i := 0; i < len(seqs); i += 500 {
			part := seqs[i:min(i+500, len(seqs))]
			q := "DELETE FROM segments WHERE instance_id = ? AND seq IN " + store.Placeholders(len(part))
			if _, err := tx.ExecContext(ctx, q, append([]any{instanceID}, anys(part)...)...); err != nil {
				return fmt.Errorf("delete %d segments of %s: %w", len(part), instanceID, err)
			}
		}
		return nil
	})
}

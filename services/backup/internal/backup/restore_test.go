package backup_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func full(id, consistent, gtid string) backup.Backup {
	c := at(consistent)
	return backup.Backup{ID: id, InstanceID: "i1", Engine: backup.EngineMySQL, Kind: backup.KindFull, Status: backup.StatusCompleted,
		StartedAt: c.Add(-10 * time.Minute), FinishedAt: c.Add(time.Minute), ConsistentAt: c, GTID: gtid}
}

func seg(seq int64, start, end, first, last string) backup.Segment {
	return backup.Segment{InstanceID: "i1", Seq: seq, StartPos: start, EndPos: end, FirstAt: at(first), LastAt: at(last)}
}

// history: three daily fulls and three segments running without a gap
// from before the first to past the last.
func history() ([]backup.Backup, []backup.Segment) {
	backups := []backup.Backup{
		full("b1", "2026-03-01T02:00:00Z", "0-1-100"),
		full("b2", "2026-03-02T02:00:00Z", "0-1-200"),
		full("b3", "2026-03-03T02:00:00Z", "0-1-300"),
	}
	failed := full("bf", "2026-03-02T12:00:00Z", "0-1-230")
	failed.Status = backup.StatusFailed
	running := full("br", "2026-03-03T06:00:00Z", "0-1-330")
	running.Status = backup.StatusRunning
	backups = append(backups, failed, running)
	segments := []backup.Segment{
		seg(3, "0-1-250", "0-1-350", "2026-03-02T12:05:00Z", "2026-03-03T12:00:00Z"),
		seg(1, "0-1-90", "0-1-150", "2026-03-01T01:50:00Z", "2026-03-01T12:00:00Z"),
		seg(2, "0-1-150", "0-1-250", "2026-03-01T12:05:00Z", "2026-03-02T12:00:00Z"),
	}
	return backups, segments
}

func seqs(segs []backup.Segment) []int64 {
	out := []int64{}
	for _, s := range segs {
		out = append(out, s.Seq)
	}
	return out
}

func without(segs []backup.Segment, seq int64) []backup.Segment {
	var out []backup.Segment
	for _, s := range segs {
		if s.Seq != seq {
			out = append(out, s)
		}
	}
	return out
}

func TestPlanRestore(t *testing.T) {
	t.Parallel()
	backups, segments := history()
	expired := full("bx", "2026-02-20T02:00:00Z", "0-1-10")
	expired.Status = backup.StatusExpired
	backups = append(backups, expired)

	tests := []struct {
		name       string
		segments   []backup.Segment
		target     backup.Target
		backup     string
		segs       []int64
		stopBefore string
		stopGTID   string
		err        error
		outside    bool
	}{
		{name: "time between backups", target: backup.Target{PointInTime: at("2026-03-02T06:00:00Z")},
			backup: "b2", segs: []int64{2}, stopBefore: "2026-03-02T06:00:01Z"},
		{name: "time exactly at a backup", target: backup.Target{PointInTime: at("2026-03-02T02:00:00Z")},
			backup: "b2", segs: []int64{2}, stopBefore: "2026-03-02T02:00:01Z"},
		{name: "second before a backup uses the one before", target: backup.Target{PointInTime: at("2026-03-02T01:59:59Z")},
			backup: "b1", segs: []int64{1, 2}, stopBefore: "2026-03-02T02:00:00Z"},
		{name: "fraction of a second is truncated", target: backup.Target{PointInTime: at("2026-03-02T06:00:00Z").Add(700 * time.Millisecond)},
			backup: "b2", segs: []int64{2}, stopBefore: "2026-03-02T06:00:01Z"},
		{name: "later segment reached", target: backup.Target{PointInTime: at("2026-03-03T01:00:00Z")},
			backup: "b2", segs: []int64{2, 3}, stopBefore: "2026-03-03T01:00:01Z"},
		{name: "time at the window's end", target: backup.Target{PointInTime: at("2026-03-03T12:00:00Z")},
			backup: "b3", segs: []int64{3}, stopBefore: "2026-03-03T12:00:01Z"},
		{name: "time after the last segment", target: backup.Target{PointInTime: at("2026-03-03T12:00:01Z")}, outside: true},
		{name: "time before the first backup", target: backup.Target{PointInTime: at("2026-03-01T01:00:00Z")}, outside: true},
		{name: "gap in the segments before the target", segments: without(segments, 2),
			target: backup.Target{PointInTime: at("2026-03-02T06:00:00Z")}, outside: true},
		{name: "gap before an older backup does not matter", segments: without(segments, 2),
			target: backup.Target{PointInTime: at("2026-03-03T06:00:00Z")}, backup: "b3", segs: []int64{3}, stopBefore: "2026-03-03T06:00:01Z"},
		{name: "gtid between backups", target: backup.Target{GTID: "0-1-220"}, backup: "b2", segs: []int64{2}, stopGTID: "0-1-220"},
		{name: "gtid across segments", target: backup.Target{GTID: "0-1-260"}, backup: "b2", segs: []int64{2, 3}, stopGTID: "0-1-260"},
		{name: "gtid exactly at a backup", target: backup.Target{GTID: "0-1-200"}, backup: "b2", stopGTID: "0-1-200"},
		{name: "gtid after the archive", target: backup.Target{GTID: "0-1-351"}, outside: true},
		{name: "gtid before the first backup", target: backup.Target{GTID: "0-1-50"}, outside: true},
		{name: "gtid behind a gap", segments: without(segments, 2), target: backup.Target{GTID: "0-1-220"}, outside: true},
		{name: "gtid of an unknown domain", target: backup.Target{GTID: "5-1-1"}, outside: true},
		{name: "gtid that does not parse", target: backup.Target{GTID: "zero-1-2"}, err: backup.ErrInvalid},
		{name: "backup id", target: backup.Target{BackupID: "b1"}, backup: "b1"},
		{name: "failed backup id", target: backup.Target{BackupID: "bf"}, err: backup.ErrInvalid},
		{name: "running backup id", target: backup.Target{BackupID: "br"}, err: backup.ErrInvalid},
		{name: "expired backup id", target: backup.Target{BackupID: "bx"}, err: backup.ErrInvalid},
		{name: "unknown backup id", target: backup.Target{BackupID: "nope"}, err: backup.ErrNotFound},
		{name: "no target", target: backup.Target{}, err: backup.ErrInvalid},
		{name: "two targets", target: backup.Target{BackupID: "b1", GTID: "0-1-1"}, err: backup.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			segs := segments
			if tc.segments != nil {
				segs = tc.segments
			}
			plan, err := backup.PlanRestore(backups, segs, tc.target)
			switch {
			case tc.outside:
				var ow *backup.OutsideWindowError
				require.True(t, errors.As(err, &ow), "got %v", err)
				require.Equal(t, at("2026-03-01T02:00:00Z"), ow.Window.Earliest)
				require.Contains(t, err.Error(), "2026-03-01T02:00:00Z")
				return
			case tc.err != nil:
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.backup, plan.Backup.ID)
			if tc.segs == nil {
				tc.segs = []int64{}
			}
			require.Equal(t, tc.segs, seqs(plan.Segments))
			if tc.stopBefore == "" {
				require.True(t, plan.StopBefore.IsZero())
			} else {
				require.Equal(t, at(tc.stopBefore), plan.StopBefore)
			}
			require.Equal(t, tc.stopGTID, plan.StopGTID)
		})
	}
}

func TestPlanRestoreNoBackup(t *testing.T) {
	t.Parallel()
	_, segments := history()
	running := full("br", "2026-03-03T06:00:00Z", "0-1-330")
	running.Status = backup.StatusRunning
	_, err := backup.PlanRestore([]backup.Backup{running}, segments, backup.Target{PointInTime: at("2026-03-03T06:00:00Z")})
	require.ErrorIs(t, err, backup.ErrNoBackup)
	_, err = backup.PlanRestore(nil, nil, backup.Target{GTID: "0-1-1"})
	require.ErrorIs(t, err, backup.ErrNoBackup)
}

func TestPlanRestoreMultiDomain(t *testing.T) {
	t.Parallel()
	backups := []backup.Backup{
		full("b1", "2026-03-01T02:00:00Z", "0-1-100,1-2-10"),
		full("b2", "2026-03-02T02:00:00Z", "0-1-200,1-2-20"),
	}
	segments := []backup.Segment{
		seg(1, "0-1-100,1-2-10", "0-1-150,1-2-30", "2026-03-01T03:00:00Z", "2026-03-01T23:00:00Z"),
		seg(2, "0-1-150,1-2-30", "0-1-250,1-2-35", "2026-03-01T23:05:00Z", "2026-03-02T12:00:00Z"),
	}
	tests := []struct {
		name, gtid string
		backup     string
		segs       []int64
		outside    bool
	}{
		// b2 holds 1-2-20 < 25 but 0-1-200 > 120: not usable.
		{name: "both domains", gtid: "1-2-25,0-1-120", backup: "b1", segs: []int64{1}},
		// Segment 1 holds 1-2-21..30, which b2 lacks: it is replayed too.
		{name: "one domain of several", gtid: "1-2-33", backup: "b2", segs: []int64{1, 2}},
		{name: "reached only in one domain", gtid: "0-1-150,1-2-31", backup: "b1", segs: []int64{1, 2}},
		{name: "past the archive in one domain", gtid: "0-1-240,1-2-36", outside: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := backup.PlanRestore(backups, segments, backup.Target{GTID: tc.gtid})
			if tc.outside {
				var ow *backup.OutsideWindowError
				require.True(t, errors.As(err, &ow), "got %v", err)
				require.Equal(t, "0-1-250,1-2-35", ow.Window.LatestGTID)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.backup, plan.Backup.ID)
			require.Equal(t, tc.segs, seqs(plan.Segments))
			want, err := backup.ParsePos(tc.gtid)
			require.NoError(t, err)
			require.Equal(t, want.String(), plan.StopGTID)
		})
	}
}

func TestPlanRestoreRedis(t *testing.T) {
	t.Parallel()
	snap := func(id, c string) backup.Backup {
		b := full(id, c, "")
		b.Engine, b.Kind = backup.EngineRedis, backup.KindSnapshot
		return b
	}
	backups := []backup.Backup{snap("s1", "2026-03-01T00:00:00Z"), snap("s2", "2026-03-01T06:00:00Z"), snap("s3", "2026-03-01T12:00:00Z")}
	plan, err := backup.PlanRestore(backups, nil, backup.Target{PointInTime: at("2026-03-01T08:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, "s2", plan.Backup.ID)
	require.Empty(t, plan.Segments)
	require.True(t, plan.StopBefore.IsZero())

	plan, err = backup.PlanRestore(backups, nil, backup.Target{PointInTime: at("2026-03-01T12:00:00Z")})
	require.NoError(t, err)
	require.Equal(t, "s3", plan.Backup.ID)

	var ow *backup.OutsideWindowError
	_, err = backup.PlanRestore(backups, nil, backup.Target{PointInTime: at("2026-03-01T12:00:01Z")})
	require.True(t, errors.As(err, &ow))
	_, err = backup.PlanRestore(backups, nil, backup.Target{GTID: "0-1-1"})
	require.ErrorIs(t, err, backup.ErrInvalid)
}

func TestRestoreWindow(t *testing.T) {
	t.Parallel()
	backups, segments := history()
	tests := []struct {
		name     string
		backups  []backup.Backup
		segments []backup.Segment
		want     backup.Window
		ok       bool
	}{
		{name: "with segments", backups: backups, segments: segments, ok: true,
			want: backup.Window{Earliest: at("2026-03-01T02:00:00Z"), Latest: at("2026-03-03T12:00:00Z"), LatestGTID: "0-1-350"}},
		{name: "without segments", backups: backups, ok: true,
			want: backup.Window{Earliest: at("2026-03-01T02:00:00Z"), Latest: at("2026-03-03T02:00:00Z"), LatestGTID: "0-1-300"}},
		{name: "archive behind the newest backup", backups: backups, segments: segments[1:2], ok: true,
			want: backup.Window{Earliest: at("2026-03-01T02:00:00Z"), Latest: at("2026-03-03T02:00:00Z"), LatestGTID: "0-1-300"}},
		{name: "gap after the newest backup", backups: backups, ok: true,
			segments: []backup.Segment{seg(9, "0-1-310", "0-1-400", "2026-03-03T05:00:00Z", "2026-03-03T06:00:00Z")},
			want:     backup.Window{Earliest: at("2026-03-01T02:00:00Z"), Latest: at("2026-03-03T02:00:00Z"), LatestGTID: "0-1-300"}},
		{name: "only failed and running backups", backups: backups[3:], segments: segments},
		{name: "nothing", ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, ok := backup.RestoreWindow(tc.backups, tc.segments)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, w)
		})
	}
}

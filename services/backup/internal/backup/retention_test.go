package backup_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// dailyHistory: a full at 02:00 every day from May 1st to June 15th 2026
// (day k holds 0-1-(k*100+50)) and one segment per day (seq k+1 holds
// 0-1-(k*100+1) .. 0-1-((k+1)*100)).
func dailyHistory() ([]backup.Backup, []backup.Segment) {
	var backups []backup.Backup
	var segments []backup.Segment
	start := at("2026-05-01T02:00:00Z")
	for k := 0; k <= 45; k++ {
		d := start.AddDate(0, 0, k)
		b := full(d.Format("b-0102"), d.Format(time.RFC3339), fmt.Sprintf("0-1-%d", k*100+50))
		backups = append(backups, b)
		segments = append(segments, backup.Segment{InstanceID: "i1", Seq: int64(k + 1),
			StartPos: fmt.Sprintf("0-1-%d", k*100), EndPos: fmt.Sprintf("0-1-%d", (k+1)*100),
			FirstAt: d.Add(-2 * time.Hour), LastAt: d.Add(22 * time.Hour)})
	}
	return backups, segments
}

func names(from, to string) []string {
	var out []string
	for d := at(from + "T02:00:00Z"); !d.After(at(to + "T02:00:00Z")); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format("b-0102"))
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestRetain(t *testing.T) {
	t.Parallel()
	now := at("2026-06-15T12:00:00Z")
	backups, segments := dailyHistory()

	t.Run("daily, monthly and the PITR anchor", func(t *testing.T) {
		r := backup.Retain(backup.DefaultPolicy(), backups, segments, now)
		// Kept: 06-09..06-15 (7 days), 06-08 (the full 7 days of PITR
		// start from), 05-01 and 06-01 (monthly).
		want := append(names("2026-05-02", "2026-05-31"), names("2026-06-02", "2026-06-07")...)
		require.ElementsMatch(t, want, r.DropBackups)
		require.Equal(t, []string{"b-0501", "b-0601"}, r.Monthly)
		// 06-08 (day 38) holds 0-1-3850: segments ending at or before it go.
		require.Equal(t, seqRange(1, 38), r.DropSegments)
	})

	t.Run("an already marked monthly stays the month's", func(t *testing.T) {
		bs := slices.Clone(backups)
		bs[2].Monthly = true // 05-03
		r := backup.Retain(backup.DefaultPolicy(), bs, segments, now)
		require.Equal(t, []string{"b-0503", "b-0601"}, r.Monthly)
		require.Contains(t, r.DropBackups, "b-0501")
		require.NotContains(t, r.DropBackups, "b-0503")
	})

	t.Run("monthly marks kept M months", func(t *testing.T) {
		p := backup.Resolve(backup.DefaultPolicy(), backup.PolicyOverride{MonthlyKeepMonths: ptr(1)})
		r := backup.Retain(p, backups, segments, now)
		require.Equal(t, []string{"b-0601"}, r.Monthly)
		require.Contains(t, r.DropBackups, "b-0501")
		p = backup.Resolve(backup.DefaultPolicy(), backup.PolicyOverride{MonthlyKeepMonths: ptr(0)})
		r = backup.Retain(p, backups, segments, now)
		require.Empty(t, r.Monthly)
		require.Contains(t, r.DropBackups, "b-0601")
	})

	t.Run("PITR window keeps the full the oldest point needs", func(t *testing.T) {
		p := backup.Resolve(backup.DefaultPolicy(), backup.PolicyOverride{DailyKeepDays: ptr(2), PITRDays: ptr(2), MonthlyKeepMonths: ptr(0)})
		r := backup.Retain(p, backups, segments, now)
		// Daily keeps 06-14 and 06-15; 06-13 02:00 is the newest full at
		// or before 06-13 12:00, the oldest restorable point.
		require.ElementsMatch(t, names("2026-05-01", "2026-06-12"), r.DropBackups)
		require.Equal(t, seqRange(1, 43), r.DropSegments)
		// What is left still reaches the oldest point.
		kept := keptBackups(backups, r)
		left := keptSegments(segments, r)
		_, err := backup.PlanRestore(kept, left, backup.Target{PointInTime: now.Add(-48 * time.Hour)})
		require.NoError(t, err)
	})

	t.Run("newest always kept", func(t *testing.T) {
		old := backups[:5] // 05-01..05-05, all long past every rule
		p := backup.Resolve(backup.DefaultPolicy(), backup.PolicyOverride{MonthlyKeepMonths: ptr(0)})
		r := backup.Retain(p, old, segments, now)
		require.ElementsMatch(t, names("2026-05-01", "2026-05-04"), r.DropBackups)
		// Replay from 05-05 (0-1-450) needs seq 5 on.
		require.Equal(t, seqRange(1, 4), r.DropSegments)
	})

	t.Run("failed dropped after a day, running and expired never", func(t *testing.T) {
		recent := backups[40:]
		failedOld := full("failed-old", "2026-06-14T02:00:00Z", "")
		failedOld.Status, failedOld.FinishedAt = backup.StatusFailed, at("2026-06-14T02:05:00Z")
		failedNew := full("failed-new", "2026-06-15T02:00:00Z", "")
		failedNew.Status, failedNew.FinishedAt = backup.StatusFailed, at("2026-06-15T02:05:00Z")
		running := full("running", "2026-06-01T02:00:00Z", "")
		running.Status = backup.StatusRunning
		expired := full("expired", "2026-01-01T02:00:00Z", "")
		expired.Status = backup.StatusExpired
		bs := append(slices.Clone(recent), failedOld, failedNew, running, expired)
		r := backup.Retain(backup.DefaultPolicy(), bs, nil, now)
		require.Equal(t, []string{"failed-old"}, r.DropBackups)
	})

	t.Run("the newest segment stays", func(t *testing.T) {
		newer := full("late", "2026-06-15T06:00:00Z", "0-1-9999")
		r := backup.Retain(backup.DefaultPolicy(), append(slices.Clone(backups), newer), segments, at("2026-07-01T00:00:00Z"))
		require.Equal(t, seqRange(1, 45), r.DropSegments)
	})

	t.Run("no backups: nothing to do", func(t *testing.T) {
		r := backup.Retain(backup.DefaultPolicy(), nil, segments, now)
		require.Empty(t, r.DropBackups)
		require.Empty(t, r.DropSegments)
	})
}

func keptBackups(bs []backup.Backup, r backup.Retention) []backup.Backup {
	var out []backup.Backup
	for _, b := range bs {
		if !slices.Contains(r.DropBackups, b.ID) {
			out = append(out, b)
		}
	}
	return out
}

func keptSegments(ss []backup.Segment, r backup.Retention) []backup.Segment {
	var out []backup.Segment
	for _, s := range ss {
		if !slices.Contains(r.DropSegments, s.Seq) {
			out = append(out, s)
		}
	}
	return out
}

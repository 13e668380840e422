package backup_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func aofPos(chain, file string, off int64) string {
	return backup.AOFPos{Chain: chain, Node: "n1", Base: "appendonly.aof.1.base.rdb", BaseStamp: 7, File: file, Offset: off}.String()
}

func aofBase(seq int64, chain, at_ string) backup.Segment {
	return seg(seq, aofPos(chain, "", 0), aofPos(chain, "appendonly.aof.1.incr.aof", 0), at_, at_)
}

func aofPiece(seq int64, chain string, from, to int64, first, last string) backup.Segment {
	return seg(seq, aofPos(chain, "appendonly.aof.1.incr.aof", from), aofPos(chain, "appendonly.aof.1.incr.aof", to), first, last)
}

func snapshot(id, consistent string) backup.Backup {
	b := full(id, consistent, "")
	b.Engine, b.Kind = backup.EngineRedis, backup.KindSnapshot
	return b
}

// aofHistory: chain c1 from 10:00 to 10:20, a hole (the archive missed
// the end of c1's files), chain c2 from 11:00 to 11:30.
func aofHistory() []backup.Segment {
	return []backup.Segment{
		aofBase(1, "c1", "2026-03-01T10:00:00Z"),
		aofPiece(2, "c1", 0, 100, "2026-03-01T10:00:05Z", "2026-03-01T10:10:00Z"),
		aofPiece(3, "c1", 100, 200, "2026-03-01T10:10:00Z", "2026-03-01T10:20:00Z"),
		aofBase(4, "c2", "2026-03-01T11:00:00Z"),
		aofPiece(5, "c2", 0, 50, "2026-03-01T11:00:01Z", "2026-03-01T11:30:00Z"),
	}
}

func TestAOFPosRoundTrip(t *testing.T) {
	p := backup.AOFPos{Chain: "01J", Node: "node-a", Base: "appendonly.aof.3.base.rdb", BaseStamp: 1764700000123456789,
		File: "appendonly.aof.4.incr.aof", Offset: 4096}
	got, err := backup.ParseAOFPos(p.String())
	require.NoError(t, err)
	require.Equal(t, p, got)
	for _, bad := range []string{"0-1-5", "aof:", "aof:c|n|b|x|f|1", "aof:c|n|b|1|f|-1", "aof:|n|b|1|f|1"} {
		_, err := backup.ParseAOFPos(bad)
		require.ErrorIs(t, err, backup.ErrInvalid, bad)
	}
}

func TestAOFPlanToTheSecond(t *testing.T) {
	segs := aofHistory()
	plan, err := backup.PlanRestore(nil, segs, backup.Target{PointInTime: at("2026-03-01T10:09:59Z")})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, seqs(plan.Segments), "the base and the piece holding 10:09:59, not the one starting at 10:10")
	require.Equal(t, at("2026-03-01T10:10:00Z"), plan.StopBefore)
	require.Empty(t, plan.Backup.ID)

	plan, err = backup.PlanRestore(nil, segs, backup.Target{PointInTime: at("2026-03-01T10:10:00Z")})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, seqs(plan.Segments), "a piece whose first command is at the target second is replayed")

	plan, err = backup.PlanRestore(nil, segs, backup.Target{PointInTime: at("2026-03-01T11:15:00Z")})
	require.NoError(t, err)
	require.Equal(t, []int64{4, 5}, seqs(plan.Segments), "the newer chain serves its own span")

	// Before any chain, in the hole, after the end: outside the window.
	for _, ts := range []string{"2026-03-01T09:59:59Z", "2026-03-01T10:30:00Z", "2026-03-01T11:30:01Z"} {
		_, err = backup.PlanRestore(nil, segs, backup.Target{PointInTime: at(ts)})
		var out *backup.OutsideWindowError
		require.True(t, errors.As(err, &out), "%s: %v", ts, err)
	}
	_, err = backup.PlanRestore(nil, segs, backup.Target{GTID: "0-1-5"})
	require.ErrorIs(t, err, backup.ErrInvalid)
}

func TestAOFPlanFallsBackToSnapshotInAHole(t *testing.T) {
	backups := []backup.Backup{snapshot("s1", "2026-03-01T10:25:00Z")}
	plan, err := backup.PlanRestore(backups, aofHistory(), backup.Target{PointInTime: at("2026-03-01T10:30:00Z")})
	require.NoError(t, err)
	require.Equal(t, "s1", plan.Backup.ID)
	require.Empty(t, plan.Segments)
}

func TestAOFMissingPieceEndsTheChain(t *testing.T) {
	segs := aofHistory()
	segs = without(segs, 2) // piece 3 no longer follows the base
	w, ok := backup.RestoreWindow(nil, segs)
	require.True(t, ok)
	require.Equal(t, at("2026-03-01T10:00:00Z"), w.Earliest)
	require.Equal(t, at("2026-03-01T11:30:00Z"), w.Latest)
	_, err := backup.PlanRestore(nil, segs, backup.Target{PointInTime: at("2026-03-01T10:15:00Z")})
	var out *backup.OutsideWindowError
	require.True(t, errors.As(err, &out), "%v", err)
}

func TestAOFWindowSpansSnapshotsAndChains(t *testing.T) {
	backups := []backup.Backup{snapshot("s0", "2026-03-01T09:00:00Z"), snapshot("s1", "2026-03-01T10:05:00Z")}
	w, ok := backup.RestoreWindow(backups, aofHistory())
	require.True(t, ok)
	require.Equal(t, at("2026-03-01T09:00:00Z"), w.Earliest)
	require.Equal(t, at("2026-03-01T11:30:00Z"), w.Latest)
	_, ok = backup.RestoreWindow(nil, nil)
	require.False(t, ok)
}

func TestAOFRetentionDropsWholeOldChains(t *testing.T) {
	p := backup.DefaultPolicy()
	p.PITRDays = 1
	segs := aofHistory()
	r := backup.Retain(p, nil, segs, at("2026-03-02T10:25:00Z"))
	require.Equal(t, []int64{1, 2, 3}, r.DropSegments, "c1 ended more than a day ago")
	r = backup.Retain(p, nil, segs, at("2026-03-02T10:15:00Z"))
	require.Empty(t, r.DropSegments, "c1 still reaches into the window")
	r = backup.Retain(p, nil, segs, at("2026-04-01T00:00:00Z"))
	require.Equal(t, []int64{1, 2, 3}, r.DropSegments, "the newest chain stays, however old")
}

package backup_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNextFull(t *testing.T) {
	t.Parallel()
	p := backup.DefaultPolicy() // window 02:00-03:00 UTC
	tests := []struct {
		name      string
		engine    backup.Engine
		last, now string
		want      string
	}{
		{name: "first backup due at once", engine: backup.EngineMySQL, now: "2026-03-01T12:00:00Z", want: "2026-03-01T12:00:00Z"},
		{name: "taken in the window: next day's window", engine: backup.EngineMySQL,
			last: "2026-03-01T02:10:00Z", now: "2026-03-01T12:00:00Z", want: "2026-03-02T02:00:00Z"},
		{name: "taken at the window's start", engine: backup.EngineMySQL,
			last: "2026-03-01T02:00:00Z", now: "2026-03-01T02:00:01Z", want: "2026-03-02T02:00:00Z"},
		{name: "late catch-up counts for its day", engine: backup.EngineMySQL,
			last: "2026-03-01T10:00:00Z", now: "2026-03-01T12:00:00Z", want: "2026-03-02T02:00:00Z"},
		{name: "catch-up after midnight counts for the day before", engine: backup.EngineMySQL,
			last: "2026-03-02T01:00:00Z", now: "2026-03-02T01:30:00Z", want: "2026-03-02T02:00:00Z"},
		{name: "missed windows: due at once", engine: backup.EngineMySQL,
			last: "2026-03-01T02:10:00Z", now: "2026-03-04T09:00:00Z", want: "2026-03-02T02:00:00Z"},
		{name: "redis every SnapshotEvery", engine: backup.EngineRedis,
			last: "2026-03-01T02:10:00Z", now: "2026-03-01T03:00:00Z", want: "2026-03-01T08:10:00Z"},
		{name: "redis first snapshot at once", engine: backup.EngineRedis, now: "2026-03-01T03:00:00Z", want: "2026-03-01T03:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var last time.Time
			if tc.last != "" {
				last = at(tc.last)
			}
			got := backup.NextFull(p, tc.engine, last, at(tc.now))
			require.Equal(t, at(tc.want), got.UTC())
		})
	}

	// A missed window is due now, and once taken the next is the next
	// day's window, not another catch-up.
	now := at("2026-03-04T09:00:00Z")
	require.False(t, backup.NextFull(p, backup.EngineMySQL, at("2026-03-01T02:10:00Z"), now).After(now))
	require.Equal(t, at("2026-03-05T02:00:00Z"), backup.NextFull(p, backup.EngineMySQL, now, now))

	// A window crossing midnight.
	late := backup.Resolve(p, backup.PolicyOverride{WindowStart: ptr(23*time.Hour + 30*time.Minute), WindowLength: ptr(time.Hour)})
	require.Equal(t, at("2026-03-02T23:30:00Z"), backup.NextFull(late, backup.EngineMySQL, at("2026-03-02T00:15:00Z"), at("2026-03-02T01:00:00Z")))
}

func TestNextDrill(t *testing.T) {
	t.Parallel()
	p := backup.DefaultPolicy()
	now := at("2026-03-10T00:00:00Z")
	require.Equal(t, now, backup.NextDrill(p, time.Time{}, now))
	require.Equal(t, at("2026-03-31T00:00:00Z"), backup.NextDrill(p, at("2026-03-01T00:00:00Z"), now))
	off := backup.Resolve(p, backup.PolicyOverride{DrillEvery: ptr(time.Duration(0))})
	require.True(t, backup.NextDrill(off, time.Time{}, now).IsZero())
	disabled := backup.Resolve(p, backup.PolicyOverride{Enabled: ptr(false)})
	require.True(t, backup.NextDrill(disabled, at("2026-03-01T00:00:00Z"), now).IsZero())
}

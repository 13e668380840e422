package drill

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/porttest"
)

// TestSentinelDrill runs one kill-primary drill on the peer topology: the
// writer finds the new primary through the sentinels and its writes are
// acknowledged there. Loss and two-writable moments are the peer's figures,
// logged, not asserted (with a tight down-after Sentinel can fail over
// twice and leave two masters; the benchmark reports it).
func TestSentinelDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 processes and waits for a Sentinel failover")
	}
	if _, err := SentinelBinary(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
	})
	r, err := SentinelDrill(ctx, SentinelDrillConfig{
		Dir: dir, Port: porttest.Pick, DownAfter: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sentinel drill: %s", r)
	if r.NewPrimary == "" || r.NewPrimary == r.OldPrimary {
		t.Errorf("no new primary: old %s new %s", r.OldPrimary, r.NewPrimary)
	}
	if r.RTO <= 0 || r.RTO > 30*time.Second {
		t.Errorf("RTO %s out of range", r.RTO)
	}
	if r.Acked <= 100 || r.FirstAfter.Seq <= r.LastBefore.Seq {
		t.Errorf("acknowledged writes: %d, last before the kill #%d, first after #%d", r.Acked, r.LastBefore.Seq, r.FirstAfter.Seq)
	}
	if r.CheckRounds < 10 {
		t.Errorf("the checker ran only %d rounds", r.CheckRounds)
	}
}

func TestMedian(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"none", nil, 0},
		{"one", []time.Duration{5 * ms}, 5 * ms},
		{"odd unsorted", []time.Duration{9 * ms, 1 * ms, 5 * ms}, 5 * ms},
		{"even", []time.Duration{4 * ms, 1 * ms, 2 * ms, 8 * ms}, 3 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Median(tc.in); got != tc.want {
				t.Errorf("Median(%v) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

// TestSentinelRestartedPrimary restarts the killed primary after the
// failover, as a supervisor would, and logs what the checker saw: a Redis
// primary restarted from its own configuration is a master until Sentinel
// converts it (Sentinel's documented behaviour), which the benchmark counts.
func TestSentinelRestartedPrimary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 processes and waits for a Sentinel failover")
	}
	if _, err := SentinelBinary(); err != nil {
		t.Skip(err)
	}
	r, err := SentinelDrill(context.Background(), SentinelDrillConfig{
		Dir: t.TempDir(), Port: porttest.Pick, DownAfter: 250 * time.Millisecond,
		RestartOld: true, Drill: Drill{Settle: 3 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sentinel drill, old primary restarted: %s", r)
	if r.NewPrimary == "" || r.NewPrimary == r.OldPrimary {
		t.Errorf("no new primary: old %s new %s", r.OldPrimary, r.NewPrimary)
	}
}

package target_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

func TestValidate(t *testing.T) {
	good := target.Target{NodeID: "n1", InstanceID: "i1", Engine: target.EngineRedis, Role: target.RolePrimary,
		Address: "127.0.0.1:6379", Policy: target.DefaultPolicy()}
	require.NoError(t, good.Validate())
	cases := []struct {
		name string
		edit func(*target.Target)
	}{
		{"no node id", func(t *target.Target) { t.NodeID = "" }},
		{"no instance", func(t *target.Target) { t.InstanceID = "" }},
		{"unknown engine", func(t *target.Target) { t.Engine = "mongo" }},
		{"unknown role", func(t *target.Target) { t.Role = "leader" }},
		{"bad address", func(t *target.Target) { t.Address = "nohostport" }},
		{"timeout above interval", func(t *target.Target) { t.Policy.Timeout = 2 * t.Policy.Interval }},
		{"zero fall", func(t *target.Target) { t.Policy.Fall = 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			tc.edit(&bad)
			require.Error(t, bad.Validate())
		})
	}
}

func TestPhaseSpreadsEvenly(t *testing.T) {
	const n, buckets = 10000, 10
	counts := make([]int, buckets)
	p := target.DefaultPolicy()
	for i := 0; i < n; i++ {
		tg := target.Target{NodeID: fmt.Sprintf("node-%d", i), Policy: p}
		ph := tg.Phase()
		require.True(t, ph >= 0 && ph < p.Interval)
		counts[int(ph*buckets/p.Interval)]++
	}
	for i, c := range counts {
		require.InDelta(t, n/buckets, c, n/buckets*0.1, "bucket %d", i)
	}
	a := target.Target{NodeID: "x", Policy: p}
	require.Equal(t, a.Phase(), a.Phase(), "the phase is stable")
}

func TestDefaults(t *testing.T) {
	p := target.Policy{Interval: 200 * time.Millisecond}.WithDefaults()
	require.Equal(t, 200*time.Millisecond, p.Timeout)
	require.Equal(t, 3, p.Fall)
	require.Equal(t, 2, p.Rise)
	require.Equal(t, 3500*time.Millisecond, target.DefaultPolicy().DetectionTime())
}

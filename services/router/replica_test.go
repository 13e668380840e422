package router

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/launch"
)

// TestReplicasOfOneHostHaveTheirOwnGroup: every router replica must see
// every event, so each needs its own consumer group. Two replicas on one
// host (split mode) listen on different ports and, unnamed, get different
// names; a restarted one gets its name (and its group's offsets) back.
func TestReplicasOfOneHostHaveTheirOwnGroup(t *testing.T) {
	build := func(addr string) *Service {
		t.Helper()
		cfg := DefaultConfig()
		cfg.Addr, cfg.InternalSecret = addr, "0123456789abcdef0123456789abcdef"
		s, err := New(cfg, launch.Deps{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := build("127.0.0.1:18090"), build("127.0.0.1:18190")
	if a.cfg.Replica == b.cfg.Replica {
		t.Fatalf("two replicas of one host share the name %q (and so one consumer group)", a.cfg.Replica)
	}
	if again := build("127.0.0.1:18090"); again.cfg.Replica != a.cfg.Replica {
		t.Fatalf("restarted replica renamed: %q, was %q", again.cfg.Replica, a.cfg.Replica)
	}
}

package realtest

import (
	"testing"

	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
)

// TestRealNodes runs every scenario on one three-node topology per engine
// (starting MariaDB nodes costs seconds), under one writer and one
// two-writable checker: each scenario starts from a healthy topology,
// wherever the primary is, and leaves one. Each has its own actors; they
// share the engine's failover database. A failed scenario stops the
// engine's run: the topology is then in an unknown state.
func TestRealNodes(t *testing.T) {
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			// The engines share nothing; running them side by side keeps
			// the package CI-sized.
			t.Parallel()
			e := newEnv(t, eng)
			e.useStore(t)
			run := func(name string, f func(t *testing.T)) {
				t.Helper()
				if !t.Run(name, f) {
					t.Fatalf("stopped after %s: topology in an unknown state", name)
				}
			}
			run("UnreachableButAlivePrimaryNoFailover", func(t *testing.T) { unreachablePrimary(t, e) })
			run("TwoActorsOneRecoveryPerFailure", func(t *testing.T) { twoActors(t, e) })
			for _, point := range recovery.Points() {
				run("ActorCrash/"+string(point), func(t *testing.T) { crashAt(t, e, point, false) })
				// The old primary back (read-only) before the resume: the
				// rollback path (MariaDB) and the empty returning primary
				// (Redis, no persistence). Past the promotion MariaDB adds
				// nothing the Redis run does not cover but seconds.
				if eng.name == "redis" || !promoted(point) {
					run("ActorCrash/"+string(point)+"/old-primary-returns", func(t *testing.T) { crashAt(t, e, point, true) })
				}
			}
		})
	}
}

// promoted reports whether a failover stopped at p promoted its candidate.
func promoted(p recovery.Point) bool {
	return p == recovery.AfterPromote || p == recovery.AfterRepoint
}

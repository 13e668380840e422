package realtest

import (
	"testing"

	"github.com/canopy-platform/canopy/services/failover/internal/recovery"
)

// TestRealNodes runs every scenario on one three-node topology per engine
// (starting MariaDB nodes costs seconds): each scenario starts from a
// healthy topology, wherever the primary is, and leaves one; each has its
// own failover database and actors. A failed scenario stops the engine's
// run: the topology is then in an unknown state.
func TestRealNodes(t *testing.T) {
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			e := newEnv(t, eng)
			run := func(name string, f func(t *testing.T)) {
				t.Helper()
				if !t.Run(name, func(t *testing.T) { e.useStore(t); f(t) }) {
					t.Fatalf("stopped after %s: topology in an unknown state", name)
				}
			}
			run("UnreachableButAlivePrimaryNoFailover", func(t *testing.T) { unreachablePrimary(t, e) })
			run("TwoActorsOneRecoveryPerFailure", func(t *testing.T) { twoActors(t, e) })
			for _, point := range recovery.Points() {
				run("ActorCrash/"+string(point), func(t *testing.T) { crashAt(t, e, point, false) })
				run("ActorCrash/"+string(point)+"/old-primary-returns", func(t *testing.T) { crashAt(t, e, point, true) })
			}
		})
	}
}

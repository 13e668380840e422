package memrepo_test

import (
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/repotest"
)

// TestConformance runs the repository contract's suite in memory.
func TestConformance(t *testing.T) {
	repotest.Run(t, func(t *testing.T) repotest.Subject {
		r := memrepo.New()
		return repotest.Subject{Repo: r, OutboxLen: func(*testing.T) int { return len(r.Outbox()) }}
	})
}

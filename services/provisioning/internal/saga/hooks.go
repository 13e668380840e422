package saga

import (
	"context"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// Hooks let tests interrupt the saga.
type Hooks struct {
	// BeforeStep runs before each step's work. An error halts the saga for
	// that instance on the spot, as a crash would: nothing is rolled back
	// and the instance stays where it was until a (new) saga resumes it.
	BeforeStep func(ctx context.Context, instanceID string, step instance.Step) error
	// KeepLeasesOnStop leaves the saga leases held when the saga's context
	// ends, as a crashed replica leaves them: they expire instead of being
	// given back (tests of the takeover).
	KeepLeasesOnStop bool
}

// errHalted stops the saga for an instance without touching it.
var errHalted = errors.New("halted by test hook")

func (s *Saga) hook(ctx context.Context, in *instance.Instance, step instance.Step) error {
	if s.hooks.BeforeStep == nil {
		return nil
	}
	if err := s.hooks.BeforeStep(ctx, in.ID, step); err != nil {
		return fmt.Errorf("%w: %v", errHalted, err)
	}
	return nil
}

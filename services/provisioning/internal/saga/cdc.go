package saga

import (
	"context"
	"fmt"

	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// CDCUsername is the cdc service's account on every MySQL node.
const CDCUsername = "canopy_cdc"

// EnsureCDCAccount returns instance id with its cdc account holding the
// grants the cdc service needs now (driver.CDCGrants), creating the account
// first when the instance predates it (MySQL nodes bootstrapped before
// Canopy had one), or granting it again when it was created with older
// grants (before sync jobs wrote to targets): on the ready primary, whence
// it replicates to every replica, then stored with the other accounts.
// Redis instances and up-to-date accounts are returned as they are. A MySQL
// instance that is not ready is refused with ErrNotReady, a deleted one
// with ErrGone.
func (s *Saga) EnsureCDCAccount(ctx context.Context, id string) (*instance.Instance, error) {
	in, err := s.repo.GetAnyTenant(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Plan.Engine != instance.EngineMySQL || (in.Accounts.CDC.Username != "" && in.Accounts.CDCGrants == driver.CDCGrants) {
		return in, nil
	}
	if in.State == instance.StateDeleted {
		return in, ErrGone
	}
	if in.State != instance.StateReady {
		return in, fmt.Errorf("%w: %s", ErrNotReady, in.State)
	}
	cred := in.Accounts.CDC
	fresh := cred.Username == ""
	if fresh {
		// Created before it is stored: a crash in between leaves an
		// account nobody knows the password of, which the next call resets.
		cred = instance.Credentials{Username: CDCUsername, Password: secrets.Password(32)}
	}
	if err := s.eng.CreateCDCUser(ctx, in, cred); err != nil {
		return in, fmt.Errorf("create cdc account: %w", err)
	}
	stored, err := s.repo.Update(ctx, id, func(c *port.Change) error {
		switch {
		case c.Instance.Accounts.CDC.Username == "":
			c.Instance.Accounts.CDC = cred
		case c.Instance.Accounts.CDC != cred || c.Instance.Accounts.CDCGrants == driver.CDCGrants:
			return port.ErrNoChange
		}
		c.Instance.Accounts.CDCGrants = driver.CDCGrants
		return nil
	})
	if err != nil {
		return in, fmt.Errorf("store cdc account: %w", err)
	}
	if stored.Accounts.CDC != cred {
		// A concurrent call stored its account first; ours may have reset
		// the password on the engine after it: set the stored one again.
		if err := s.eng.CreateCDCUser(ctx, stored, stored.Accounts.CDC); err != nil {
			return stored, fmt.Errorf("create cdc account: %w", err)
		}
	}
	if fresh {
		s.log.Info("cdc account added to an instance that predates it", "tenant", in.Tenant, "instance", in.ID)
	} else {
		s.log.Info("cdc account granted what sync jobs need", "tenant", in.Tenant, "instance", in.ID, "grants", driver.CDCGrants)
	}
	return stored, nil
}

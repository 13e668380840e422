package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// routerPortsRepo is what the backfill of router ports needs.
type routerPortsRepo interface {
	WithoutRouterPorts(ctx context.Context) ([]string, error)
	AssignRouterPorts(ctx context.Context, id string, pr instance.PortRange) (*instance.Instance, bool, error)
}

// backfillRouterPorts gives every live instance without router ports (made
// before the router existed, or while it was disabled) a pair, once: ports
// never change afterwards. The router learns them from its view. A full
// range is logged and ends the pass without failing the start: the
// instances left without ports keep credentials that name their primary
// node until a later start finds free ports.
func backfillRouterPorts(ctx context.Context, repo routerPortsRepo, r instance.Router, log *slog.Logger) error {
	if !r.Enabled() {
		return nil
	}
	ids, err := repo.WithoutRouterPorts(ctx)
	if err != nil {
		return fmt.Errorf("router ports backfill: %w", err)
	}
	n := 0
	for _, id := range ids {
		in, assigned, err := repo.AssignRouterPorts(ctx, id, r.Ports)
		if errors.Is(err, instance.ErrRouterPortsExhausted) {
			log.Error("router ports backfill: the range is full; instances left without router endpoints", "ports", fmt.Sprintf("%d-%d", r.Ports.Lo, r.Ports.Hi), "left", len(ids)-n, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("router ports backfill: %w", err)
		}
		if assigned {
			n++
			log.Info("router ports assigned to an existing instance", "tenant", in.Tenant, "instance", in.ID, "rw_port", in.Router.RW, "ro_port", in.Router.RO)
		}
	}
	if n > 0 {
		log.Info("router ports backfill done", "instances", n)
	}
	return nil
}

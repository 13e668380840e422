package saga

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// The saga's ports: what it needs from the outside, declared here in its
// terms. The driver's port is driver.Driver. Adapters are wired in
// services/provisioning; the saga imports none of them.

// Repository is the persistence the saga needs: instances, operations and
// bindings, with their events written to the outbox in the same change.
// *mysqlrepo.Repo and *memrepo.Repo implement it.
type Repository interface {
	Create(ctx context.Context, req port.CreateRequest) error
	Update(ctx context.Context, id string, fn func(c *port.Change) error) (*instance.Instance, error)
	Get(ctx context.Context, tenant, id string) (*instance.Instance, error)
	GetAnyTenant(ctx context.Context, id string) (*instance.Instance, error)
	Operation(ctx context.Context, tenant, id string) (instance.Operation, error)
	Unfinished(ctx context.Context) ([]string, error)
	WithNodes(ctx context.Context) ([]string, error)
	CreateBinding(ctx context.Context, b instance.Binding, events []port.Outgoing) (instance.Binding, error)
	Binding(ctx context.Context, tenant, instanceID, id string) (instance.Binding, error)
	BindingByOSBID(ctx context.Context, tenant, instanceID, osbID string) (instance.Binding, error)
	DeleteBinding(ctx context.Context, b instance.Binding, events []port.Outgoing) error
	DeleteBindings(ctx context.Context, instanceID string) error
}

// EngineAdmin talks to running engines with Canopy's admin account;
// *engineadmin.Client implements it.
type EngineAdmin interface {
	Verify(ctx context.Context, in *instance.Instance, token string) error
	// ServerVersion is the build the primary reports of itself
	// ("mariadb-10.11.19", "redis-7.0.15").
	ServerVersion(ctx context.Context, in *instance.Instance) (string, error)
	Apply(ctx context.Context, in *instance.Instance, settings map[string]string) error
	CreateUser(ctx context.Context, in *instance.Instance, u instance.Credentials) error
	CreateCDCUser(ctx context.Context, in *instance.Instance, u instance.Credentials) error
	DropUser(ctx context.Context, in *instance.Instance, username string) error
}

// Clock tells the time: step and provision timeouts are measured with it
// against the persisted instance's timestamps.
type Clock func() time.Time

// Restores is the backup service's restore jobs as the saga follows them;
// *backupclient.Client implements it. Job returns port.ErrNotFound for a
// job the backup service does not know.
type Restores interface {
	Job(ctx context.Context, tenant, id string) (port.RestoreJob, error)
	// Done tells the backup service the seed was copied into every node,
	// so it may remove it.
	Done(ctx context.Context, tenant, id string) error
}

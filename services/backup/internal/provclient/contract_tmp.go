// Package provclient is the backup service's client of provisioning: the
// internal backup view of instances (nodes, data directories, the admin
// account) and the public instance API the drills order and delete scratch
// instances through, signed as service:backup for the tenant.
package provclient

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Config configures the client.
type Config struct {
	BaseURL string
	Secret  []byte
	Timeout time.Duration
}

// Client calls provisioning.
type Client struct{}

// New checks cfg.
func New(cfg Config) (*Client, error) { panic("contract") }

// List returns every instance provisioning holds.
func (c *Client) List(ctx context.Context) ([]backup.Instance, error) { panic("contract") }

// Get returns one instance; backup.ErrNotFound when gone.
func (c *Client) Get(ctx context.Context, id string) (backup.Instance, error) { panic("contract") }

// CreateRestored orders a restored instance for the tenant.
func (c *Client) CreateRestored(ctx context.Context, tenant, name, planID, sourceID, backupID string) (string, error) {
	panic("contract")
}

// Delete deletes the tenant's instance (idempotent: 404 is success).
func (c *Client) Delete(ctx context.Context, tenant, id string) error { panic("contract") }

// Package provclient is the backup service's client of provisioning: the
// internal backup view of instances (nodes, data directories, the admin
// account) and the public instance API the drills order and delete scratch
// instances through, signed as service:backup for the tenant. It maps the
// wire to backup.Instance and statuses to backup's sentinels; it keeps no
// state.
package provclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Provisioning's endpoints the client calls.
const (
	// ListPath is the internal backup view of every instance with nodes.
	ListPath = "/internal/v1/backup/instances"
	// InstancePath prefixes one instance of the internal view.
	InstancePath = "/internal/v1/backup/instances/"
	// PublicInstancesPath is the public instance API.
	PublicInstancesPath = "/api/v1/instances"
)

// Subject is who the backup service is to provisioning.
const Subject = "service:backup"

// Identity is the backup service's identity for the internal view (no
// tenant: it reads every tenant's instances).
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: Subject}

// TenantIdentity is the identity public calls for tenant carry: a tenant
// member (allowed to create and delete the tenant's instances, nothing
// more) whose subject names the backup service.
func TenantIdentity(tenant string) tenancy.Principal {
	return tenancy.Principal{Tenant: tenancy.ID(tenant), Role: tenancy.RoleTenantMember, Subject: Subject}
}

// maxBody bounds one answer: every instance with its nodes.
const maxBody = 64 << 20

// createTries bounds the attempts of one order; the idempotency key makes a
// retried attempt answer with the first one's instance.
const createTries = 3

// Config configures the client.
type Config struct {
	BaseURL string
	Secret  []byte
	Timeout time.Duration
}

// Client calls provisioning.
type Client struct {
	svc *svcclient.Client
}

// New checks cfg.
func New(cfg Config) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: cfg.Secret, BaseURL: cfg.BaseURL,
		Timeout: cfg.Timeout, MaxBody: maxBody})
	if err != nil {
		return nil, fmt.Errorf("provclient: %w", err)
	}
	return &Client{svc: svc}, nil
}

// List returns every instance provisioning holds.
func (c *Client) List(ctx context.Context) ([]backup.Instance, error) {
	var page struct {
		Items []backup.Instance `json:"items"`
	}
	if err := c.svc.GetJSON(ctx, Identity, ListPath, &page); err != nil {
		return nil, fmt.Errorf("provclient: list instances: %w", err)
	}
	return page.Items, nil
}

// Get returns one instance; backup.ErrNotFound when gone.
func (c *Client) Get(ctx context.Context, id string) (backup.Instance, error) {
	var in backup.Instance
	err := c.svc.GetJSON(ctx, Identity, InstancePath+url.PathEscape(id), &in)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return backup.Instance{}, fmt.Errorf("provclient: instance %s: %w", id, backup.ErrNotFound)
	}
	if err != nil {
		return backup.Instance{}, fmt.Errorf("provclient: instance %s: %w", id, err)
	}
	return in, nil
}

// createRequest is provisioning's public order with a restore source.
type createRequest struct {
	Name        string      `json:"name"`
	PlanID      string      `json:"plan_id"`
	RestoreFrom restoreFrom `json:"restore_from"`
}

type restoreFrom struct {
	InstanceID string `json:"instance_id"`
	BackupID   string `json:"backup_id"`
}

// accepted is provisioning's answer to an order: 202 {"instance":{...},
// "operation_id"}; a bare instance is read too.
type accepted struct {
	Instance struct {
		ID string `json:"id"`
	} `json:"instance"`
	ID string `json:"id"`
}

// CreateRestored orders a restored instance for the tenant. The order
// carries an idempotency key derived from what is ordered, so a retry (ours
// after a lost answer, or the caller's with the same name) gets the same
// instance instead of a second one. Errors: backup.ErrNotFound when
// provisioning does not know the source or backup; a *svcclient.StatusError
// for other refusals.
func (c *Client) CreateRestored(ctx context.Context, tenant, name, planID, sourceID, backupID string) (string, error) {
	req := createRequest{Name: name, PlanID: planID, RestoreFrom: restoreFrom{InstanceID: sourceID, BackupID: backupID}}
	h := http.Header{idempotency.Header: {CreateKey(tenant, name, planID, sourceID, backupID)}}
	var ans accepted
	err := retry.Do(ctx, retry.Policy{Initial: 200 * time.Millisecond, Max: 2 * time.Second, MaxTries: createTries},
		func(ctx context.Context) error {
			err := c.svc.PostJSON(ctx, TenantIdentity(tenant), PublicInstancesPath, req, h, &ans)
			if err == nil || transient(err) {
				return err
			}
			return retry.Permanent(err)
		})
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		err = fmt.Errorf("%w: %w", backup.ErrNotFound, err)
	}
	if err != nil {
		return "", fmt.Errorf("provclient: order %s restored from %s backup %s: %w", name, sourceID, backupID, err)
	}
	id := ans.Instance.ID
	if id == "" {
		id = ans.ID
	}
	if id == "" {
		return "", fmt.Errorf("provclient: order %s: the answer names no instance", name)
	}
	return id, nil
}

// CreateKey is the idempotency key of an order: the same order gives the
// same key.
func CreateKey(tenant, name, planID, sourceID, backupID string) string {
	sum := sha256.Sum256([]byte(tenant + "\n" + name + "\n" + planID + "\n" + sourceID + "\n" + backupID))
	return "backup-restore-" + hex.EncodeToString(sum[:16])
}

// transient reports an error a retry may cure: no answer or a 5xx.
func transient(err error) bool {
	if errors.Is(err, svcclient.ErrUnavailable) {
		return true
	}
	se, ok := svcclient.AsStatus(err)
	return ok && se.Status >= 500
}

// Delete deletes the tenant's instance (idempotent: 404 and 410 are
// success).
func (c *Client) Delete(ctx context.Context, tenant, id string) error {
	_, _, err := c.svc.Do(ctx, TenantIdentity(tenant), http.MethodDelete, PublicInstancesPath+"/"+url.PathEscape(id), nil, nil)
	if se, ok := svcclient.AsStatus(err); ok && (se.Status == http.StatusNotFound || se.Status == http.StatusGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("provclient: delete instance %s: %w", id, err)
	}
	return nil
}

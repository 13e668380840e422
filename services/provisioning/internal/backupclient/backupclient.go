// Package backupclient is provisioning's client of the backup service's
// internal restore jobs: start one for a new instance (POST
// /internal/v1/restores), follow it (GET /internal/v1/restores/{id}) and
// release its seed (POST /internal/v1/restores/{id}/done), signed as
// service:provisioning for the tenant. It maps the answers to provisioning's
// errors; it does not retry.
package backupclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Defaults of Config.
const (
	DefaultTimeout = 10 * time.Second
)

// Subject is the identity provisioning signs its calls to the backup
// service with; the backup service answers its restore routes to it only.
const Subject = "service:provisioning"

// RestoresPath is the backup service's restore jobs.
const RestoresPath = "/internal/v1/restores"

// Errors callers branch on.
var (
	// ErrNotFound: the source instance, the backup or the job is unknown
	// to the tenant (404).
	ErrNotFound = port.ErrNotFound
	// ErrUnavailable: the backup service could not be asked or gave no
	// usable answer.
	ErrUnavailable = errors.New("backup service unavailable")
)

// RejectedError is the backup service's 422: the target cannot be
// restored (no backup before it, outside the restore window, invalid, or
// another engine). Detail is the backup service's own explanation.
type RejectedError struct{ Detail string }

func (e *RejectedError) Error() string { return "restore refused: " + e.Detail }

// Target is what a restore aims at: exactly one member is set.
type Target struct {
	BackupID    string    `json:"backup_id,omitempty"`
	PointInTime time.Time `json:"point_in_time,omitzero"`
	GTID        string    `json:"gtid,omitempty"`
}

// StartRequest asks for a restore job making target instance TargetID
// from source instance SourceID.
type StartRequest struct {
	TenantID string `json:"tenant_id"`
	SourceID string `json:"source_instance_id"`
	TargetID string `json:"target_instance_id"`
	// Engine is the new instance's engine ("mysql" | "redis"); the backup
	// service refuses a source of another engine.
	Engine string `json:"engine"`
	Target Target `json:"target"`
}

// restoreJSON is the part of the backup service's restore job provisioning
// reads.
type restoreJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Phase  string `json:"phase"`
	Seed   string `json:"seed"`
	Error  string `json:"error"`
}

func (r restoreJSON) job() port.RestoreJob {
	return port.RestoreJob{ID: r.ID, Status: r.Status, Phase: r.Phase, Seed: r.Seed, Error: r.Error}
}

// Config configures a Client.
type Config struct {
	// BaseURL is the backup service's base URL (http://127.0.0.1:8091).
	BaseURL string
	// Secret is the internal secret; required.
	Secret []byte
	// Timeout bounds one request; DefaultTimeout when zero.
	Timeout time.Duration
	// HTTP is the transport client; a new one when nil.
	HTTP *http.Client
}

// Client calls the backup service.
type Client struct {
	svc *svcclient.Client
}

// maxBody bounds an answer.
const maxBody = 1 << 20

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceBackup, Secret: cfg.Secret, BaseURL: cfg.BaseURL,
		Timeout: cfg.Timeout, MaxBody: maxBody, HTTP: cfg.HTTP})
	if err != nil {
		return nil, fmt.Errorf("backup client: %w", err)
	}
	return &Client{svc: svc}, nil
}

// identity is the principal of a call for tenant.
func identity(tenant string) tenancy.Principal {
	return tenancy.Principal{Tenant: tenancy.ID(tenant), Role: tenancy.RolePlatformAdmin, Subject: Subject}
}

// Start starts a restore job and returns it. Errors wrap ErrNotFound (404),
// *RejectedError (422) or ErrUnavailable (no answer, or any other status).
func (c *Client) Start(ctx context.Context, r StartRequest) (port.RestoreJob, error) {
	body, err := c.post(ctx, r.TenantID, RestoresPath, r)
	if err != nil {
		return port.RestoreJob{}, err
	}
	var j restoreJSON
	if err := json.Unmarshal(body, &j); err != nil || j.ID == "" {
		return port.RestoreJob{}, fmt.Errorf("start restore of %s: %w: undecodable answer %.200s", r.TargetID, ErrUnavailable, body)
	}
	return j.job(), nil
}

// Job returns restore job id; ErrNotFound when the backup service does not
// know it.
func (c *Client) Job(ctx context.Context, tenant, id string) (port.RestoreJob, error) {
	var j restoreJSON
	err := c.svc.GetJSON(ctx, identity(tenant), RestoresPath+"/"+url.PathEscape(id), &j)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return port.RestoreJob{}, fmt.Errorf("restore job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return port.RestoreJob{}, fmt.Errorf("restore job %s: %w: %w", id, ErrUnavailable, err)
	}
	return j.job(), nil
}

// Done tells the backup service the job's seed was taken.
func (c *Client) Done(ctx context.Context, tenant, id string) error {
	_, err := c.post(ctx, tenant, RestoresPath+"/"+url.PathEscape(id)+"/done", struct{}{})
	return err
}

// post sends v as JSON to path signed for tenant and returns the body of a
// 2xx answer: 404 is ErrNotFound, 422 a *RejectedError with the problem's
// detail, anything else (or no answer) ErrUnavailable.
func (c *Client) post(ctx context.Context, tenant, path string, v any) ([]byte, error) {
	_, answer, err := c.svc.Do(ctx, identity(tenant), http.MethodPost, path, v, nil)
	se, isStatus := svcclient.AsStatus(err)
	switch {
	case err == nil:
		return answer, nil
	case isStatus && se.Status == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %w", ErrNotFound, se)
	case isStatus && se.Status == http.StatusUnprocessableEntity:
		return nil, &RejectedError{Detail: problemDetail(se.Body)}
	default:
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// problemDetail is the detail of a problem+json answer (its start when it
// is not one).
func problemDetail(body []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	if len(body) > 300 {
		body = body[:300]
	}
	return string(bytes.TrimSpace(body))
}

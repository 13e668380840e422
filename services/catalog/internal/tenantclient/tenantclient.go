// Package tenantclient asks the gateway, which owns tenants, whether a
// tenant exists, through its internal API (GET
// /internal/v1/tenants/{id}/quota, signed with the internal secret as a
// platform-admin service identity). The catalog asks before it binds a
// broker credential to a tenant. It neither caches nor retries: the answer
// decides one admin request, and a stale "exists" would defeat the check.
package tenantclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// ErrUnknownTenant: the gateway has no such tenant.
var ErrUnknownTenant = errors.New("tenant unknown to the gateway")

// ErrUnavailable: the gateway could not be asked or gave no usable answer.
var ErrUnavailable = errors.New("gateway unavailable")

// ProblemUnknownTenant is the problem type of the gateway's 404 for a tenant
// it does not know; a 404 without it (a gateway without the route, a wrong
// URL) is not taken as an answer.
const ProblemUnknownTenant = "https://canopy.dev/problems/unknown-tenant"

// Identity is the principal the client signs its requests as.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:catalog"}

// Config configures a Client.
type Config struct {
	// BaseURL returns the gateway's base URL (e.g. http://127.0.0.1:8080),
	// per request, so an address known only after start (the all-in-one
	// binary) can be supplied late; "" answers ErrUnavailable.
	BaseURL func() string
	// Secret is the internal secret shared with the gateway; required.
	Secret []byte
	// Timeout bounds one request; DefaultTimeout when zero.
	Timeout time.Duration
	// HTTP is the client; a new one when nil.
	HTTP *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Client asks the gateway about tenants.
type Client struct {
	cfg Config
	svc *svcclient.Client
}

// maxBody bounds the gateway's answer.
const maxBody = 64 << 10

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == nil {
		return nil, errors.New("tenant client: nil base URL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceGateway, Secret: cfg.Secret, BaseURLFunc: cfg.BaseURL,
		Timeout: cfg.Timeout, MaxBody: maxBody, HTTP: cfg.HTTP})
	if err != nil {
		return nil, fmt.Errorf("tenant client: %w", err)
	}
	return &Client{cfg: cfg, svc: svc}, nil
}

// Check returns nil when the gateway knows tenant; otherwise an error
// wrapping ErrUnknownTenant or ErrUnavailable.
func (c *Client) Check(ctx context.Context, tenant tenancy.ID) error {
	_, err := c.svc.Get(ctx, Identity, "/internal/v1/tenants/"+url.PathEscape(string(tenant))+"/quota")
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		if se.ProblemType() == ProblemUnknownTenant {
			return fmt.Errorf("check tenant %s: %w", tenant, ErrUnknownTenant)
		}
		return fmt.Errorf("check tenant %s: %w: gateway answered 404 without the unknown-tenant problem: %w", tenant, ErrUnavailable, err)
	}
	if err != nil {
		return fmt.Errorf("check tenant %s: %w: %w", tenant, ErrUnavailable, err)
	}
	return nil
}

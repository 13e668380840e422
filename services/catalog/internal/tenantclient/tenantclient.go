// Package tenantclient asks the gateway, which owns tenants, whether a
// tenant exists, through its internal API (GET
// /internal/v1/tenants/{id}/quota, signed with the internal secret as a
// platform-admin service identity). The catalog asks before it binds a
// broker credential to a tenant. It neither caches nor retries: the answer
// decides one admin request, and a stale "exists" would defeat the check.
package tenantclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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
	cfg    Config
	signer *tenancy.Signer
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == nil {
		return nil, errors.New("tenant client: nil base URL")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("tenant client: empty internal secret")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, signer: tenancy.NewSigner(cfg.Secret)}, nil
}

// Check returns nil when the gateway knows tenant; otherwise an error
// wrapping ErrUnknownTenant or ErrUnavailable.
func (c *Client) Check(ctx context.Context, tenant tenancy.ID) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("check tenant %s: %w: %s", tenant, ErrUnavailable, fmt.Sprintf(format, args...))
	}
	base := strings.TrimRight(c.cfg.BaseURL(), "/")
	if u, err := url.Parse(base); base == "" || err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fail("no usable gateway URL %q", base)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/internal/v1/tenants/"+url.PathEscape(string(tenant))+"/quota", nil)
	if err != nil {
		return fail("%v", err)
	}
	req.Header.Set("Accept", "application/json")
	c.sign(req)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fail("read answer: %v", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		var p struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(body, &p) == nil && p.Type == ProblemUnknownTenant {
			return fmt.Errorf("check tenant %s: %w", tenant, ErrUnknownTenant)
		}
		return fail("gateway answered 404 without the unknown-tenant problem: %s", strings.TrimSpace(string(body)))
	default:
		return fail("gateway answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
}

// sign is the one place the client signs a request's identity.
func (c *Client) sign(req *http.Request) {
	c.signer.SignRequest(req, nil, tenancy.AudienceGateway, Identity)
}

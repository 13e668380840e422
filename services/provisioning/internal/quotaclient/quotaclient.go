// Package quotaclient reads tenants' quotas from the gateway, which stores
// them (GET /internal/v1/tenants/{id}/quota, signed with the internal secret
// as a platform-admin service identity), and caches each one briefly. It only
// reads: the order is admitted or refused against the quota by the saga,
// under the tenant lock.
package quotaclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Defaults of Config.
const (
	DefaultTimeout = 2 * time.Second
	DefaultTTL     = 10 * time.Second
)

// ErrUnavailable: the gateway could not be asked or gave no usable answer.
// Callers fail closed on it (the order is refused, to be retried).
var ErrUnavailable = errors.New("quota service unavailable")

// ErrUnknownTenant: the gateway has no such tenant (404).
var ErrUnknownTenant = errors.New("tenant unknown to the gateway")

// ProblemUnknownTenant is the problem type of the gateway's 404 for a tenant
// it does not know.
const ProblemUnknownTenant = "https://canopy.dev/problems/unknown-tenant"

// Identity is the principal the client signs its requests as.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:provisioning"}

// maxEntries bounds the cache; it is cleared when it grows past this.
const maxEntries = 100_000

// Config configures a Client.
type Config struct {
	// BaseURL returns the gateway's base URL (e.g. http://127.0.0.1:8080).
	// It is called per request, so an address known only after start (the
	// all-in-one binary) can be supplied late; "" answers ErrUnavailable.
	BaseURL func() string
	// Secret is the internal secret shared with the gateway; required.
	Secret []byte
	// Timeout bounds one request; DefaultTimeout when zero.
	Timeout time.Duration
	// TTL is how long an answer is reused; DefaultTTL when zero.
	TTL time.Duration
	// HTTP is the client; a new one when nil.
	HTTP *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Client reads quotas from the gateway.
type Client struct {
	cfg Config
	svc *svcclient.Client

	mu    sync.Mutex
	cache map[string]entry
}

type entry struct {
	quota   tenancy.Quota
	unknown bool // the gateway answered 404
	expires time.Time
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == nil {
		return nil, errors.New("quota client: nil base URL")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("quota client: empty internal secret")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceGateway, Secret: cfg.Secret, BaseURLFunc: cfg.BaseURL,
		Timeout: cfg.Timeout, MaxBody: maxBody, HTTP: cfg.HTTP})
	if err != nil {
		return nil, fmt.Errorf("quota client: %w", err)
	}
	return &Client{cfg: cfg, svc: svc, cache: map[string]entry{}}, nil
}

// Quota returns tenant's quota as stored in the gateway, from the cache when
// it is younger than the TTL. Errors wrap ErrUnknownTenant or ErrUnavailable;
// failures are not cached.
func (c *Client) Quota(ctx context.Context, tenant string) (tenancy.Quota, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	e, ok := c.cache[tenant]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		var err error
		if e, err = c.fetch(ctx, tenant); err != nil {
			return tenancy.Quota{}, err
		}
		e.expires = now.Add(c.cfg.TTL)
		c.mu.Lock()
		if len(c.cache) >= maxEntries {
			clear(c.cache)
		}
		c.cache[tenant] = e
		c.mu.Unlock()
	}
	if e.unknown {
		return tenancy.Quota{}, fmt.Errorf("quota of %s: %w", tenant, ErrUnknownTenant)
	}
	return e.quota, nil
}

// quotaJSON is the gateway's quota; every member is required.
type quotaJSON struct {
	MaxInstances *int64   `json:"max_instances"`
	MaxVCPU      *float64 `json:"max_vcpu"`
	MaxMemoryMB  *int64   `json:"max_memory_mb"`
	MaxStorageGB *int64   `json:"max_storage_gb"`
}

// maxBody bounds the gateway's answer.
const maxBody = 64 << 10

func (c *Client) fetch(ctx context.Context, tenant string) (entry, error) {
	fail := func(format string, args ...any) (entry, error) {
		return entry{}, fmt.Errorf("quota of %s: %w: %s", tenant, ErrUnavailable, fmt.Sprintf(format, args...))
	}
	body, err := c.svc.Get(ctx, Identity, "/internal/v1/tenants/"+url.PathEscape(tenant)+"/quota")
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		// Only the gateway's own "unknown tenant" answer counts: a 404 of a
		// gateway without the route (or of something else) must not read as
		// "no quota known" and let orders through.
		if se.ProblemType() == ProblemUnknownTenant {
			return entry{unknown: true}, nil
		}
		return fail("gateway answered 404 without the unknown-tenant problem: %v", err)
	}
	if err != nil {
		return fail("%v", err)
	}
	var j quotaJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return fail("decode answer: %v", err)
	}
	if j.MaxInstances == nil || j.MaxVCPU == nil || j.MaxMemoryMB == nil || j.MaxStorageGB == nil {
		return fail("incomplete answer: %s", body)
	}
	q := tenancy.Quota{MaxInstances: *j.MaxInstances, MaxVCPU: *j.MaxVCPU, MaxMemoryMB: *j.MaxMemoryMB, MaxStorageGB: *j.MaxStorageGB}
	if err := q.Validate(); err != nil {
		return fail("invalid quota: %v", err)
	}
	return entry{quota: q}, nil
}

// Package engineclient asks provisioning which engine builds its driver can
// run (GET /internal/v1/engines, signed with the internal secret as the
// catalog's service identity), so the catalog offers only versions some
// host runs. Answers are cached for a short TTL. When provisioning cannot
// answer, the last list it gave is served (a build list changes only when
// binaries are installed); before it ever answered, or when its driver does
// not report builds, the caller is told the builds are unknown and lists
// versions unfiltered — provisioning still refuses an order for a version
// no host runs. Both cases are logged once per outage, not per request.
package engineclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

// Path is provisioning's internal engines view.
const Path = "/internal/v1/engines"

// Defaults of Config.
const (
	DefaultTTL        = 15 * time.Second
	DefaultRetryAfter = 5 * time.Second
	DefaultTimeout    = 2 * time.Second
)

// Identity is the principal the client signs its requests as.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:catalog"}

// Config configures a Client.
type Config struct {
	// BaseURL returns provisioning's base URL per request (the all-in-one
	// binary starts provisioning after the catalog); "" counts as
	// unreachable.
	BaseURL func() string
	// Secret is the internal secret; required.
	Secret []byte
	// TTL is how long an answer is used before it is asked again;
	// DefaultTTL when zero.
	TTL time.Duration
	// RetryAfter is how long after a failed ask the next one waits, so a
	// provisioning that is down costs one timeout per RetryAfter, not one per
	// request; DefaultRetryAfter when zero.
	RetryAfter time.Duration
	// Timeout bounds one ask; DefaultTimeout when zero.
	Timeout time.Duration
	// HTTP is the client; a new one when nil.
	HTTP *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives the outage and change lines; required.
	Logger *slog.Logger
}

// Client is a cached view of what provisioning can run. It is safe for
// concurrent use; one ask is in flight at a time and the others wait for it.
type Client struct {
	cfg Config
	svc *svcclient.Client

	mu sync.Mutex
	// builds is the last list provisioning reported; known once it did.
	builds []plan.Build
	known  bool
	// askedAt is when the cached answer was received; failedAt when the
	// last ask failed (zero after a success).
	askedAt, failedAt time.Time
	// warned is set once an outage has been logged, until an ask succeeds.
	warned bool
}

// New returns a client; it does no I/O.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == nil {
		return nil, errors.New("engine client: nil base URL")
	}
	if cfg.Logger == nil {
		return nil, errors.New("engine client: nil logger")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: cfg.Secret, BaseURLFunc: cfg.BaseURL,
		Timeout: cfg.Timeout, MaxBody: 64 << 10, HTTP: cfg.HTTP})
	if err != nil {
		return nil, fmt.Errorf("engine client: %w", err)
	}
	return &Client{cfg: cfg, svc: svc}, nil
}

// answer is provisioning's engines view.
type answer struct {
	Reported *bool `json:"reported"`
	Items    []struct {
		Engine string `json:"engine"`
		Series string `json:"series"`
		Label  string `json:"label"`
	} `json:"items"`
}

// Builds returns the builds some host can run and true, or false when
// nobody has said yet (callers then list versions unfiltered). It asks
// provisioning when the cached answer is older than the TTL, unless the
// last ask failed less than RetryAfter ago.
func (c *Client) Builds(ctx context.Context) ([]plan.Build, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	fresh := !c.askedAt.IsZero() && now.Sub(c.askedAt) < c.cfg.TTL
	backingOff := !c.failedAt.IsZero() && now.Sub(c.failedAt) < c.cfg.RetryAfter
	if fresh || backingOff {
		return c.builds, c.known
	}
	builds, known, err := c.ask(ctx)
	if err != nil {
		c.failedAt = c.cfg.Now()
		if !c.warned {
			c.warned = true
			if c.known {
				c.cfg.Logger.WarnContext(ctx, "provisioning does not answer which engine builds run; the catalog lists versions by the last known list until it does",
					"builds", labels(c.builds), "err", err)
			} else {
				c.cfg.Logger.WarnContext(ctx, "provisioning does not answer which engine builds run and none is known yet; the catalog lists plan versions unfiltered (orders for versions no host runs are still refused by provisioning)",
					"err", err)
			}
		}
		return c.builds, c.known
	}
	if c.askedAt.IsZero() || c.warned || known != c.known || !slices.Equal(builds, c.builds) {
		if known {
			c.cfg.Logger.InfoContext(ctx, "engine builds provisioning runs; the catalog offers their versions", "builds", labels(builds))
		} else {
			c.cfg.Logger.InfoContext(ctx, "provisioning's driver does not report its engine builds; the catalog lists plan versions unfiltered")
		}
	}
	c.builds, c.known, c.askedAt, c.failedAt, c.warned = builds, known, c.cfg.Now(), time.Time{}, false
	return c.builds, c.known
}

// ask gets the engines view once.
func (c *Client) ask(ctx context.Context) ([]plan.Build, bool, error) {
	var a answer
	if err := c.svc.GetJSON(ctx, Identity, Path, &a); err != nil {
		return nil, false, err
	}
	if a.Reported == nil {
		return nil, false, fmt.Errorf("GET %s: the answer does not say whether the driver reports its builds", Path)
	}
	if !*a.Reported {
		return nil, false, nil
	}
	builds := make([]plan.Build, 0, len(a.Items))
	for _, it := range a.Items {
		builds = append(builds, plan.Build{Engine: plan.Engine(it.Engine), Series: it.Series, Label: it.Label})
	}
	return builds, true, nil
}

func labels(bs []plan.Build) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Label)
	}
	return out
}

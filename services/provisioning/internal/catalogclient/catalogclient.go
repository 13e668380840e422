// Package catalogclient fetches plans from the catalog service over HTTP
// (GET /api/v1/catalog/plans/{id}), signing the caller's identity with the
// internal secret like the gateway does. It is a thin adapter: it does not
// cache plans or validate orders.
package catalogclient

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

// ErrNotFound: the catalog has no such plan.
var ErrNotFound = errors.New("plan not found")

// Plan is a catalog plan as provisioning needs it.
type Plan struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	Engine           string          `json:"engine"`
	ServiceID        string          `json:"service_id"`
	Versions         []string        `json:"versions"`
	DefaultVersion   string          `json:"default_version"`
	DeploymentMode   string          `json:"deployment_mode"`
	Nodes            Nodes           `json:"nodes"`
	Resources        Resources       `json:"resources"`
	ReplicationMode  string          `json:"replication_mode"`
	ParametersSchema json.RawMessage `json:"parameters_schema"`
	State            string          `json:"state"`
	Orderable        bool            `json:"orderable"`
}

// Nodes is a plan's topology.
type Nodes struct {
	Count  int         `json:"count"`
	Groups []NodeGroup `json:"groups"`
}

// NodeGroup is count nodes of one role.
type NodeGroup struct {
	Role       string `json:"role"`
	RegionRole string `json:"region_role"`
	Count      int    `json:"count"`
}

// Resources are one node's size.
type Resources struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

// Client calls the catalog.
type Client struct {
	base   string
	signer *tenancy.Signer
	http   *http.Client
}

// New returns a client for the catalog at base (e.g. http://127.0.0.1:8082).
func New(base string, secret []byte, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("catalog client: bad base URL %q", base)
	}
	if len(secret) == 0 {
		return nil, errors.New("catalog client: empty internal secret")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimRight(base, "/"), signer: tenancy.NewSigner(secret), http: hc}, nil
}

// Plan fetches plan id on behalf of p.
func (c *Client) Plan(ctx context.Context, p tenancy.Principal, id string) (Plan, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/catalog/plans/"+url.PathEscape(id), nil)
	if err != nil {
		return Plan{}, fmt.Errorf("get plan %s: %w", id, err)
	}
	req.Header.Set("Accept", "application/json")
	c.signer.SignRequest(req, nil, tenancy.AudienceCatalog, p)
	resp, err := c.http.Do(req)
	if err != nil {
		return Plan{}, fmt.Errorf("get plan %s: %w", id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Plan{}, fmt.Errorf("get plan %s: %w", id, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Plan{}, fmt.Errorf("plan %s: %w", id, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return Plan{}, fmt.Errorf("get plan %s: catalog answered %d: %s", id, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var plan Plan
	if err := json.Unmarshal(body, &plan); err != nil {
		return Plan{}, fmt.Errorf("decode plan %s: %w", id, err)
	}
	return plan, nil
}

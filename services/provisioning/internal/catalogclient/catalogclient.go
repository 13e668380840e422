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
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
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
	svc *svcclient.Client
}

// New returns a client for the catalog at base (e.g. http://127.0.0.1:8082);
// hc is the transport client, a new one when nil.
func New(base string, secret []byte, hc *http.Client) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceCatalog, Secret: secret, BaseURL: base, Timeout: 10 * time.Second, HTTP: hc})
	if err != nil {
		return nil, fmt.Errorf("catalog client: %w", err)
	}
	return &Client{svc: svc}, nil
}

// Plan fetches plan id on behalf of p.
func (c *Client) Plan(ctx context.Context, p tenancy.Principal, id string) (Plan, error) {
	var plan Plan
	err := c.svc.GetJSON(ctx, p, "/api/v1/catalog/plans/"+url.PathEscape(id), &plan)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return Plan{}, fmt.Errorf("plan %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("get plan %s: %w", id, err)
	}
	return plan, nil
}

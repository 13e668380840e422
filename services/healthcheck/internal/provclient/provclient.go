// Package provclient reads what the health checker needs from
// provisioning's internal API: every instance with its nodes and the
// monitor account (never a tenant's credentials), for the resync on start
// and the credentials of instances learnt from events. Requests carry a
// platform-admin identity signed with the internal secret, like the
// gateway's. It is a client only; the endpoint's contract is in
// api/openapi/healthcheck.paths.yaml (x-provisioning-internal).
package provclient

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

// ListPath and InstancePath are the internal endpoints on provisioning.
const (
	ListPath     = "/internal/v1/monitoring/instances"
	InstancePath = "/internal/v1/monitoring/instances/"
)

// Node is one node of an instance.
type Node struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Address string `json:"address"`
	State   string `json:"state"`
}

// MonitorAccount is the monitor account of an instance: the credentials probes log in with.
type MonitorAccount struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Instance is an instance as the health checker sees it.
type Instance struct {
	InstanceID     string         `json:"instance_id"`
	TenantID       string         `json:"tenant_id"`
	Engine         string         `json:"engine"`
	DeploymentMode string         `json:"deployment_mode"`
	State          string         `json:"state"`
	SemiSync       bool           `json:"semi_sync"`
	Nodes          []Node         `json:"nodes"`
	Monitor        MonitorAccount `json:"monitor"`
}

// ErrNotFound is returned for an instance provisioning does not know.
var ErrNotFound = errors.New("instance not found at provisioning")

// Identity is who the health checker is to provisioning: the one identity
// provisioning serves monitor credentials to.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:healthcheck"}

// Client talks to provisioning.
type Client struct {
	svc *svcclient.Client
}

// maxBody bounds one answer: a page of 500 instances with their nodes.
const maxBody = 64 << 20

// New returns a client of provisioning at baseURL (http://127.0.0.1:8084).
func New(baseURL string, secret []byte, timeout time.Duration) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: secret, BaseURL: baseURL, Timeout: timeout, MaxBody: maxBody})
	if err != nil {
		return nil, fmt.Errorf("provclient: %w", err)
	}
	return &Client{svc: svc}, nil
}

func (c *Client) get(ctx context.Context, path string, dst any) error {
	err := c.svc.GetJSON(ctx, Identity, path, dst)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return fmt.Errorf("GET %s: %w", path, ErrNotFound)
	}
	return err
}

// List returns every instance, following cursors.
func (c *Client) List(ctx context.Context) ([]Instance, error) {
	return svcclient.ListAll[Instance](ctx, c.svc, Identity, ListPath, 500, "instances")
}

// Get returns one instance.
func (c *Client) Get(ctx context.Context, instanceID string) (Instance, error) {
	var in Instance
	err := c.get(ctx, InstancePath+url.PathEscape(instanceID), &in)
	return in, err
}

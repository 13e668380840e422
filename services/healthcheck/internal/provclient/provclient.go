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

type listResponse struct {
	Instances  []Instance `json:"instances"`
	NextCursor string     `json:"next_cursor"`
}

// ErrNotFound is returned for an instance provisioning does not know.
var ErrNotFound = errors.New("instance not found at provisioning")

// Identity is who the health checker is to provisioning: the one identity
// provisioning serves monitor credentials to.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:healthcheck"}

// Client talks to provisioning.
type Client struct {
	base   string
	signer *tenancy.Signer
	http   *http.Client
}

// New returns a client of provisioning at baseURL (http://127.0.0.1:8084).
func New(baseURL string, secret []byte, timeout time.Duration) (*Client, error) {
	if _, err := url.Parse(baseURL); err != nil || baseURL == "" {
		return nil, fmt.Errorf("provclient: base url %q: %v", baseURL, err)
	}
	if len(secret) == 0 {
		return nil, errors.New("provclient: empty internal secret")
	}
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), signer: tenancy.NewSigner(secret), http: &http.Client{Timeout: timeout}}, nil
}

func (c *Client) get(ctx context.Context, path string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	c.signer.SignRequest(req, nil, tenancy.AudienceProvisioning, Identity)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("GET %s: %w", path, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(dst); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// List returns every instance, following cursors.
func (c *Client) List(ctx context.Context) ([]Instance, error) {
	var all []Instance
	cursor := ""
	for {
		path := ListPath + "?limit=500"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page listResponse
		if err := c.get(ctx, path, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Instances...)
		if page.NextCursor == "" || page.NextCursor == cursor {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Get returns one instance.
func (c *Client) Get(ctx context.Context, instanceID string) (Instance, error) {
	var in Instance
	err := c.get(ctx, InstancePath+url.PathEscape(instanceID), &in)
	return in, err
}

// Package provview reads the router's view of the instances from
// provisioning's internal router view: every served instance with its
// endpoint ports, nodes and roles, and its bindings' password verifiers
// (never a password). Requests carry the platform-admin identity
// service:router, signed with the internal secret. It is a client only and
// maps the wire JSON to table.Instance at the edge.
package provview

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// ListPath and InstancePath are provisioning's internal router endpoints.
const (
	ListPath     = "/internal/v1/router/instances"
	InstancePath = "/internal/v1/router/instances/"
)

// Identity is who the router is to provisioning.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:router"}

// ErrNotFound: provisioning serves no such instance (deleted, or without
// router ports).
var ErrNotFound = errors.New("instance not served")

// Node is one node of an instance on the wire.
type Node struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Address string `json:"address"`
	State   string `json:"state"`
}

// Binding is a binding's account on the wire.
type Binding struct {
	Username       string `json:"username"`
	PasswordSHA256 string `json:"password_sha256"`
}

// Instance is an instance as provisioning's router view sends it.
type Instance struct {
	InstanceID    string `json:"instance_id"`
	TenantID      string `json:"tenant_id"`
	Name          string `json:"name"`
	Engine        string `json:"engine"`
	State         string `json:"state"`
	FailoverToken int64  `json:"failover_token"`
	Endpoints     struct {
		RWPort int `json:"rw_port"`
		ROPort int `json:"ro_port"`
	} `json:"endpoints"`
	Nodes    []Node    `json:"nodes"`
	Bindings []Binding `json:"bindings"`
}

// Table maps the wire instance to the router's model. A verifier that is
// not 64 hex digits is dropped: nobody can log in with it.
func (in Instance) Table() table.Instance {
	out := table.Instance{ID: in.InstanceID, Tenant: in.TenantID, Name: in.Name, Engine: table.Engine(in.Engine),
		State: in.State, RWPort: in.Endpoints.RWPort, ROPort: in.Endpoints.ROPort, FailoverToken: in.FailoverToken}
	for _, n := range in.Nodes {
		out.Nodes = append(out.Nodes, table.Node{ID: n.ID, Address: n.Address, Role: table.Role(n.Role)})
	}
	for _, b := range in.Bindings {
		var sum [32]byte
		if raw, err := hex.DecodeString(b.PasswordSHA256); err == nil && len(raw) == len(sum) {
			copy(sum[:], raw)
			out.Bindings = append(out.Bindings, table.Binding{Username: b.Username, PasswordSHA256: sum})
		}
	}
	return out
}

// Client talks to provisioning.
type Client struct {
	svc *svcclient.Client
}

// maxBody bounds one answer: a page of 500 instances with their nodes and
// bindings.
const maxBody = 64 << 20

// New returns a client of provisioning at baseURL (http://127.0.0.1:8084).
func New(baseURL string, secret []byte, timeout time.Duration) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: secret, BaseURL: baseURL,
		Timeout: timeout, MaxBody: maxBody})
	if err != nil {
		return nil, fmt.Errorf("provview: %w", err)
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

// List returns every served instance, following cursors.
func (c *Client) List(ctx context.Context) ([]table.Instance, error) {
	page, err := svcclient.ListAll[Instance](ctx, c.svc, Identity, ListPath, 500, "instances")
	if err != nil {
		return nil, fmt.Errorf("provview: list instances: %w", err)
	}
	all := make([]table.Instance, 0, len(page))
	for _, in := range page {
		all = append(all, in.Table())
	}
	return all, nil
}

// Get returns one instance (ErrNotFound when provisioning does not serve it).
func (c *Client) Get(ctx context.Context, instanceID string) (table.Instance, error) {
	var in Instance
	if err := c.get(ctx, InstancePath+url.PathEscape(instanceID), &in); err != nil {
		return table.Instance{}, fmt.Errorf("provview: instance %s: %w", instanceID, err)
	}
	return in.Table(), nil
}

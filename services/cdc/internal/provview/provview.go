// Package provview reads what the cdc service needs of an instance from
// provisioning's internal CDC view: its tenant, engine and state, its nodes
// with their roles, regions and health, and the credentials of the account
// the cdc service works with: Canopy's own canopy_cdc account on a MySQL
// instance (capture, and a sync job's writes), the admin account on a Redis
// instance (a sync job's cache target; streams refuse Redis by its Engine).
// Requests carry the platform-admin identity service:cdc, signed with the
// internal secret. It is a client only: it maps the wire JSON to Instance
// at the edge and decides nothing.
package provview

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

// InstancePath is provisioning's internal CDC endpoint of one instance.
const InstancePath = "/internal/v1/cdc/instances/"

// Identity is who the cdc service is to provisioning.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:cdc"}

// ErrNotFound: provisioning has no such instance (or, for Get, it belongs
// to another tenant).
var ErrNotFound = errors.New("instance not found")

// Node roles and region roles as provisioning names them.
const (
	RolePrimary   = "primary"
	RoleReplica   = "replica"
	RoleFenced    = "fenced"
	RegionPrimary = "primary"
	RegionDR      = "dr"
)

// Node is one node of an instance.
type Node struct {
	ID string
	// Address is host:port of the MariaDB server.
	Address string
	// Role is primary, replica or fenced.
	Role string
	// Region is the node's region; RegionRole says whether that region is
	// the instance's primary region or a DR region.
	Region     string
	RegionRole string
	// Healthy is provisioning's last word on the node's health.
	Healthy bool
}

// Credentials are an account's user name and password.
type Credentials struct {
	Username string
	Password string
}

// Instance is an instance as the cdc service sees it.
type Instance struct {
	ID     string
	Tenant string
	Name   string
	Engine string
	State  string
	Nodes  []Node
	// CDC is the account present on every node the cdc service connects
	// with: canopy_cdc for MySQL, the admin account for Redis.
	CDC Credentials
}

// Info is what the stream API needs to know of an instance: that it is
// the caller's, and whether CDC applies to it.
type Info struct {
	ID     string
	Tenant string
	Engine string
	State  string
}

// wireNode and wireInstance are provisioning's JSON.
type wireNode struct {
	ID         string `json:"id"`
	Address    string `json:"address"`
	Role       string `json:"role"`
	Region     string `json:"region"`
	RegionRole string `json:"region_role"`
	Healthy    bool   `json:"healthy"`
}

type wireInstance struct {
	InstanceID string     `json:"instance_id"`
	TenantID   string     `json:"tenant_id"`
	Name       string     `json:"name"`
	Engine     string     `json:"engine"`
	State      string     `json:"state"`
	Nodes      []wireNode `json:"nodes"`
	CDC        struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"cdc"`
}

func (w wireInstance) instance() Instance {
	out := Instance{ID: w.InstanceID, Tenant: w.TenantID, Name: w.Name, Engine: w.Engine, State: w.State,
		CDC: Credentials{Username: w.CDC.Username, Password: w.CDC.Password}, Nodes: make([]Node, 0, len(w.Nodes))}
	for _, n := range w.Nodes {
		out.Nodes = append(out.Nodes, Node{ID: n.ID, Address: n.Address, Role: n.Role, Region: n.Region,
			RegionRole: n.RegionRole, Healthy: n.Healthy})
	}
	return out
}

// Client talks to provisioning.
type Client struct {
	svc *svcclient.Client
}

// New returns a client of provisioning at baseURL (http://127.0.0.1:8084);
// timeout bounds one request (svcclient's default when zero).
func New(baseURL string, secret []byte, timeout time.Duration) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: secret, BaseURL: baseURL,
		Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("provview: %w", err)
	}
	return &Client{svc: svc}, nil
}

// NewFunc is New for a base URL known only after start (the all-in-one
// binary): baseURL is asked per request.
func NewFunc(baseURL func() string, secret []byte, timeout time.Duration) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: secret, BaseURLFunc: baseURL,
		Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("provview: %w", err)
	}
	return &Client{svc: svc}, nil
}

// Instance returns one instance with its nodes and its CDC account;
// ErrNotFound when provisioning has none of that id.
func (c *Client) Instance(ctx context.Context, id string) (Instance, error) {
	var w wireInstance
	path := InstancePath + url.PathEscape(id)
	err := c.svc.GetJSON(ctx, Identity, path, &w)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return Instance{}, fmt.Errorf("provview: instance %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("provview: instance %s: %w", id, err)
	}
	return w.instance(), nil
}

// Get returns the instance's Info when it belongs to tenant; an instance
// of another tenant is ErrNotFound, so the API does not reveal it exists.
func (c *Client) Get(ctx context.Context, tenant, id string) (Info, error) {
	in, err := c.Instance(ctx, id)
	if err != nil {
		return Info{}, err
	}
	// A platform admin (no tenant) may name any tenant's instance.
	if tenant != "" && in.Tenant != tenant {
		return Info{}, fmt.Errorf("provview: instance %s of tenant %s: %w", id, tenant, ErrNotFound)
	}
	return Info{ID: in.ID, Tenant: in.Tenant, Engine: in.Engine, State: in.State}, nil
}

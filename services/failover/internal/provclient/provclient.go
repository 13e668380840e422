// Package provclient reads what the failover service needs from
// provisioning's internal failover view (every instance with its nodes,
// their regions and promotion rules, and the admin and replication
// accounts) and injects drills' faults through provisioning's driver.
// Requests carry the platform-admin identity service:failover, signed with
// the internal secret. It is a client only and maps the wire JSON to
// topology.Instance at the edge.
package provclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// ListPath and InstancePath are provisioning's internal failover endpoints.
const (
	ListPath     = "/internal/v1/failover/instances"
	InstancePath = "/internal/v1/failover/instances/"
)

// Identity is who the failover service is to provisioning.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:failover"}

// Node is one node of an instance on the wire.
type Node struct {
	ID            string `json:"id"`
	Role          string `json:"role"`
	Address       string `json:"address"`
	Region        string `json:"region"`
	Zone          string `json:"zone"`
	State         string `json:"state"`
	PromotionRule string `json:"promotion_rule"`
}

// Instance is an instance as provisioning's failover view sends it.
type Instance struct {
	InstanceID     string               `json:"instance_id"`
	TenantID       string               `json:"tenant_id"`
	Engine         string               `json:"engine"`
	DeploymentMode string               `json:"deployment_mode"`
	State          string               `json:"state"`
	SemiSync       bool                 `json:"semi_sync"`
	Region         string               `json:"region"`
	Nodes          []Node               `json:"nodes"`
	Admin          topology.Credentials `json:"admin"`
	Replication    topology.Credentials `json:"replication"`
}

// Topology maps the wire instance to the failover model. A node without a
// promotion rule is neutral.
func (in Instance) Topology() topology.Instance {
	out := topology.Instance{ID: in.InstanceID, Tenant: in.TenantID, Engine: topology.Engine(in.Engine), Mode: in.DeploymentMode,
		Region: in.Region, SemiSync: in.SemiSync, Admin: in.Admin, Replication: in.Replication,
		Nodes: make([]topology.Node, 0, len(in.Nodes))}
	for _, n := range in.Nodes {
		rule := topology.PromotionRule(n.PromotionRule)
		if rule == "" {
			rule = topology.PromoteNeutral
		}
		out.Nodes = append(out.Nodes, topology.Node{ID: n.ID, Address: n.Address, Region: n.Region, Zone: n.Zone,
			Role: topology.Role(n.Role), Promotion: rule})
	}
	return out
}

// Client talks to provisioning.
type Client struct {
	svc *svcclient.Client
	// rebuild has room for a rebuild, which copies the primary's data
	// before provisioning answers.
	rebuild *svcclient.Client
}

var (
	_ topology.Faults    = (*Client)(nil)
	_ topology.Rebuilder = (*Client)(nil)
)

// RebuildTimeout bounds one rebuild request, as provisioning bounds the
// rebuild itself; the caller's context usually ends it first.
const RebuildTimeout = 10 * time.Minute

// maxBody bounds one answer: a page of 500 instances with their nodes.
const maxBody = 64 << 20

// New returns a client of provisioning at baseURL (http://127.0.0.1:8084,
// or the comma-separated URLs of its replicas).
func New(baseURL string, secret []byte, timeout time.Duration) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: secret, BaseURL: baseURL,
		Timeout: timeout, MaxBody: maxBody})
	if err != nil {
		return nil, fmt.Errorf("provclient: %w", err)
	}
	rebuild, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: secret, BaseURL: baseURL,
		Timeout: max(timeout, RebuildTimeout), MaxBody: 1 << 16})
	if err != nil {
		return nil, fmt.Errorf("provclient: %w", err)
	}
	return &Client{svc: svc, rebuild: rebuild}, nil
}

func (c *Client) get(ctx context.Context, path string, dst any) error {
	err := c.svc.GetJSON(ctx, Identity, path, dst)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return fmt.Errorf("GET %s: %w", path, topology.ErrNotFound)
	}
	return err
}

// List returns every instance, following cursors.
func (c *Client) List(ctx context.Context) ([]topology.Instance, error) {
	page, err := svcclient.ListAll[Instance](ctx, c.svc, Identity, ListPath, 500, "instances")
	if err != nil {
		return nil, fmt.Errorf("provclient: list instances: %w", err)
	}
	all := make([]topology.Instance, 0, len(page))
	for _, in := range page {
		all = append(all, in.Topology())
	}
	return all, nil
}

// Get returns one instance (topology.ErrNotFound when provisioning does not
// know it).
func (c *Client) Get(ctx context.Context, instanceID string) (topology.Instance, error) {
	var in Instance
	if err := c.get(ctx, InstancePath+url.PathEscape(instanceID), &in); err != nil {
		return topology.Instance{}, fmt.Errorf("provclient: instance %s: %w", instanceID, err)
	}
	return in.Topology(), nil
}

// Inject asks provisioning's driver to kill -9 or stop a node's process.
func (c *Client) Inject(ctx context.Context, instanceID, nodeID string, kind topology.Fault) error {
	path := InstancePath + url.PathEscape(instanceID) + "/nodes/" + url.PathEscape(nodeID) + "/fault"
	if err := c.post(ctx, c.svc, path, map[string]string{"kind": string(kind)}); err != nil {
		return fmt.Errorf("provclient: fault on %s/%s: %w", instanceID, nodeID, err)
	}
	return nil
}

// Rebuild asks provisioning's driver to rebuild a MariaDB node from the
// node at source (host:port) and returns once it is done: the node runs
// read-only, not replicating, at the copy's GTID position.
func (c *Client) Rebuild(ctx context.Context, instanceID, nodeID, source string) error {
	path := InstancePath + url.PathEscape(instanceID) + "/nodes/" + url.PathEscape(nodeID) + "/rebuild"
	if err := c.post(ctx, c.rebuild, path, map[string]string{"source": source}); err != nil {
		return fmt.Errorf("provclient: rebuild %s/%s from %s: %w", instanceID, nodeID, source, err)
	}
	return nil
}

// post sends a signed JSON command; any 2xx is success, 404 ErrNotFound.
// Without an Idempotency-Key it is not resent to another replica once one
// may have read it (svcclient): a fault or a rebuild must not run twice.
func (c *Client) post(ctx context.Context, sc *svcclient.Client, path string, v any) error {
	_, _, err := sc.Do(ctx, Identity, http.MethodPost, path, v, nil)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return fmt.Errorf("POST %s: %w", path, topology.ErrNotFound)
	}
	return err
}

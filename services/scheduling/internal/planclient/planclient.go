// Package planclient resolves a catalog plan id into the node shapes the
// scheduler places, by asking the catalog service over HTTP with a signed
// platform-admin identity. It is used by placement simulation only.
package planclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// Client reads plans from the catalog.
type Client struct {
	svc *svcclient.Client
}

// Identity is who scheduling is to the catalog.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:scheduling"}

// New returns a client for the catalog at baseURL (e.g. http://127.0.0.1:8082).
func New(baseURL string, secret []byte) (*Client, error) {
	svc, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceCatalog, Secret: secret, BaseURL: baseURL, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("planclient: %w", err)
	}
	return &Client{svc: svc}, nil
}

type planView struct {
	Engine         string `json:"engine"`
	DeploymentMode string `json:"deployment_mode"`
	Nodes          struct {
		Groups []struct {
			Role       string `json:"role"`
			RegionRole string `json:"region_role"`
			Count      int    `json:"count"`
		} `json:"groups"`
	} `json:"nodes"`
	Resources struct {
		VCPU      float64 `json:"vcpu"`
		MemoryMB  int64   `json:"memory_mb"`
		StorageGB int64   `json:"storage_gb"`
	} `json:"resources"`
}

// Resolve turns a catalog plan id into the plan's shape (httpapi.PlanResolver).
func (c *Client) Resolve(ctx context.Context, planID string) (placement.PlanShape, error) {
	var v planView
	err := c.svc.GetJSON(ctx, Identity, "/api/v1/catalog/plans/"+url.PathEscape(planID), &v)
	if se, ok := svcclient.AsStatus(err); ok && se.Status == http.StatusNotFound {
		return placement.PlanShape{}, fmt.Errorf("plan %q: %w", planID, placement.ErrUnknownPlan)
	}
	if err != nil {
		return placement.PlanShape{}, fmt.Errorf("read plan %s from catalog: %w", planID, err)
	}
	return Shape(v.Engine, v.DeploymentMode, v.Resources.VCPU, v.Resources.MemoryMB, v.Resources.StorageGB, groups(v))
}

// Group is a catalog node group.
type Group struct {
	Role, RegionRole string
	Count            int
}

func groups(v planView) []Group {
	out := make([]Group, 0, len(v.Nodes.Groups))
	for _, g := range v.Nodes.Groups {
		out = append(out, Group{Role: g.Role, RegionRole: g.RegionRole, Count: g.Count})
	}
	return out
}

// Shape expands catalog node groups into nodes: nodes of the "dr" region
// group become dr-replicas.
func Shape(engine, mode string, vcpu float64, memMB, storageGB int64, gs []Group) (placement.PlanShape, error) {
	res := inventory.Resources{MilliCPU: int64(vcpu*1000 + 0.5), MemoryMB: memMB, StorageGB: storageGB}
	shape := placement.PlanShape{Engine: engine, DeploymentMode: mode}
	for _, g := range gs {
		role := g.Role
		if g.RegionRole == "dr" {
			role = placement.RoleDRReplica
		}
		for i := 0; i < g.Count; i++ {
			shape.Nodes = append(shape.Nodes, placement.NodeSpec{Name: fmt.Sprintf("node-%d", len(shape.Nodes)), Role: role, Resources: res})
		}
	}
	if len(shape.Nodes) == 0 {
		return shape, errors.New("plan has no nodes")
	}
	return shape, nil
}

// Package planclient resolves a catalog plan id into the node shapes the
// scheduler places, by asking the catalog service over HTTP with a signed
// platform-admin identity. It is used by placement simulation only.
package planclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// Client reads plans from the catalog.
type Client struct {
	base   string
	signer *tenancy.Signer
	http   *http.Client
}

// New returns a client for the catalog at baseURL (e.g. http://127.0.0.1:8082).
func New(baseURL string, secret []byte) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("planclient: invalid catalog url %q", baseURL)
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), signer: tenancy.NewSigner(secret), http: &http.Client{Timeout: 5 * time.Second}}, nil
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/catalog/plans/"+url.PathEscape(planID), nil)
	if err != nil {
		return placement.PlanShape{}, err
	}
	c.signer.SignRequest(req, nil, tenancy.AudienceCatalog, tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:scheduling"})
	resp, err := c.http.Do(req)
	if err != nil {
		return placement.PlanShape{}, fmt.Errorf("read plan %s from catalog: %w", planID, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return placement.PlanShape{}, fmt.Errorf("plan %q: %w", planID, placement.ErrUnknownPlan)
	case resp.StatusCode != http.StatusOK:
		return placement.PlanShape{}, fmt.Errorf("read plan %s from catalog: status %d", planID, resp.StatusCode)
	}
	var v planView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return placement.PlanShape{}, fmt.Errorf("decode plan %s: %w", planID, err)
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

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// FailoverPath is the internal view the failover service reads instances
// from: every node with its role, placement and promotion rule, and the
// admin and replication accounts it reconfigures nodes with. Like the
// monitoring view the gateway does not route it, and it answers only
// FailoverReader's signed identity; any other caller gets 404.
const FailoverPath = "/internal/v1/failover/instances"

// FailoverReader is the only identity served the failover view and allowed
// to inject faults.
const FailoverReader = "service:failover"

// Restarter is the alerting service's identity: its restart-node
// remediation may stop a node gracefully (the supervisor starts it again),
// nothing else of the failover view.
const Restarter = "service:alerting"

// Faults injects a drill's fault on a node's process behind the driver's
// back (the local driver's supervisor then restarts it). Errors wrap
// driver.ErrNotFound or driver.ErrNotRunning.
type Faults interface {
	// Kill sends SIGKILL to the node's process.
	Kill(ctx context.Context, nodeID string) error
	// Terminate stops the node's process gracefully.
	Terminate(ctx context.Context, nodeID string) error
}

// WithFaults lets the failover service inject faults through f (the local
// driver); without it the fault route answers 501. When f is also a
// Rebuilder, the rebuild route uses it (else it answers 501).
func (h *Handler) WithFaults(f Faults) { h.faults = f }

// Rebuilder replaces a MariaDB node's data with a consistent copy of
// source's and starts it again read-only at the copy's GTID position (the
// local driver). Errors wrap driver.ErrNotFound, driver.ErrUnsupported (not
// a MariaDB node) or a *driver.SpecError.
type Rebuilder interface {
	Rebuild(ctx context.Context, nodeID string, source driver.Endpoint) error
}

// RebuildTimeout bounds a rebuild: a copy of a development-sized dataset
// and a restart of the node.
const RebuildTimeout = 10 * time.Minute

type failoverNode struct {
	ID            string `json:"id"`
	Role          string `json:"role"`
	Address       string `json:"address"`
	Region        string `json:"region"`
	Zone          string `json:"zone"`
	State         string `json:"state"`
	Fenced        bool   `json:"fenced"`
	PromotionRule string `json:"promotion_rule"`
}

type failoverInstance struct {
	InstanceID     string               `json:"instance_id"`
	TenantID       string               `json:"tenant_id"`
	Engine         string               `json:"engine"`
	DeploymentMode string               `json:"deployment_mode"`
	State          string               `json:"state"`
	SemiSync       bool                 `json:"semi_sync"`
	Region         string               `json:"region"`
	Nodes          []failoverNode       `json:"nodes"`
	Admin          instance.Credentials `json:"admin"`
	Replication    instance.Credentials `json:"replication"`
}

func toFailover(in *instance.Instance) failoverInstance {
	f := failoverInstance{
		InstanceID: in.ID, TenantID: in.Tenant, Engine: in.Plan.Engine, DeploymentMode: in.Plan.DeploymentMode,
		State: string(in.State), SemiSync: in.Plan.SemiSync(), Region: primaryRegion(in),
		Admin: in.Accounts.Admin, Replication: in.Accounts.Replication, Nodes: []failoverNode{},
	}
	for _, n := range in.Nodes {
		if n.Address == "" {
			continue
		}
		// A fenced former primary is a replica that must not serve; the
		// failover service knows it as fenced until it rejoins.
		role := string(n.Role)
		if n.Fenced {
			role = instance.FailoverFenced
		}
		f.Nodes = append(f.Nodes, failoverNode{ID: n.ID, Role: role, Address: n.Address, Region: n.Region, Zone: n.AZ,
			State: string(n.State), Fenced: n.Fenced, PromotionRule: n.PromotionRule()})
	}
	return f
}

// primaryRegion is the instance's primary region: the ordered region, else
// the region of the nodes placed in the primary region.
func primaryRegion(in *instance.Instance) string {
	if in.Region != "" {
		return in.Region
	}
	for _, n := range in.Nodes {
		if n.RegionRole != instance.RegionDR && n.Region != "" {
			return n.Region
		}
	}
	return ""
}

func (h *Handler) listFailover(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, FailoverReader) {
		return
	}
	// The instances whose nodes are meant to run: the monitoring view's.
	writeMonitoredPage(h, w, r, "list failover instances", toFailover)
}

// failoverInstanceOf loads the path's instance for the failover view; it
// writes the problem and returns nil when there is none.
func (h *Handler) failoverInstanceOf(w http.ResponseWriter, r *http.Request) *instance.Instance {
	in, err := h.repo.GetAnyTenant(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || (err == nil && in.State == instance.StateDeleted) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such instance"))
		return nil
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "get failover instance", "err", err)
		httpx.WriteError(w, r, err)
		return nil
	}
	return in
}

func (h *Handler) getFailover(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, FailoverReader) {
		return
	}
	if in := h.failoverInstanceOf(w, r); in != nil {
		httpx.WriteJSON(w, http.StatusOK, toFailover(in))
	}
}

// injectFault kills (SIGKILL) or stops (SIGTERM) a node's process for a
// drill, without recording a stop: the driver's supervisor restarts it.
func (h *Handler) injectFault(w http.ResponseWriter, r *http.Request) {
	p, _ := tenancy.PrincipalFrom(r.Context())
	restarter := p.Role == tenancy.RolePlatformAdmin && p.Subject == Restarter
	if !restarter && !internalReader(w, r, FailoverReader) {
		return
	}
	var body struct {
		Kind string `json:"kind"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "body must be {\"kind\": \"kill\" | \"stop\"}"))
		return
	}
	if body.Kind != "kill" && body.Kind != "stop" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "kind must be kill or stop"))
		return
	}
	if restarter && body.Kind != "stop" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "the alerting service may only stop a node for a restart"))
		return
	}
	in := h.failoverInstanceOf(w, r)
	if in == nil {
		return
	}
	nodeID := chi.URLParam(r, "node")
	if _, ok := in.Node(nodeID); !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such node"))
		return
	}
	if h.faults == nil {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotImplemented, "the driver cannot inject faults"))
		return
	}
	inject := h.faults.Kill
	if body.Kind == "stop" {
		inject = h.faults.Terminate
	}
	err := inject(r.Context(), nodeID)
	switch {
	case errors.Is(err, driver.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such node"))
		return
	case errors.Is(err, driver.ErrNotRunning):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "node not running"))
		return
	case err != nil:
		h.log.ErrorContext(r.Context(), "inject fault", "tenant", in.Tenant, "instance", in.ID, "node", nodeID, "kind", body.Kind, "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	h.log.WarnContext(r.Context(), "fault injected for a drill", "tenant", in.Tenant, "instance", in.ID, "node", nodeID, "kind", body.Kind)
	w.WriteHeader(http.StatusNoContent)
}

// rebuildNode rebuilds a MariaDB node from the instance's node at source
// (the current primary), for the failover service: an old primary with
// errant transactions becomes a copy of the new primary, read-only and
// ready to be re-pointed. It answers once done (204). A Redis node is
// refused with 409: a Redis replica always resynchronises by itself.
func (h *Handler) rebuildNode(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, FailoverReader) {
		return
	}
	var body struct {
		Source string `json:"source"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "body must be {\"source\": \"host:port\"}"))
		return
	}
	source, err := endpoint(body.Source)
	if err != nil {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "source must be host:port"))
		return
	}
	in := h.failoverInstanceOf(w, r)
	if in == nil {
		return
	}
	nodeID := chi.URLParam(r, "node")
	n, ok := in.Node(nodeID)
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such node"))
		return
	}
	if in.Plan.Engine != instance.EngineMySQL {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "only MariaDB nodes are rebuilt; a Redis replica resynchronises by itself"))
		return
	}
	// Only another node of the same instance may be the source: the copy
	// becomes this node's data, accounts included.
	if !sourceOf(in, nodeID, body.Source) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, "source must be the address of another node of the instance"))
		return
	}
	rb, ok := h.faults.(Rebuilder)
	if !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotImplemented, "the driver cannot rebuild nodes"))
		return
	}
	log := h.log.With("tenant", in.Tenant, "instance", in.ID, "node", nodeID, "source", body.Source)
	ctx, cancel := context.WithTimeout(r.Context(), RebuildTimeout)
	defer cancel()
	began := time.Now()
	err = rb.Rebuild(ctx, n.ID, source)
	var spec *driver.SpecError
	switch {
	case errors.Is(err, driver.ErrNotFound):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such node"))
		return
	case errors.Is(err, driver.ErrUnsupported):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "the node cannot be rebuilt: "+err.Error()))
		return
	case errors.As(err, &spec):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadRequest, spec.Error()))
		return
	case err != nil:
		// The driver put the node back as it was; the caller may retry.
		log.ErrorContext(r.Context(), "rebuild node", "err", err)
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadGateway, "rebuild failed, the node keeps its data: "+err.Error()))
		return
	}
	log.WarnContext(r.Context(), "node rebuilt from the source for the failover service", "took", time.Since(began))
	w.WriteHeader(http.StatusNoContent)
}

// endpoint parses "host:port".
func endpoint(addr string) (driver.Endpoint, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return driver.Endpoint{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || host == "" || p <= 0 || p > 65535 {
		return driver.Endpoint{}, errors.New("bad host:port")
	}
	return driver.Endpoint{Host: host, Port: p}, nil
}

// sourceOf reports whether addr is the address of a node of in other than
// nodeID.
func sourceOf(in *instance.Instance, nodeID, addr string) bool {
	for _, n := range in.Nodes {
		if n.ID != nodeID && n.Address != "" && n.Address == addr {
			return true
		}
	}
	return false
}

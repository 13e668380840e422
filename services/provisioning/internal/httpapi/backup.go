package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// BackupPath is the internal view the backup service reads instances from:
// every node with its data directory and placement, and the admin account
// (mariadb-backup needs RELOAD, PROCESS, LOCK TABLES and BINLOG MONITOR,
// Redis snapshots BGSAVE). Like the other internal views the gateway does
// not route it, and it answers only BackupReader's signed identity; any
// other caller gets 404.
const BackupPath = "/internal/v1/backup/instances"

// BackupReader is the only identity served the backup view.
const BackupReader = "service:backup"

type backupNode struct {
	ID string `json:"id"`
	// Role is primary, replica, or fenced (a former primary a failover
	// replaced: never a backup source).
	Role    string `json:"role"`
	Address string `json:"address"`
	// DataDir is the engine's data directory on the node's host.
	DataDir string `json:"data_dir"`
	Host    string `json:"host"`
	Region  string `json:"region"`
	Zone    string `json:"zone"`
	Healthy bool   `json:"healthy"`
}

type backupInstance struct {
	InstanceID string               `json:"instance_id"`
	TenantID   string               `json:"tenant_id"`
	Name       string               `json:"name"`
	Engine     string               `json:"engine"`
	PlanID     string               `json:"plan_id"`
	State      string               `json:"state"`
	Nodes      []backupNode         `json:"nodes"`
	Admin      instance.Credentials `json:"admin"`
}

// toBackup shows an instance to the backup service: the nodes that exist
// (created and not destroyed) and the admin account.
func toBackup(in *instance.Instance) backupInstance {
	out := backupInstance{InstanceID: in.ID, TenantID: in.Tenant, Name: in.Name, Engine: in.Plan.Engine, PlanID: in.Plan.ID,
		State: string(in.State), Nodes: []backupNode{}, Admin: in.Accounts.Admin}
	for _, n := range in.Nodes {
		if n.Address == "" || n.State == instance.NodeDestroyed || n.State == instance.NodePending {
			continue
		}
		role := string(n.Role)
		if n.Fenced {
			role = instance.FailoverFenced
		}
		out.Nodes = append(out.Nodes, backupNode{ID: n.ID, Role: role, Address: n.Address, DataDir: driver.EngineDataDir(n.DataDir),
			Host: n.Host, Region: n.Region, Zone: n.AZ, Healthy: nodeHealthy(n.State)})
	}
	return out
}

// backupPage is how many instances one read of the repository takes while
// the whole list is assembled.
const backupPage = 500

// listBackup answers every instance that is not deleted and has nodes, in
// one answer: the backup service syncs its view of the fleet from it.
func (h *Handler) listBackup(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, BackupReader) {
		return
	}
	out := struct {
		Items []backupInstance `json:"items"`
	}{Items: []backupInstance{}}
	after := ""
	for {
		ins, err := h.repo.ListAllInstances(r.Context(), after, backupPage, false)
		if err != nil {
			h.log.ErrorContext(r.Context(), "list instances for the backup service", "err", err)
			httpx.WriteError(w, r, err)
			return
		}
		for _, in := range ins {
			if b := toBackup(in); len(b.Nodes) > 0 {
				out.Items = append(out.Items, b)
			}
		}
		if len(ins) < backupPage {
			break
		}
		after = ins[len(ins)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// getBackup answers one instance: 404 when unknown or deleted.
func (h *Handler) getBackup(w http.ResponseWriter, r *http.Request) {
	if !internalReader(w, r, BackupReader) {
		return
	}
	in, err := h.repo.GetAnyTenant(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, mysqlrepo.ErrNotFound) || (err == nil && in.State == instance.StateDeleted) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such instance"))
		return
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "get instance for the backup service", "err", err)
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toBackup(in))
}

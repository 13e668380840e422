// Package instance is provisioning's domain: the Instance aggregate (a
// tenant's database with its plan snapshot, nodes and endpoints), its
// Operations (create, update, delete) and the state machine with its
// invariants. It knows nothing of HTTP, Kafka, SQL or engine drivers; the
// saga and the adapters call its methods and persist what they return.
package instance

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// State is an instance's lifecycle state.
type State string

// Instance states. provisioning → ready | failed; ready → updating → ready;
// ready | failed | provisioning → deleting → deleted.
const (
	StateProvisioning State = "provisioning"
	StateReady        State = "ready"
	StateFailed       State = "failed"
	StateUpdating     State = "updating"
	StateDeleting     State = "deleting"
	StateDeleted      State = "deleted"
)

// Terminal reports whether no work is pending for an instance in s.
func (s State) Terminal() bool {
	return s == StateReady || s == StateFailed || s == StateDeleted
}

// Step is where the saga of an instance's current operation stands.
type Step string

// Saga steps, in order for a create; a delete runs destroying → released.
const (
	StepPlacing Step = "placing"
	// StepRestoring waits for the backup service's restore job to make the
	// seed a restored instance's nodes are created from (only instances
	// ordered with restore_from pass through it).
	StepRestoring   Step = "restoring"
	StepCreating    Step = "creating"
	StepReplicating Step = "replicating"
	StepVerifying   Step = "verifying"
	StepRollingBack Step = "rolling_back"
	StepApplying    Step = "applying"
	StepDestroying  Step = "destroying"
	StepDone        Step = "done"
)

// Steps lists the create steps in order, then the others.
func Steps() []Step {
	return []Step{StepPlacing, StepRestoring, StepCreating, StepReplicating, StepVerifying, StepRollingBack, StepApplying, StepDestroying, StepDone}
}

// Role is a node's replication role.
type Role string

// Node roles.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// RegionRole says whether a node lives in the primary or the DR region.
type RegionRole string

// Region roles.
const (
	RegionPrimary RegionRole = "primary"
	RegionDR      RegionRole = "dr"
)

// NodeState is what provisioning knows of a node.
type NodeState string

// Node states.
const (
	NodePending   NodeState = "pending"   // placed, not created yet
	NodeCreating  NodeState = "creating"  // the driver was asked to create it
	NodeCreated   NodeState = "created"   // driver created it, not started
	NodeRunning   NodeState = "running"   // started and answering
	NodeStopped   NodeState = "stopped"   // process not running (seen on adopt)
	NodeDestroyed NodeState = "destroyed" // data and process gone
)

// Engines.
const (
	EngineMySQL = "mysql"
	EngineRedis = "redis"
)

// Deployment modes.
const (
	ModeSingleAZ    = "single-az"
	ModeMultiAZ     = "multi-az"
	ModeMultiRegion = "multi-region"
)

// Replication modes.
const (
	ReplicationAsync    = "async"
	ReplicationSemiSync = "semi-sync"
)

// Resources are what one node of a plan gets.
type Resources struct {
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

// NodeTemplate is one node of a plan's topology.
type NodeTemplate struct {
	Role       Role       `json:"role"`
	RegionRole RegionRole `json:"region_role"`
}

// Plan is the snapshot of a catalog plan taken when the instance was ordered:
// later catalog changes do not change a running instance.
type Plan struct {
	ID              string         `json:"id"`
	Name            string         `json:"name"`
	ServiceID       string         `json:"service_id,omitempty"`
	Engine          string         `json:"engine"`
	DeploymentMode  string         `json:"deployment_mode"`
	ReplicationMode string         `json:"replication_mode"`
	Nodes           []NodeTemplate `json:"nodes"`
	Resources       Resources      `json:"resources"`
}

// SemiSync reports whether replicas acknowledge commits (MySQL multi-az).
func (p Plan) SemiSync() bool {
	return p.Engine == EngineMySQL && p.ReplicationMode == ReplicationSemiSync && len(p.Nodes) > 1
}

// Validate checks the snapshot is usable: a known engine, one primary.
func (p Plan) Validate() error {
	if p.ID == "" {
		return errors.New("plan: id required")
	}
	if p.Engine != EngineMySQL && p.Engine != EngineRedis {
		return fmt.Errorf("plan %s: unsupported engine %q", p.ID, p.Engine)
	}
	primaries := 0
	for _, n := range p.Nodes {
		switch n.Role {
		case RolePrimary:
			primaries++
		case RoleReplica:
		default:
			return fmt.Errorf("plan %s: unknown node role %q", p.ID, n.Role)
		}
	}
	if primaries != 1 {
		return fmt.Errorf("plan %s: %d primaries, want exactly 1", p.ID, primaries)
	}
	return nil
}

// Setting is a tuned value recorded on a node (kernel sysctls the node
// should get), with the reason for it.
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Why   string `json:"why,omitempty"`
}

// Node is one server of an instance.
type Node struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	RegionRole RegionRole `json:"region_role"`
	Region     string     `json:"region"`
	AZ         string     `json:"az"`
	Host       string     `json:"host"`
	// Port is the TCP port from the host's range.
	Port int `json:"port"`
	// Address is "host:port" where clients reach the node ("" until created).
	Address string    `json:"address"`
	State   NodeState `json:"state"`
	// PID and DataDir are what the local driver needs to re-adopt the node.
	PID     int    `json:"pid"`
	DataDir string `json:"data_dir"`
	// Settings are the engine settings the node was created with (tuning
	// profile plus parameters); kept so a restarted service re-adopts the
	// node with the very spec it was created from.
	Settings map[string]string `json:"settings,omitempty"`
	// Fenced marks a former primary that a failover replaced: its role is
	// replica, but it must not serve (nor be listed among the replica
	// endpoints) until the failover service reports it rejoined.
	Fenced bool `json:"fenced,omitempty"`
	// Promotion is the node's failover candidacy (prefer | neutral |
	// never); empty means neutral.
	Promotion string `json:"promotion_rule,omitempty"`
}

// PromotionRule returns the node's promotion rule, neutral unless set.
func (n Node) PromotionRule() string {
	if n.Promotion == "" {
		return PromoteNeutral
	}
	return n.Promotion
}

// Promotion rules of a node.
const (
	PromotePrefer  = "prefer"
	PromoteNeutral = "neutral"
	PromoteNever   = "never"
)

// Endpoints are where clients connect.
type Endpoints struct {
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
}

// Placement is the scheduler's decision for one node.
type Placement struct {
	Name    string
	Role    string
	Region  string
	AZ      string
	Host    string
	Address string
	Port    int
}

// Instance is the aggregate.
type Instance struct {
	ID      string
	Tenant  string
	Name    string
	Plan    Plan
	Version string
	// EngineVersion is the server build the nodes run, as the engine
	// itself reported it when the instance became ready
	// ("mariadb-10.11.19", "redis-7.0.15"); "" before.
	EngineVersion string `json:",omitempty"`
	Region        string
	Parameters    map[string]any
	State         State
	Step          Step
	// Reason says why the instance failed (or is rolling back).
	Reason string
	Nodes  []Node
	// Sysctls is the network tuning profile's kernel settings for every node.
	Sysctls []Setting
	// OperationID is the operation in progress, or the last one.
	OperationID string
	// OSBID is the Open Service Broker instance id, when ordered through OSB.
	OSBID string
	// Accounts are Canopy's accounts on the nodes (stored encrypted).
	Accounts  Accounts
	CreatedAt time.Time
	UpdatedAt time.Time
	// StepAt is when the current step began (for timeouts).
	StepAt time.Time
	// Failover is the last failover outcome applied to the nodes' roles.
	Failover AppliedFailover
	// Router are the instance's ports on the router (zero without one).
	Router RouterPorts
	// Restore is the restore the instance is made from; nil for an
	// instance ordered empty.
	Restore *Restore
}

// Restore records the backup service's restore job a new instance's data
// comes from: its id, the source instance and the target (exactly one of
// BackupID, PointInTime and GTID), then the seed once the job made it.
type Restore struct {
	ID               string    `json:"id"`
	SourceInstanceID string    `json:"source_instance_id"`
	BackupID         string    `json:"backup_id,omitempty"`
	PointInTime      time.Time `json:"point_in_time,omitzero"`
	GTID             string    `json:"gtid,omitempty"`
	// Database is the source's application database (MySQL): the restored
	// data holds the tenant's tables there, so the restored instance keeps
	// that name for its bindings whatever its own name.
	Database string `json:"database,omitempty"`
	// Seed is the directory holding the restored data, set when the job is
	// ready; every node is created from it.
	Seed string `json:"seed,omitempty"`
	// ReadyAt is when the seed was taken: the provision timeout counts
	// from it, not from the order, so a long restore does not eat it.
	ReadyAt time.Time `json:"ready_at,omitzero"`
}

// RestoreReady records the restore job's seed and moves the instance from
// restoring to creating.
func (in *Instance) RestoreReady(seed string, now time.Time) error {
	switch {
	case in.State != StateProvisioning || in.Step != StepRestoring:
		return fmt.Errorf("%w: restore ready in %s/%s", ErrInvalidTransition, in.State, in.Step)
	case in.Restore == nil:
		return fmt.Errorf("%w: restore ready without a restore", ErrInvalidTransition)
	case seed == "":
		return fmt.Errorf("%w: restore ready without a seed", ErrInvalid)
	}
	in.Restore.Seed, in.Restore.ReadyAt = seed, now
	in.setStep(StepCreating, now)
	return nil
}

// CreateStartedAt is when the provision timeout of a create began: the
// order, or for a restored instance the moment its seed was ready.
func (in *Instance) CreateStartedAt() time.Time {
	if in.Restore != nil && !in.Restore.ReadyAt.IsZero() {
		return in.Restore.ReadyAt
	}
	return in.CreatedAt
}

// AppliedFailover identifies the failover outcome last applied to an
// instance, so a redelivered or older one is ignored.
type AppliedFailover struct {
	// Token is the fencing token the recovery acted under; tokens only grow.
	Token int64
	// Recovery is the recovery's id (two recoveries may share a token when
	// one actor kept its lease).
	Recovery string
}

// Operation is an asynchronous change of an instance that clients poll.
type Operation struct {
	ID         string
	InstanceID string
	Tenant     string
	Type       OpType
	State      OpState
	Step       Step
	StartedAt  time.Time
	FinishedAt *time.Time
	Error      string
	// RequestedBy is the subject of the identity that asked for the
	// operation (an API key, a platform admin acting on a tenant's
	// instance); empty for operations the platform started itself.
	RequestedBy string
	// StepDetail says where the step stands when it waits on another
	// service (restoring: the restore job's phase); cleared on each step.
	StepDetail string
}

// OpType is what an operation does.
type OpType string

// Operation types.
const (
	OpCreate OpType = "create"
	OpUpdate OpType = "update"
	OpDelete OpType = "delete"
)

// OpState is an operation's progress.
type OpState string

// Operation states.
const (
	OpInProgress OpState = "in_progress"
	OpSucceeded  OpState = "succeeded"
	OpFailed     OpState = "failed"
)

// Errors callers branch on.
var (
	// ErrInvalidTransition: the instance's state does not allow the change.
	ErrInvalidTransition = errors.New("invalid state transition")
	// ErrBusy: another operation is in progress.
	ErrBusy = errors.New("an operation is in progress")
	// ErrInvalid: input violates a domain rule; wrapped by *ValidationError.
	ErrInvalid = errors.New("invalid instance")
)

// ValidationError names the offending field.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,61}[a-z0-9]$`)

// ValidateName checks an instance name: 2-63 lower-case letters, digits and
// inner hyphens, starting with a letter (DNS-label-like, so it can name
// Kubernetes objects later).
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return &ValidationError{Field: "name", Reason: "must be 2-63 lower-case letters, digits or inner '-', starting with a letter"}
	}
	return nil
}

// Order is what a tenant asked for.
type Order struct {
	ID          string
	OperationID string
	Tenant      string
	Name        string
	Plan        Plan
	Version     string
	Region      string
	Parameters  map[string]any
	Sysctls     []Setting
	OSBID       string
	Accounts    Accounts
	// Restore, when set, makes the instance from a backup: it waits in
	// restoring for the seed after placement.
	Restore *Restore
}

// New creates an instance in provisioning/placing with its create operation.
func New(o Order, now time.Time) (*Instance, Operation, error) {
	switch {
	case o.ID == "":
		return nil, Operation{}, &ValidationError{Field: "id", Reason: "required"}
	case o.OperationID == "":
		return nil, Operation{}, &ValidationError{Field: "operation_id", Reason: "required"}
	case o.Tenant == "":
		return nil, Operation{}, &ValidationError{Field: "tenant", Reason: "required"}
	case o.Version == "":
		return nil, Operation{}, &ValidationError{Field: "version", Reason: "required"}
	}
	if err := ValidateName(o.Name); err != nil {
		return nil, Operation{}, err
	}
	if err := o.Plan.Validate(); err != nil {
		return nil, Operation{}, &ValidationError{Field: "plan_id", Reason: err.Error()}
	}
	params := o.Parameters
	if params == nil {
		params = map[string]any{}
	}
	in := &Instance{
		ID: o.ID, Tenant: o.Tenant, Name: o.Name, Plan: o.Plan, Version: o.Version, Region: o.Region,
		Parameters: params, State: StateProvisioning, Step: StepPlacing, Sysctls: o.Sysctls,
		OperationID: o.OperationID, OSBID: o.OSBID, Accounts: o.Accounts, CreatedAt: now, UpdatedAt: now, StepAt: now,
	}
	if o.Restore != nil {
		r := *o.Restore
		in.Restore = &r
	}
	op := Operation{ID: o.OperationID, InstanceID: o.ID, Tenant: o.Tenant, Type: OpCreate, State: OpInProgress, Step: StepPlacing, StartedAt: now}
	return in, op, nil
}

// Database is the application database of a MySQL instance: its name with
// '-' turned into '_' (names are DNS-label-like, database names are not).
// A restored instance keeps its source's (Restore.Database).
func (in *Instance) Database() string {
	if in.Restore != nil && in.Restore.Database != "" {
		return in.Restore.Database
	}
	return strings.ReplaceAll(in.Name, "-", "_")
}

// NodeName returns the name of the i-th node of a plan ("n0", "n1", ...).
func NodeName(i int) string { return "n" + strconv.Itoa(i) }

// NodeID returns the globally unique node id of a node name.
func (in *Instance) NodeID(name string) string { return in.ID + "-" + name }

// Place records the scheduler's decision: one placement per plan node,
// matched by name. It moves the instance from placing to creating and is a
// no-op (returning false) when the instance is past placing, so a redelivered
// decision changes nothing.
func (in *Instance) Place(ps []Placement, now time.Time) (bool, error) {
	if in.State != StateProvisioning || in.Step != StepPlacing {
		return false, nil
	}
	if len(ps) != len(in.Plan.Nodes) {
		return false, fmt.Errorf("%w: placement has %d nodes, plan has %d", ErrInvalid, len(ps), len(in.Plan.Nodes))
	}
	byName := make(map[string]Placement, len(ps))
	for _, p := range ps {
		byName[p.Name] = p
	}
	nodes := make([]Node, 0, len(ps))
	ports := map[string]bool{}
	for i, t := range in.Plan.Nodes {
		name := NodeName(i)
		p, ok := byName[name]
		if !ok {
			return false, fmt.Errorf("%w: placement lacks node %s", ErrInvalid, name)
		}
		if p.Port < 0 || p.Port > 65535 {
			return false, fmt.Errorf("%w: node %s: port %d out of range", ErrInvalid, name, p.Port)
		}
		if p.Port != 0 {
			hp := p.Host + ":" + strconv.Itoa(p.Port)
			if ports[hp] {
				return false, fmt.Errorf("%w: node %s: port %d on %s given twice", ErrInvalid, name, p.Port, p.Host)
			}
			ports[hp] = true
		}
		nodes = append(nodes, Node{
			ID: in.NodeID(name), Name: name, Role: t.Role, RegionRole: t.RegionRole,
			Region: p.Region, AZ: p.AZ, Host: p.Host, Port: p.Port, State: NodePending,
		})
	}
	in.Nodes = nodes
	next := StepCreating
	if in.Restore != nil && in.Restore.Seed == "" {
		next = StepRestoring
	}
	in.setStep(next, now)
	return true, nil
}

// Node returns the node with id.
func (in *Instance) Node(id string) (*Node, bool) {
	for i := range in.Nodes {
		if in.Nodes[i].ID == id {
			return &in.Nodes[i], true
		}
	}
	return nil, false
}

// Primary returns the primary node.
func (in *Instance) Primary() (*Node, bool) {
	for i := range in.Nodes {
		if in.Nodes[i].Role == RolePrimary {
			return &in.Nodes[i], true
		}
	}
	return nil, false
}

// Replicas returns the replica nodes.
func (in *Instance) Replicas() []*Node {
	var out []*Node
	for i := range in.Nodes {
		if in.Nodes[i].Role == RoleReplica {
			out = append(out, &in.Nodes[i])
		}
	}
	return out
}

// NodeUpdate is what a driver reported for a node.
type NodeUpdate struct {
	State    NodeState
	Settings map[string]string
	Port     int
	Address  string
	PID      int
	DataDir  string
}

// RecordNode stores what the driver reported for a node.
func (in *Instance) RecordNode(id string, u NodeUpdate, now time.Time) error {
	n, ok := in.Node(id)
	if !ok {
		return fmt.Errorf("%w: no node %s", ErrInvalid, id)
	}
	if u.Address != "" {
		if _, _, err := net.SplitHostPort(u.Address); err != nil {
			return fmt.Errorf("%w: node %s: address %q: %v", ErrInvalid, id, u.Address, err)
		}
		n.Address = u.Address
	}
	if u.Port != 0 {
		n.Port = u.Port
	}
	if u.DataDir != "" {
		n.DataDir = u.DataDir
	}
	if u.Settings != nil {
		n.Settings = u.Settings
	}
	if u.State != "" {
		n.State = u.State
	}
	n.PID = u.PID
	in.UpdatedAt = now
	return nil
}

// Advance moves an in-progress create to the next step; it refuses to go
// backwards or to skip past verifying.
func (in *Instance) Advance(to Step, now time.Time) error {
	if in.State != StateProvisioning {
		return fmt.Errorf("%w: advance to %s in state %s", ErrInvalidTransition, to, in.State)
	}
	order := map[Step]int{StepPlacing: 0, StepRestoring: 1, StepCreating: 2, StepReplicating: 3, StepVerifying: 4}
	from, okFrom := order[in.Step]
	next, okTo := order[to]
	if !okFrom || !okTo || next < from {
		return fmt.Errorf("%w: step %s → %s", ErrInvalidTransition, in.Step, to)
	}
	if in.Step == StepRestoring || (to == StepRestoring && in.Restore == nil) || (next > order[StepRestoring] && in.Restore != nil && in.Restore.Seed == "") {
		// Leaving restoring takes a seed (RestoreReady); an instance
		// without a restore has nothing to wait for.
		return fmt.Errorf("%w: step %s → %s", ErrInvalidTransition, in.Step, to)
	}
	if to == StepReplicating || to == StepVerifying {
		for _, n := range in.Nodes {
			if n.State != NodeRunning {
				return fmt.Errorf("%w: step %s with node %s %s", ErrInvalidTransition, to, n.ID, n.State)
			}
		}
	}
	in.setStep(to, now)
	return nil
}

// MarkReady completes a create (or an update): every node runs.
func (in *Instance) MarkReady(now time.Time) error {
	switch {
	case in.State == StateProvisioning && in.Step == StepVerifying:
	case in.State == StateUpdating:
	default:
		return fmt.Errorf("%w: ready from %s/%s", ErrInvalidTransition, in.State, in.Step)
	}
	if _, ok := in.Primary(); !ok {
		return fmt.Errorf("%w: ready without a primary", ErrInvalidTransition)
	}
	for _, n := range in.Nodes {
		if n.State != NodeRunning || n.Address == "" {
			return fmt.Errorf("%w: ready with node %s %s", ErrInvalidTransition, n.ID, n.State)
		}
	}
	in.State = StateReady
	in.Reason = ""
	in.setStep(StepDone, now)
	return nil
}

// StartRollback records that a create failed with reason: the saga now
// destroys what it created. Repeating it keeps the first reason.
func (in *Instance) StartRollback(reason string, now time.Time) error {
	if in.State != StateProvisioning {
		return fmt.Errorf("%w: roll back in state %s", ErrInvalidTransition, in.State)
	}
	if in.Step == StepRollingBack {
		return nil
	}
	in.Reason = reason
	in.setStep(StepRollingBack, now)
	return nil
}

// MarkFailed ends a rolled-back create: no node remains.
func (in *Instance) MarkFailed(now time.Time) error {
	if in.State != StateProvisioning || in.Step != StepRollingBack {
		return fmt.Errorf("%w: failed from %s/%s", ErrInvalidTransition, in.State, in.Step)
	}
	for _, n := range in.Nodes {
		if n.State != NodeDestroyed && n.State != NodePending {
			return fmt.Errorf("%w: failed with node %s still %s", ErrInvalidTransition, n.ID, n.State)
		}
	}
	in.State = StateFailed
	in.setStep(StepDone, now)
	return nil
}

// Update changes the parameters of a ready instance; the saga applies them.
func (in *Instance) Update(params map[string]any, opID string, now time.Time) (Operation, error) {
	if in.State != StateReady {
		if !in.State.Terminal() {
			return Operation{}, fmt.Errorf("%w: %s", ErrBusy, in.State)
		}
		return Operation{}, fmt.Errorf("%w: update in state %s", ErrInvalidTransition, in.State)
	}
	if params == nil {
		params = map[string]any{}
	}
	in.Parameters = params
	in.State = StateUpdating
	in.OperationID = opID
	in.setStep(StepApplying, now)
	return Operation{ID: opID, InstanceID: in.ID, Tenant: in.Tenant, Type: OpUpdate, State: OpInProgress, Step: StepApplying, StartedAt: now}, nil
}

// Delete starts deprovisioning. It is allowed from every state but deleting
// and deleted (a create in progress is abandoned: the saga sees the state
// change and stops; the delete destroys whatever was created).
func (in *Instance) Delete(opID string, now time.Time) (Operation, error) {
	switch in.State {
	case StateDeleting, StateDeleted:
		return Operation{}, fmt.Errorf("%w: delete in state %s", ErrInvalidTransition, in.State)
	case StateUpdating:
		return Operation{}, fmt.Errorf("%w: %s", ErrBusy, in.State)
	}
	in.State = StateDeleting
	in.OperationID = opID
	in.setStep(StepDestroying, now)
	return Operation{ID: opID, InstanceID: in.ID, Tenant: in.Tenant, Type: OpDelete, State: OpInProgress, Step: StepDestroying, StartedAt: now}, nil
}

// MarkDeleted ends a delete: every node is destroyed.
func (in *Instance) MarkDeleted(now time.Time) error {
	if in.State != StateDeleting {
		return fmt.Errorf("%w: deleted from %s", ErrInvalidTransition, in.State)
	}
	for _, n := range in.Nodes {
		if n.State != NodeDestroyed && n.State != NodePending {
			return fmt.Errorf("%w: deleted with node %s still %s", ErrInvalidTransition, n.ID, n.State)
		}
	}
	in.State = StateDeleted
	in.setStep(StepDone, now)
	return nil
}

// Endpoints returns the primary's and the replicas' addresses.
func (in *Instance) Endpoints() Endpoints {
	e := Endpoints{Replicas: []string{}}
	if in.State == StateDeleted {
		return e
	}
	if p, ok := in.Primary(); ok {
		e.Primary = p.Address
	}
	for _, r := range in.Replicas() {
		if r.Address != "" && !r.Fenced {
			e.Replicas = append(e.Replicas, r.Address)
		}
	}
	return e
}

// Roles a failover outcome assigns.
const (
	FailoverPrimary = "primary"
	FailoverReplica = "replica"
	FailoverFenced  = "fenced"
)

// followsFailover reports whether the instance's nodes live and take
// failover outcomes: not while a create rolls back, nor once it failed or
// is being deleted (a delete destroys the nodes whatever their roles).
func (in *Instance) followsFailover() bool {
	switch in.State {
	case StateReady, StateUpdating:
		return true
	case StateProvisioning:
		return in.Step != StepRollingBack
	}
	return false
}

// ApplyFailover moves the nodes' roles to a completed failover's outcome:
// roles maps node ids to primary, replica or fenced (a fenced node is a
// replica with Fenced set). A node the outcome does not name keeps its
// role, except a former primary, which is fenced. It returns false, changing
// nothing, when the instance does not follow failovers (deleting, deleted,
// failed, rolling back) or the outcome is not newer than the last applied
// one: an older token, or the same token and recovery again. An outcome
// that names unknown nodes or not exactly one primary is ErrInvalid.
func (in *Instance) ApplyFailover(token int64, recovery string, roles map[string]string, now time.Time) (bool, error) {
	if token <= 0 || recovery == "" {
		return false, fmt.Errorf("%w: failover outcome without fencing token or recovery id", ErrInvalid)
	}
	primaries := 0
	for id, role := range roles {
		if _, ok := in.Node(id); !ok {
			return false, fmt.Errorf("%w: failover outcome names node %s, not a node of instance %s", ErrInvalid, id, in.ID)
		}
		switch role {
		case FailoverPrimary:
			primaries++
		case FailoverReplica, FailoverFenced:
		default:
			return false, fmt.Errorf("%w: failover outcome gives node %s the role %q", ErrInvalid, id, role)
		}
	}
	if primaries != 1 {
		return false, fmt.Errorf("%w: failover outcome has %d primaries, want 1", ErrInvalid, primaries)
	}
	if !in.followsFailover() {
		return false, nil
	}
	if token < in.Failover.Token || (token == in.Failover.Token && recovery == in.Failover.Recovery) {
		return false, nil
	}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		role, named := roles[n.ID]
		switch {
		case !named && n.Role == RolePrimary:
			n.Role, n.Fenced = RoleReplica, true
		case !named:
		case role == FailoverPrimary:
			n.Role, n.Fenced = RolePrimary, false
		case role == FailoverReplica:
			n.Role, n.Fenced = RoleReplica, false
		case role == FailoverFenced:
			n.Role, n.Fenced = RoleReplica, true
		}
	}
	in.Failover = AppliedFailover{Token: token, Recovery: recovery}
	in.UpdatedAt = now
	return true, nil
}

// Rejoined records that a fenced node replicates again, read-only, from
// primary (a node id; empty skips the check). It returns false, changing
// nothing, when the instance does not follow failovers, the node is
// unknown or already an unfenced replica, or the report is stale: the node
// is the primary by now, or primary is not the current primary.
func (in *Instance) Rejoined(nodeID, primary string, now time.Time) bool {
	if !in.followsFailover() {
		return false
	}
	n, ok := in.Node(nodeID)
	if !ok || n.Role == RolePrimary || (n.Role == RoleReplica && !n.Fenced) {
		return false
	}
	if p, ok := in.Primary(); primary != "" && (!ok || p.ID != primary) {
		return false
	}
	n.Role, n.Fenced = RoleReplica, false
	in.UpdatedAt = now
	return true
}

// Usage returns the resources the instance holds (for quotas).
func (in *Instance) Usage() (vcpu float64, memoryMB, storageGB int64) {
	n := float64(len(in.Plan.Nodes))
	return in.Plan.Resources.VCPU * n, in.Plan.Resources.MemoryMB * int64(len(in.Plan.Nodes)), in.Plan.Resources.StorageGB * int64(len(in.Plan.Nodes))
}

func (in *Instance) setStep(s Step, now time.Time) {
	in.Step = s
	in.StepAt = now
	in.UpdatedAt = now
}

// Sync updates op from the instance's state: step, and the outcome once the
// instance is past the operation.
func (in *Instance) Sync(op *Operation, now time.Time) {
	if op.ID != in.OperationID || op.State != OpInProgress {
		return
	}
	if op.Step != in.Step {
		op.StepDetail = ""
	}
	op.Step = in.Step
	finish := func(s OpState, msg string) {
		op.State, op.Error = s, msg
		t := now
		op.FinishedAt = &t
	}
	switch {
	case op.Type == OpCreate && in.State == StateReady, op.Type == OpUpdate && in.State == StateReady,
		op.Type == OpDelete && in.State == StateDeleted:
		finish(OpSucceeded, "")
	case op.Type == OpCreate && in.State == StateFailed:
		finish(OpFailed, in.Reason)
	}
}

// AbortUpdate returns an instance whose parameter change could not be
// applied to ready; the caller fails the operation with the reason.
func (in *Instance) AbortUpdate(now time.Time) error {
	if in.State != StateUpdating {
		return fmt.Errorf("%w: abort update in state %s", ErrInvalidTransition, in.State)
	}
	in.State = StateReady
	in.setStep(StepDone, now)
	return nil
}

// Fail finishes an operation in progress as failed.
func (op *Operation) Fail(reason string, now time.Time) {
	if op.State != OpInProgress {
		return
	}
	t := now
	op.State, op.Error, op.FinishedAt = OpFailed, reason, &t
}

// Credentials is one engine account.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Accounts are Canopy's own accounts on every node of an instance; they are
// never shown to tenants and are stored encrypted.
type Accounts struct {
	Admin       Credentials `json:"admin"`
	Monitor     Credentials `json:"monitor"`
	Replication Credentials `json:"replication"`
	// CDC is the cdc service's account (MySQL only). Instances created
	// before it existed load with it empty: their nodes do not have it.
	CDC Credentials `json:"cdc,omitzero"`
	// CDCGrants are the privileges CDC was last granted on the nodes;
	// empty for an account from before they were recorded. When they
	// differ from what the cdc service needs now, the account is granted
	// again (saga.EnsureCDCAccount).
	CDCGrants string `json:"cdc_grants,omitempty"`
}

// Binding is an application's credentials on an instance.
type Binding struct {
	ID         string
	InstanceID string
	Tenant     string
	Name       string
	// OSBID is the Open Service Broker binding id, when bound through OSB.
	OSBID string
	// RequestHash identifies what an OSB bind asked for; empty otherwise.
	RequestHash string
	Credentials Credentials
	Deleted     bool
	CreatedAt   time.Time
}

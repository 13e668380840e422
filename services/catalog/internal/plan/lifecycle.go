package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/semver"
)

// New returns an active plan with the given id built from s, created at now.
// An empty display name defaults to the name, an empty default version to the
// first version, and the parameter schema gets a $schema when it names none.
func New(id string, s Spec, now time.Time) (Plan, error) {
	if s.DisplayName == "" {
		s.DisplayName = s.Name
	}
	if s.DefaultVersion == "" && len(s.Versions) > 0 {
		s.DefaultVersion = s.Versions[0]
	}
	t := now.UTC()
	p := Plan{ID: id, Spec: s, State: Active, CreatedAt: t, UpdatedAt: t}
	if err := p.Validate(); err != nil {
		return Plan{}, err
	}
	norm, err := NormalizeSchema(p.ParametersSchema)
	if err != nil {
		return Plan{}, fmt.Errorf("new plan %s: %w", s.Name, err)
	}
	p.ParametersSchema = norm
	return p, nil
}

// Changes is a partial update of a plan: nil fields stay as they are. The
// topology and resources of a plan are immutable (instances were placed and
// priced by them); Apply accepts them only when they equal the current value.
type Changes struct {
	Name             *string
	DisplayName      *string
	Description      *string
	Versions         []string // nil = unchanged
	DefaultVersion   *string
	SLO              *SLO
	Prices           *Prices
	ParametersSchema json.RawMessage // nil = unchanged
	MaintenanceInfo  *MaintenanceInfo

	Engine          *Engine
	DeploymentMode  *DeploymentMode
	Nodes           *Nodes
	Resources       *Resources
	ReplicationMode *ReplicationMode
}

// Apply returns p with c applied at now and the JSON names of the fields that
// changed (empty when nothing did; the plan is then returned unchanged).
func (p Plan) Apply(c Changes, now time.Time) (Plan, []string, error) {
	var vs violations
	if c.Engine != nil && *c.Engine != p.Engine {
		vs.add("engine", "is immutable; create a new plan instead")
	}
	if c.DeploymentMode != nil && *c.DeploymentMode != p.DeploymentMode {
		vs.add("deployment_mode", "is immutable; create a new plan instead")
	}
	if c.Nodes != nil && !nodesEqual(*c.Nodes, p.Nodes) {
		vs.add("nodes", "is immutable; create a new plan instead")
	}
	if c.Resources != nil && *c.Resources != p.Resources {
		vs.add("resources", "is immutable; create a new plan instead")
	}
	if c.ReplicationMode != nil && *c.ReplicationMode != p.ReplicationMode {
		vs.add("replication_mode", "is immutable; create a new plan instead")
	}
	if err := vs.err(); err != nil {
		return p, nil, err
	}

	next := p
	next.Versions = slices.Clone(p.Versions)
	var changed []string
	set := func(field string, differs bool, apply func()) {
		if differs {
			apply()
			changed = append(changed, field)
		}
	}
	if c.Name != nil {
		set("name", *c.Name != p.Name, func() { next.Name = *c.Name })
	}
	if c.DisplayName != nil {
		set("display_name", *c.DisplayName != p.DisplayName, func() { next.DisplayName = *c.DisplayName })
	}
	if c.Description != nil {
		set("description", *c.Description != p.Description, func() { next.Description = *c.Description })
	}
	if c.Versions != nil {
		set("versions", !slices.Equal(c.Versions, p.Versions), func() { next.Versions = slices.Clone(c.Versions) })
	}
	if c.DefaultVersion != nil {
		set("default_version", *c.DefaultVersion != p.DefaultVersion, func() { next.DefaultVersion = *c.DefaultVersion })
	}
	if c.SLO != nil {
		set("slo", *c.SLO != p.SLO, func() { next.SLO = *c.SLO })
	}
	if c.Prices != nil {
		set("prices", *c.Prices != p.Prices, func() { next.Prices = *c.Prices })
	}
	if c.MaintenanceInfo != nil {
		set("maintenance_info", *c.MaintenanceInfo != p.MaintenanceInfo, func() { next.MaintenanceInfo = *c.MaintenanceInfo })
	}
	if c.ParametersSchema != nil {
		// Compare normalized forms so re-sending the stored schema is a no-op;
		// an invalid schema is reported by Validate below.
		norm, err := NormalizeSchema(c.ParametersSchema)
		if err != nil {
			norm = c.ParametersSchema
		}
		set("parameters_schema", string(norm) != string(p.ParametersSchema), func() { next.ParametersSchema = norm })
	}
	if len(changed) == 0 {
		return p, nil, nil
	}
	if err := next.Validate(); err != nil {
		return p, nil, err
	}
	if slices.Contains(changed, "maintenance_info") && next.MaintenanceInfo.Version != p.MaintenanceInfo.Version &&
		semver.Compare("v"+next.MaintenanceInfo.Version, "v"+p.MaintenanceInfo.Version) < 0 {
		return p, nil, &ValidationError{Violations: []Violation{{
			Field: "maintenance_info.version", Reason: fmt.Sprintf("must not go back from %s", p.MaintenanceInfo.Version),
		}}}
	}
	next.UpdatedAt = now.UTC()
	return next, changed, nil
}

func nodesEqual(a, b Nodes) bool {
	return a.Count == b.Count && a.Zones == b.Zones && slices.Equal(a.Groups, b.Groups)
}

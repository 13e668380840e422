package plan

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on plan fields.
const (
	MaxNameLen        = 63
	MaxDisplayNameLen = 100
	MaxDescriptionLen = 255
	MaxVersions       = 16
	MaxNodes          = 15
	MinVCPU           = 0.25
	MaxVCPU           = 256
	MinMemoryMB       = 256
	MaxMemoryMB       = 1 << 20
	MaxStorageGB      = 65536
	MinAvailability   = 90.0
	MaxRecoverySecs   = 86400
)

var (
	namePattern     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	idPattern       = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	pricePattern    = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,6})?$`)
	// semverPattern is the official SemVer 2.0 regular expression.
	semverPattern = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// ErrInvalid is matched (errors.Is) by every *ValidationError.
var ErrInvalid = errors.New("invalid plan")

// Violation is one broken rule: the field (JSON name, with [i] for list
// elements) and the reason.
type Violation struct {
	Field  string
	Reason string
}

// ValidationError lists every rule a plan breaks.
type ValidationError struct {
	Violations []Violation
}

// Error joins the violations.
func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Reason)
	}
	return "invalid plan: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// violations collects broken rules.
type violations []Violation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, Violation{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}

// ValidID reports whether id is a lower-case canonical UUID.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ValidName reports whether name is a valid plan name.
func ValidName(name string) bool {
	return len(name) <= MaxNameLen && namePattern.MatchString(name)
}

// Validate checks every rule of a plan and returns a *ValidationError naming
// each broken one, or nil.
func (p Plan) Validate() error {
	var vs violations
	if !ValidID(p.ID) {
		vs.add("id", "must be a lower-case UUID")
	}
	if p.State != Active && p.State != Deprecated {
		vs.add("state", "must be %q or %q", Active, Deprecated)
	}
	p.Spec.validate(&vs)
	return vs.err()
}

// Validate checks the rules of a spec alone.
func (s Spec) Validate() error {
	var vs violations
	s.validate(&vs)
	return vs.err()
}

func (s Spec) validate(vs *violations) {
	switch {
	case s.Name == "":
		vs.add("name", "is required")
	case len(s.Name) > MaxNameLen:
		vs.add("name", "is %d characters; at most %d are allowed", len(s.Name), MaxNameLen)
	case !namePattern.MatchString(s.Name):
		vs.add("name", "must be lower-case letters, digits and inner hyphens")
	}
	if utf8.RuneCountInString(s.DisplayName) > MaxDisplayNameLen {
		vs.add("display_name", "is longer than %d characters", MaxDisplayNameLen)
	}
	switch {
	case strings.TrimSpace(s.Description) == "":
		vs.add("description", "is required")
	case utf8.RuneCountInString(s.Description) > MaxDescriptionLen:
		vs.add("description", "is longer than %d characters", MaxDescriptionLen)
	}
	svc, known := LookupService(s.Engine)
	if !known {
		vs.add("engine", "must be one of %v", Engines())
	}
	s.validateVersions(vs, svc, known)
	modeOK := true
	switch s.DeploymentMode {
	case SingleAZ, MultiAZ, MultiRegion:
	default:
		modeOK = false
		vs.add("deployment_mode", "must be %q, %q or %q", SingleAZ, MultiAZ, MultiRegion)
	}
	s.validateNodes(vs, modeOK)
	s.validateReplication(vs, svc, known)
	s.Resources.validate(vs)
	s.SLO.validate(vs, s.ReplicationMode)
	s.Prices.validate(vs)
	if _, err := CompileSchema(s.ParametersSchema); err != nil {
		vs.add("parameters_schema", "%v", err)
	}
	if !semverPattern.MatchString(s.MaintenanceInfo.Version) {
		vs.add("maintenance_info.version", "must be a semantic version (2.0), e.g. 1.0.0")
	}
	if utf8.RuneCountInString(s.MaintenanceInfo.Description) > MaxDescriptionLen {
		vs.add("maintenance_info.description", "is longer than %d characters", MaxDescriptionLen)
	}
}

func (s Spec) validateVersions(vs *violations, svc Service, known bool) {
	switch {
	case len(s.Versions) == 0:
		vs.add("versions", "at least one version is required")
	case len(s.Versions) > MaxVersions:
		vs.add("versions", "at most %d versions are allowed", MaxVersions)
	}
	seen := map[string]bool{}
	for i, v := range s.Versions {
		f := fmt.Sprintf("versions[%d]", i)
		switch {
		case seen[v]:
			vs.add(f, "duplicate version %q", v)
		case known && !svc.SupportsVersion(v):
			vs.add(f, "%q is not a version of %s; one of %v", v, s.Engine, svc.Versions)
		}
		seen[v] = true
	}
	if !slices.Contains(s.Versions, s.DefaultVersion) {
		vs.add("default_version", "must be one of versions")
	}
}

func (s Spec) validateNodes(vs *violations, modeOK bool) {
	n := s.Nodes
	if n.Count < 1 || n.Count > MaxNodes {
		vs.add("nodes.count", "must be between 1 and %d", MaxNodes)
	}
	if len(n.Groups) == 0 {
		vs.add("nodes.groups", "at least one group is required")
		return
	}
	var sum, primaries, inPrimaryRegion, inDR, replicas int
	groupsOK := true
	for i, g := range n.Groups {
		f := fmt.Sprintf("nodes.groups[%d]", i)
		if g.Role != RolePrimary && g.Role != RoleReplica {
			vs.add(f+".role", "must be %q or %q", RolePrimary, RoleReplica)
			groupsOK = false
		}
		if g.RegionRole != RegionPrimary && g.RegionRole != RegionDR {
			vs.add(f+".region_role", "must be %q or %q", RegionPrimary, RegionDR)
			groupsOK = false
		}
		if g.Count < 1 || g.Count > MaxNodes {
			vs.add(f+".count", "must be between 1 and %d", MaxNodes)
			groupsOK = false
			continue
		}
		sum += g.Count
		if g.Role == RolePrimary {
			primaries += g.Count
			if g.RegionRole != RegionPrimary {
				vs.add(f+".region_role", "the primary must be in the primary region")
				groupsOK = false
			}
		} else {
			replicas += g.Count
		}
		if g.RegionRole == RegionDR {
			inDR += g.Count
		} else {
			inPrimaryRegion += g.Count
		}
	}
	if !groupsOK {
		return
	}
	if sum != n.Count {
		vs.add("nodes.count", "is %d but the groups hold %d nodes", n.Count, sum)
	}
	if primaries != 1 {
		vs.add("nodes.groups", "exactly one primary node is required, found %d", primaries)
	}
	if n.Zones < 1 || n.Zones > inPrimaryRegion {
		vs.add("nodes.zones", "must be between 1 and the %d nodes of the primary region", inPrimaryRegion)
	}
	if !modeOK {
		return
	}
	switch s.DeploymentMode {
	case SingleAZ:
		if n.Zones != 1 {
			vs.add("nodes.zones", "must be 1 for %s", SingleAZ)
		}
		if inDR > 0 {
			vs.add("nodes.groups", "%s plans have no disaster-recovery region", SingleAZ)
		}
	case MultiAZ:
		if replicas < 1 {
			vs.add("nodes.groups", "%s plans need at least one replica", MultiAZ)
		}
		if n.Zones < 2 {
			vs.add("nodes.zones", "must be at least 2 for %s", MultiAZ)
		}
		if inDR > 0 {
			vs.add("nodes.groups", "%s plans have no disaster-recovery region; use %s", MultiAZ, MultiRegion)
		}
	case MultiRegion:
		if inDR < 1 {
			vs.add("nodes.groups", "%s plans need at least one node in the %q region", MultiRegion, RegionDR)
		}
	}
}

func (s Spec) validateReplication(vs *violations, svc Service, known bool) {
	switch s.ReplicationMode {
	case Async:
	case SemiSync:
		if known && !svc.SemiSync {
			vs.add("replication_mode", "%s does not support %s replication", s.Engine, SemiSync)
		}
		if s.Nodes.Count < 2 {
			vs.add("replication_mode", "%s needs at least one replica", SemiSync)
		}
	default:
		vs.add("replication_mode", "must be %q or %q", Async, SemiSync)
	}
}

func (r Resources) validate(vs *violations) {
	if r.VCPU < MinVCPU || r.VCPU > MaxVCPU || math.Mod(r.VCPU, MinVCPU) != 0 {
		vs.add("resources.vcpu", "must be a multiple of %g between %g and %d", MinVCPU, MinVCPU, MaxVCPU)
	}
	if r.MemoryMB < MinMemoryMB || r.MemoryMB > MaxMemoryMB {
		vs.add("resources.memory_mb", "must be between %d and %d", MinMemoryMB, MaxMemoryMB)
	}
	if r.StorageGB < 1 || r.StorageGB > MaxStorageGB {
		vs.add("resources.storage_gb", "must be between 1 and %d", MaxStorageGB)
	}
}

func (s SLO) validate(vs *violations, mode ReplicationMode) {
	if s.Availability < MinAvailability || s.Availability >= 100 {
		vs.add("slo.availability", "must be a percentage in [%g, 100)", MinAvailability)
	}
	if s.RTOSeconds < 0 || s.RTOSeconds > MaxRecoverySecs {
		vs.add("slo.rto_seconds", "must be between 0 and %d", MaxRecoverySecs)
	}
	switch {
	case s.RPOSeconds < 0 || s.RPOSeconds > MaxRecoverySecs:
		vs.add("slo.rpo_seconds", "must be between 0 and %d", MaxRecoverySecs)
	case s.RPOSeconds == 0 && mode != SemiSync:
		vs.add("slo.rpo_seconds", "0 (no loss) can only be promised with %s replication", SemiSync)
	}
}

func (p Prices) validate(vs *violations) {
	if !currencyPattern.MatchString(p.Currency) {
		vs.add("prices.currency", "must be an ISO 4217 code such as USD")
	}
	if !pricePattern.MatchString(p.NodeHour) {
		vs.add("prices.node_hour", "must be a decimal string with at most 6 fraction digits, e.g. \"0.045\"")
	}
	if !pricePattern.MatchString(p.StorageGBHour) {
		vs.add("prices.storage_gb_hour", "must be a decimal string with at most 6 fraction digits, e.g. \"0.000137\"")
	}
}

// SizeName names a node size for metering, e.g. "2vcpu-8192mb".
func SizeName(r Resources) string {
	return fmt.Sprintf("%gvcpu-%dmb", r.VCPU, r.MemoryMB)
}

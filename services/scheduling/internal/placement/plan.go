package placement

import "errors"

// PlanShape is what placement needs of a catalog plan: the engine, the
// deployment mode and the nodes to place.
type PlanShape struct {
	Engine         string
	DeploymentMode string
	Nodes          []NodeSpec
}

// ErrUnknownPlan is returned by a plan resolver for a plan that does not exist.
var ErrUnknownPlan = errors.New("unknown plan")

package backup

import (
	"errors"
	"fmt"
)

// Node roles as provisioning names them.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
	RoleFenced  = "fenced"
)

// ErrNoSource: the instance has no healthy node a backup can be taken from.
var ErrNoSource = errors.New("no healthy node to back up")

// ErrNoPrimary: the instance has no primary node.
var ErrNoPrimary = errors.New("no primary node")

// ChooseSource picks the node to back up: a healthy replica when there is
// one (preferring the primary's region, then the order provisioning lists
// them in), else the healthy primary; never a fenced node. fromReplica
// tells which.
func ChooseSource(in Instance) (n Node, fromReplica bool, err error) {
	region := ""
	if p, err := Primary(in); err == nil {
		region = p.Region
	}
	var replica *Node
	for i := range in.Nodes {
		c := &in.Nodes[i]
		if c.Role != RoleReplica || !c.Healthy {
			continue
		}
		if replica == nil || (region != "" && c.Region == region && replica.Region != region) {
			replica = c
		}
	}
	if replica != nil {
		return *replica, true, nil
	}
	for _, c := range in.Nodes {
		if c.Role == RolePrimary && c.Healthy {
			return c, false, nil
		}
	}
	return Node{}, false, fmt.Errorf("instance %s: %w", in.ID, ErrNoSource)
}

// Primary returns the instance's current primary node (a healthy one when
// provisioning lists more than one, as it may during a failover).
func Primary(in Instance) (Node, error) {
	var found *Node
	for i := range in.Nodes {
		c := &in.Nodes[i]
		if c.Role != RolePrimary {
			continue
		}
		if found == nil || (c.Healthy && !found.Healthy) {
			found = c
		}
	}
	if found == nil {
		return Node{}, fmt.Errorf("instance %s: %w", in.ID, ErrNoPrimary)
	}
	return *found, nil
}

// Package pipeline runs the streams (temporary stand-in on this branch).
//
// Temporary: replaced at merge.
package pipeline

import "context"

// Manager runs every active stream (stand-in: runs none).
//
// Temporary: replaced at merge.
type Manager struct{}

// Kick wakes the manager for a created or changed stream.
func (m *Manager) Kick(string) {}

// Run runs the streams until ctx ends.
func (m *Manager) Run(ctx context.Context) error { <-ctx.Done(); return nil }

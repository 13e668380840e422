package httpapi

import (
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
)

// The service wires the real parts into Deps; these fail to compile when
// their signatures drift from what the API needs.
var (
	_ Store      = (*alertstore.Store)(nil)
	_ Engine     = (*engine.Engine)(nil)
	_ Nodes      = (*nodes.Registry)(nil)
	_ URLChecker = webhook.URLPolicy{}
)

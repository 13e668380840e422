// Package httpapi is the alerting service's HTTP API (stub for the wiring
// branch, shaped like the httpapi helper's package, which replaces it at
// integration).
package httpapi

import (
	"log/slog"

	"github.com/go-chi/chi/v5"
)

// DefaultMaxPushBody bounds POST /api/v2/alerts.
const DefaultMaxPushBody = 4 << 20

// Deps are the API's collaborators (interfaces in the real package).
type Deps struct {
	Store, Engine, Nodes, URLs any
	Log                        *slog.Logger
}

// API serves the alerting endpoints.
type API struct{}

// New builds the API.
func New(d Deps) (*API, error) { return &API{}, nil }

// Routes mounts the endpoints on r.
func (a *API) Routes(r chi.Router) {}

// Package httpapi is the alerting service's HTTP API (stub for the wiring
// branch; the httpapi helper's package replaces it at integration).
package httpapi

import (
	"log/slog"

	"github.com/go-chi/chi/v5"
)

// Deps are the API's collaborators (types reconciled at integration).
type Deps struct {
	Store, Engine, Nodes, URLPolicy any
	Log                             *slog.Logger
}

// API serves the alerting endpoints.
type API struct{}

// New builds the API.
func New(d Deps) (*API, error) { return &API{}, nil }

// Routes mounts the endpoints on r.
func (a *API) Routes(r chi.Router) {}

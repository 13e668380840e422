// Package ratingapi: THROWAWAY stub by helper "wiring" so that the service
// compiles before helper "rating" lands; deleted at integration.
package ratingapi

import (
	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/services/metering/internal/rating"
)

// API is a stub.
type API struct{}

// New is a stub.
func New(s *rating.Service) (*API, error) { return &API{}, nil }

// Routes registers nothing.
func (a *API) Routes(r chi.Router) {}

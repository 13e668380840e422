// Package tenancy carries the tenant a request or event belongs to: the tenant id
// type, its place in a context.Context, and the header names used to carry it
// across HTTP and Kafka. It does not authenticate anyone; the gateway does that
// and hands the result to services through these headers.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// ID identifies a tenant. It is a lower-case slug or ULID-like token.
type ID string

// HTTPHeader is the header in which the gateway passes the tenant to services.
const HTTPHeader = "X-Canopy-Tenant"

// KafkaHeader is the Kafka record header that carries the tenant of an event.
const KafkaHeader = "tenant"

// ErrNoTenant is returned when a tenant is required but the context has none.
var ErrNoTenant = errors.New("no tenant in context")

// ErrInvalidID is returned for a tenant id that does not match the allowed shape.
var ErrInvalidID = errors.New("invalid tenant id")

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Parse validates s as a tenant id.
func Parse(s string) (ID, error) {
	if !idPattern.MatchString(s) {
		return "", fmt.Errorf("%w: %q", ErrInvalidID, s)
	}
	return ID(s), nil
}

// String returns the id as a string.
func (id ID) String() string { return string(id) }

type ctxKey struct{}

// WithTenant returns a context that carries the tenant id.
func WithTenant(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant in ctx, if any.
func FromContext(ctx context.Context) (ID, bool) {
	id, ok := ctx.Value(ctxKey{}).(ID)
	return id, ok && id != ""
}

// Require returns the tenant in ctx or ErrNoTenant.
func Require(ctx context.Context) (ID, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return "", ErrNoTenant
	}
	return id, nil
}

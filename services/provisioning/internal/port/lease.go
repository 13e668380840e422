package port

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLeaseLost: the lease was taken over (a newer token exists) or is no
// longer this owner's.
var ErrLeaseLost = errors.New("saga lease lost")

// ErrFenced: a write carried a fencing token older than the instance's
// lease: another replica took the instance over and this write must not land.
var ErrFenced = errors.New("fenced: a newer saga lease exists")

// Lease is one replica's right to drive one instance until it expires.
type Lease struct {
	// Instance is the instance's id.
	Instance string
	// Owner is the holder (a replica id).
	Owner string
	// Token grows with every acquisition; the saga's writes carry it.
	Token int64
	// Previous is the owner before this acquisition ("" for the first):
	// another replica's nodes of the instance must be adopted first.
	Previous string
}

// LeaseHeldError: another owner holds the lease for Remaining more.
type LeaseHeldError struct {
	Instance, Owner string
	Remaining       time.Duration
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("saga lease of instance %s held by %s for %s more", e.Instance, e.Owner, e.Remaining)
}

type fenceKey struct{}

// Fence is the lease token a write of the saga carries.
type Fence struct {
	Instance string
	Token    int64
}

// WithFence returns ctx whose writes to instance (Update) are refused with
// ErrFenced once a lease newer than token exists. Repositories without
// leases ignore it.
func WithFence(ctx context.Context, instance string, token int64) context.Context {
	return context.WithValue(ctx, fenceKey{}, Fence{Instance: instance, Token: token})
}

// FenceOf returns the fence ctx carries for instance, if any.
func FenceOf(ctx context.Context, instance string) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	if !ok || f.Instance != instance {
		return Fence{}, false
	}
	return f, true
}

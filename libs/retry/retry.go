// Package retry is the one backoff primitive of the repository: exponential
// backoff with jitter that stops when the context is cancelled or the error is
// marked permanent. Consumers, relays and clients all retry through it rather
// than with hand-written sleep loops.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy says how often and how long to retry.
type Policy struct {
	// Initial is the first wait; each later wait grows by Multiplier up to Max.
	Initial time.Duration
	// Max caps a single wait.
	Max time.Duration
	// Multiplier is the growth factor between waits (default 2).
	Multiplier float64
	// MaxTries bounds the number of attempts; 0 means until the context ends.
	MaxTries int
	// MaxElapsed bounds the total time; 0 means until the context ends.
	MaxElapsed time.Duration
}

// Default is a policy suited to transient dependency failures.
var Default = Policy{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying; Do returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// NewBackOff returns a fresh jittered exponential backoff for p.
func (p Policy) NewBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	if p.Initial > 0 {
		b.InitialInterval = p.Initial
	}
	if p.Max > 0 {
		b.MaxInterval = p.Max
	}
	if p.Multiplier > 0 {
		b.Multiplier = p.Multiplier
	}
	b.RandomizationFactor = 0.5
	return b
}

// Do calls fn until it succeeds, returns a permanent error, the tries or time
// run out, or ctx ends. It returns the last error fn returned (unwrapped from
// Permanent), or ctx's error if the context ended first.
func Do(ctx context.Context, p Policy, fn func(ctx context.Context) error) error {
	opts := []backoff.RetryOption{backoff.WithBackOff(p.NewBackOff())}
	if p.MaxTries > 0 {
		opts = append(opts, backoff.WithMaxTries(uint(p.MaxTries)))
	}
	if p.MaxElapsed > 0 {
		opts = append(opts, backoff.WithMaxElapsedTime(p.MaxElapsed))
	} else {
		opts = append(opts, backoff.WithMaxElapsedTime(0))
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := fn(ctx)
		if err != nil && IsPermanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, opts...)
	var p2 *permanentError
	if errors.As(err, &p2) && errors.Is(err, p2.err) {
		return p2.err
	}
	return err
}

package eventbus

import (
	"errors"

	"github.com/canopy-platform/canopy/libs/retry"
)

// Class is how a consumer treats a failed message.
type Class int

const (
	// ClassRetryable failures are retried with backoff, then dead-lettered
	// once the attempts run out. Plain handler errors are retryable.
	ClassRetryable Class = iota
	// ClassPermanent failures cannot succeed on retry (a business rule
	// rejects the event); the message is dead-lettered at once.
	ClassPermanent
	// ClassPoison messages cannot even be understood (missing CloudEvents
	// attributes, undecodable payload); the message is dead-lettered at once.
	ClassPoison
)

// String returns the class name used in logs and the dlq_class header.
func (c Class) String() string {
	switch c {
	case ClassPermanent:
		return "permanent"
	case ClassPoison:
		return "poison"
	default:
		return "retryable"
	}
}

// PermanentError marks a handler failure that retrying cannot fix.
type PermanentError struct{ Err error }

// Error returns the wrapped error's text.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// PoisonError marks a message that cannot be processed at all.
type PoisonError struct{ Err error }

// Error returns the wrapped error's text.
func (e *PoisonError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PoisonError) Unwrap() error { return e.Err }

// Permanent marks err as permanent: the subscriber dead-letters the message
// without retrying. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Poison marks err as poison: the message is malformed and goes to the
// dead-letter topic without retrying. Poison(nil) is nil.
func Poison(err error) error {
	if err == nil {
		return nil
	}
	return &PoisonError{Err: err}
}

// ClassOf classifies a non-nil handler error. Errors marked with Poison are
// poison; errors marked with Permanent (or retry.Permanent) are permanent;
// everything else is retryable.
func ClassOf(err error) Class {
	var poison *PoisonError
	if errors.As(err, &poison) {
		return ClassPoison
	}
	var perm *PermanentError
	if errors.As(err, &perm) || retry.IsPermanent(err) {
		return ClassPermanent
	}
	return ClassRetryable
}

// Package webhook delivers notifications as Alertmanager's webhook payload
// version 4, signed with HMAC-SHA256 when the receiver has a secret, with
// a circuit breaker per receiver (sony/gobreaker), and validates receiver
// URLs against server-side request forgery. It does not queue or retry by
// itself: the caller (the engine's delivery workers) keeps the queue in
// the store and asks Backoff how long to wait before the next attempt.
package webhook

package launch

import (
	"context"
	"log/slog"
	"time"
)

// Base is what a service's Service embeds: its logger, tagged with the
// service's name, and its lifecycle, with the Ready and Addr every caller
// (cmd, the all-in-one binary, tests) waits on.
type Base struct {
	log  *slog.Logger
	life *Lifecycle
}

// NewBase returns the base of the service name: logger tagged with
// "service"=name and attrs (key-value pairs, as slog's With takes them), and
// a lifecycle stopping each stage within stopTimeout (DefaultStopTimeout
// when not positive).
func NewBase(name string, logger *slog.Logger, stopTimeout time.Duration, attrs ...any) Base {
	log := logger.With(append([]any{"service", name}, attrs...)...)
	return Base{log: log, life: NewLifecycle(name, stopTimeout, log)}
}

// Logger is the service's logger.
func (b Base) Logger() *slog.Logger { return b.log }

// Ready is closed once every stage has started and the service listens.
func (b Base) Ready() <-chan struct{} { return b.life.Ready() }

// Addr is the address the service's "http" stage listens on, once Ready is
// closed.
func (b Base) Addr() string { return b.life.Addr("http") }

// RunStages runs the service's lifecycle with stages (Lifecycle.Run).
func (b Base) RunStages(ctx context.Context, stages ...Stage) error {
	return b.life.Run(ctx, stages...)
}

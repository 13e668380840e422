package rating

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the rating service's collectors (canopy_metering_*).
type metrics struct {
	jobRuns         *prometheus.CounterVec
	invoicesClosed  prometheus.Counter
	budgetCrossings prometheus.Counter
	ratedEvents     prometheus.Counter
}

// newMetrics builds the collectors and registers them on reg (none when nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "canopy", Subsystem: "metering", Name: name, Help: help}
	}
	m := &metrics{
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts(opts("rating_job_runs_total",
			"Rounds of the rating jobs (close_invoices, rate_hours, budgets), by job and result (ok, error).")),
			[]string{"job", "result"}),
		invoicesClosed: prometheus.NewCounter(prometheus.CounterOpts(opts("invoices_closed_total",
			"Monthly invoices this process closed."))),
		budgetCrossings: prometheus.NewCounter(prometheus.CounterOpts(opts("budget_thresholds_announced_total",
			"metering.budget.threshold events written to the outbox."))),
		ratedEvents: prometheus.NewCounter(prometheus.CounterOpts(opts("usage_rated_events_total",
			"metering.usage.rated events written to the outbox."))),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.jobRuns, m.invoicesClosed, m.budgetCrossings, m.ratedEvents} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register rating metrics: %w", err)
		}
	}
	return m, nil
}

package syncrun

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// allStates are the values of the state label of canopy_cdc_sync_job_state.
var allStates = []syncjob.State{syncjob.StateLoading, syncjob.StateRunning, syncjob.StatePaused, syncjob.StateFailed,
	syncjob.StateDeleting}

// metrics are the Manager's collectors (canopy_cdc_sync_*).
type metrics struct {
	applied   *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	state     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, errors.New("nil registerer")
	}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "canopy", Subsystem: "cdc_sync", Name: name, Help: help}
	}
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts(opts("applied_rows_total",
			"Row changes committed to the target, by job and direction (from instance).")), []string{"job", "from"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts(opts("conflicts_total",
			"Conflicting changes decided by the job's strategy, by job and direction.")), []string{"job", "from"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("lag_seconds",
			"Age of the last applied change while the direction is behind its source; 0 when caught up.")),
			[]string{"job", "from"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("job_state",
			"1 for the state a sync job is in, 0 for the others.")), []string{"job", "state"}),
	}
	for _, c := range []prometheus.Collector{m.applied, m.conflicts, m.lag, m.state} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sync metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) setState(job string, st syncjob.State) {
	for _, s := range allStates {
		v := 0.0
		if s == st {
			v = 1
		}
		m.state.WithLabelValues(job, string(s)).Set(v)
	}
}

func (m *metrics) forget(job string) {
	l := prometheus.Labels{"job": job}
	m.applied.DeletePartialMatch(l)
	m.conflicts.DeletePartialMatch(l)
	m.lag.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
}

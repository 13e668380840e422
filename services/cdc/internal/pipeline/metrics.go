package pipeline

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// allStates are the values of the state label of canopy_cdc_stream_state.
var allStates = []stream.State{stream.StateSnapshotting, stream.StateStreaming, stream.StatePaused, stream.StateFailed,
	stream.StateDeleting}

// Metrics are the pipeline's collectors (canopy_cdc_*).
type Metrics struct {
	lag    *prometheus.GaugeVec
	events *prometheus.CounterVec
	rate   *prometheus.GaugeVec
	state  *prometheus.GaugeVec
}

// NewMetrics builds the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("pipeline metrics: nil registerer")
	}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "canopy", Subsystem: "cdc", Name: name, Help: help}
	}
	m := &Metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("lag_seconds",
			"Time from the commit of the last change Kafka acknowledged to now, by stream; 0 when caught up.")),
			[]string{"stream"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts(opts("events_total",
			"Messages Kafka acknowledged (row changes, tombstones, schema changes), by stream; redeliveries after a restart count again.")),
			[]string{"stream"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("rows_per_second",
			"Messages acknowledged per second over the last status interval, by stream.")),
			[]string{"stream"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("stream_state",
			"1 for the state a stream's runner is in, 0 for the others, by stream and state.")),
			[]string{"stream", "state"}),
	}
	for _, c := range []prometheus.Collector{m.lag, m.events, m.rate, m.state} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register cdc pipeline metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) setState(id string, st stream.State) {
	for _, s := range allStates {
		v := 0.0
		if s == st {
			v = 1
		}
		m.state.WithLabelValues(id, string(s)).Set(v)
	}
}

// forget deletes every series of a stream.
func (m *Metrics) forget(id string) {
	l := prometheus.Labels{"stream": id}
	m.lag.DeletePartialMatch(l)
	m.events.DeletePartialMatch(l)
	m.rate.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
}

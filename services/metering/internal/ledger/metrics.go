package ledger

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/obs"
)

// Outcomes of a consumed message (label outcome of events_total).
const (
	outcomeCounted   = "counted"
	outcomeDuplicate = "duplicate"
	outcomeLate      = "late"
	outcomeSkipped   = "skipped"
)

type metrics struct {
	events      *prometheus.CounterVec
	undecodable *prometheus.CounterVec
	batch       *prometheus.HistogramVec
	lag         *prometheus.GaugeVec
	errors      *prometheus.CounterVec

	mu   sync.Mutex
	lags map[string]map[int]int64 // topic → partition → messages behind
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{lags: map[string]map[int]int64{}}
	var err error
	if m.events, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canopy_metering_events_total",
		Help: "Messages the ledger consumed, by outcome: counted, duplicate (ingested id seen before), late (recorded, not counted), skipped (not usage, undecodable or without tenant).",
	}, []string{"topic", "outcome"})); err != nil {
		return nil, err
	}
	if m.undecodable, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canopy_metering_undecodable_total",
		Help: "Messages the ledger could not decode and skipped (also counted as skipped in canopy_metering_events_total).",
	}, []string{"topic"})); err != nil {
		return nil, err
	}
	if m.batch, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "canopy_metering_batch_seconds",
		Help:    "Time to apply one partition's batch in one transaction, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"topic"})); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "canopy_metering_lag_messages",
		Help: "Messages on the topic's partitions the ledger has not applied yet, as of its last fetch.",
	}, []string{"topic"})); err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canopy_metering_ledger_errors_total",
		Help: "Failed attempts by what failed (batch, accrue, sweep, discover); all are retried.",
	}, []string{"what"})); err != nil {
		return nil, err
	}
	return m, nil
}

// setLag records one partition's lag and publishes the topic's sum.
func (m *metrics) setLag(topic string, part int, lag int64) {
	if lag < 0 {
		lag = 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	parts := m.lags[topic]
	if parts == nil {
		parts = map[int]int64{}
		m.lags[topic] = parts
	}
	parts[part] = lag
	var sum int64
	for _, v := range parts {
		sum += v
	}
	m.lag.WithLabelValues(topic).Set(float64(sum))
}

// register registers c on reg; a ledger built again in one process shares
// the first one's series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	c, err := obs.Register(reg, c)
	if err != nil {
		return c, fmt.Errorf("ledger: %w", err)
	}
	return c, nil
}

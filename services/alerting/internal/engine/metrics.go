package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/obs"
)

// metrics are the engine's series (canopy_alerting_*).
type metrics struct {
	alerts        *prometheus.GaugeVec   // by state
	notifications *prometheus.CounterVec // by result: queued, sent, failed, dead
	latency       prometheus.Histogram   // stored → delivered
	batchSize     prometheus.Histogram   // alerts per group commit
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var m metrics
	var err error
	if m.alerts, err = obs.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "canopy", Subsystem: "alerting", Name: "alerts",
		Help: "Alerts the engine holds, by state.",
	}, []string{"state"})); err != nil {
		return nil, err
	}
	if m.notifications, err = obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "canopy", Subsystem: "alerting", Name: "notifications_total",
		Help: "Webhook notifications by result: queued (stored), sent, failed (will retry), dead (dead letter).",
	}, []string{"result"})); err != nil {
		return nil, err
	}
	if m.latency, err = obs.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "canopy", Subsystem: "alerting", Name: "delivery_latency_seconds",
		Help:    "Time from a notification's flush to its successful delivery.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120, 600, 3600},
	})); err != nil {
		return nil, err
	}
	if m.batchSize, err = obs.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "canopy", Subsystem: "alerting", Name: "commit_batch_alerts",
		Help:    "Alerts per group commit of pushes and events.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})); err != nil {
		return nil, err
	}
	return &m, nil
}

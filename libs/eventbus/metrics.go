package eventbus

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/obs"
)

const metricsNamespace = "canopy_eventbus"

// register registers c on reg, sharing an equal collector's series so that
// several publishers or subscribers of one process count together.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	c, err := obs.Register(reg, c)
	if err != nil {
		return c, fmt.Errorf("eventbus: %w", err)
	}
	return c, nil
}

type publisherMetrics struct {
	published *prometheus.CounterVec
	errors    *prometheus.CounterVec
}

func newPublisherMetrics(reg prometheus.Registerer) (*publisherMetrics, error) {
	var m publisherMetrics
	var err error
	if m.published, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "published_total",
		Help: "Events published and acknowledged by the broker.",
	}, []string{"topic"})); err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "publish_errors_total",
		Help: "Publish calls that failed (validation or broker errors).",
	}, []string{"topic"})); err != nil {
		return nil, err
	}
	return &m, nil
}

type subscriberMetrics struct {
	consumed *prometheus.CounterVec
	handled  *prometheus.CounterVec
	failed   *prometheus.CounterVec
	dlq      *prometheus.CounterVec
	lag      *prometheus.GaugeVec
}

func newSubscriberMetrics(reg prometheus.Registerer) (*subscriberMetrics, error) {
	var m subscriberMetrics
	var err error
	if m.consumed, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "consumed_total",
		Help: "Records fetched by subscribers.",
	}, []string{"group", "topic"})); err != nil {
		return nil, err
	}
	if m.handled, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "handled_total",
		Help: "Events their handler processed successfully.",
	}, []string{"group", "topic"})); err != nil {
		return nil, err
	}
	if m.failed, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "handler_failures_total",
		Help: "Failed handler attempts, by failure class.",
	}, []string{"group", "topic", "class"})); err != nil {
		return nil, err
	}
	if m.dlq, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "dead_lettered_total",
		Help: "Records sent to the dead-letter topic, by reason class.",
	}, []string{"group", "topic", "class"})); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "consumer_lag",
		Help: "Records behind the partition's high watermark at the last commit.",
	}, []string{"group", "topic", "partition"})); err != nil {
		return nil, err
	}
	return &m, nil
}

package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Connection outcomes (the outcome label of connections_total).
const (
	OutcomeForwarded = "forwarded"
	OutcomeLimit     = "limit"
	OutcomeNoBackend = "no_backend"
)

// Copy directions (the direction label of bytes_total).
const (
	DirClientToBackend = "client_to_backend"
	DirBackendToClient = "backend_to_client"
)

// waitBuckets span a connect on loopback or a LAN (0.1 ms) to a connection
// held through a promotion up to a long ConnectWait (5 s).
var waitBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5}

// Metrics are the proxy's collectors (canopy_router_*).
type Metrics struct {
	conns        *prometheus.GaugeVec
	connsTotal   *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	switches     *prometheus.CounterVec
	connectWait  *prometheus.HistogramVec
	listenErrors *prometheus.CounterVec
}

// NewMetrics builds the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("proxy metrics: nil registerer")
	}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "canopy", Subsystem: "router", Name: name, Help: help}
	}
	m := &Metrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("connections",
			"Client connections the router holds (waiting for a backend or forwarding), by instance and endpoint (rw, ro).")),
			[]string{"instance", "endpoint"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts(opts("connections_total",
			"Client connections accepted, by instance, endpoint and outcome (forwarded; limit: over max_conns; no_backend: no usable backend within connect_wait).")),
			[]string{"instance", "endpoint", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("bytes_total",
			"Bytes forwarded, by instance, endpoint and direction; a connection's bytes are added when its copy in that direction ends.")),
			[]string{"instance", "endpoint", "direction"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts(opts("switches_total",
			"Primary changes the router followed, by instance.")),
			[]string{"instance"}),
		connectWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "canopy", Subsystem: "router",
			Name: "connect_wait_seconds", Help: "Time from a client connection accepted to its backend connected, by endpoint.",
			Buckets: waitBuckets}, []string{"endpoint"}),
		listenErrors: prometheus.NewCounterVec(prometheus.CounterOpts(opts("listen_errors_total",
			"Failed attempts to listen on an endpoint's port, by instance and endpoint.")),
			[]string{"instance", "endpoint"}),
	}
	for _, c := range []prometheus.Collector{m.conns, m.connsTotal, m.bytes, m.switches, m.connectWait, m.listenErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register router proxy metrics: %w", err)
		}
	}
	return m, nil
}

// forget deletes every series of an instance.
func (m *Metrics) forget(instance string) {
	l := prometheus.Labels{"instance": instance}
	m.conns.DeletePartialMatch(l)
	m.connsTotal.DeletePartialMatch(l)
	m.bytes.DeletePartialMatch(l)
	m.switches.DeletePartialMatch(l)
	m.listenErrors.DeletePartialMatch(l)
}

// series are one endpoint's children, resolved once.
type series struct {
	conns                    prometheus.Gauge
	forwarded, limit, noBack prometheus.Counter
	toBackend, toClient      prometheus.Counter
	wait                     prometheus.Observer
	listenErrors             prometheus.Counter
}

func (m *Metrics) endpoint(instance, kind string) series {
	return series{
		conns:        m.conns.WithLabelValues(instance, kind),
		forwarded:    m.connsTotal.WithLabelValues(instance, kind, OutcomeForwarded),
		limit:        m.connsTotal.WithLabelValues(instance, kind, OutcomeLimit),
		noBack:       m.connsTotal.WithLabelValues(instance, kind, OutcomeNoBackend),
		toBackend:    m.bytes.WithLabelValues(instance, kind, DirClientToBackend),
		toClient:     m.bytes.WithLabelValues(instance, kind, DirBackendToClient),
		wait:         m.connectWait.WithLabelValues(kind),
		listenErrors: m.listenErrors.WithLabelValues(instance, kind),
	}
}

package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/obs"
)

// metrics are the engine's series (canopy_backup*).
type metrics struct {
	archiveLag  *prometheus.GaugeVec   // by instance
	lastSuccess *prometheus.GaugeVec   // by instance
	backups     *prometheus.CounterVec // by engine, status
	bytes       prometheus.Counter
	gaps        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var m metrics
	var err error
	if m.archiveLag, err = obs.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "canopy", Subsystem: "backup", Name: "archive_lag_seconds",
		Help: "How far an instance's binlog archive is behind its primary.",
	}, []string{"instance"})); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = obs.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "canopy", Subsystem: "backup", Name: "last_success_timestamp_seconds",
		Help: "When an instance's newest completed backup finished (Unix seconds).",
	}, []string{"instance"})); err != nil {
		return nil, err
	}
	if m.backups, err = obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "canopy", Name: "backups_total",
		Help: "Backups finished, by engine and status (completed, failed).",
	}, []string{"engine", "status"})); err != nil {
		return nil, err
	}
	if m.bytes, err = obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "canopy", Subsystem: "backup", Name: "bytes_total",
		Help: "Bytes of completed backups stored in the repository (compressed, encrypted).",
	})); err != nil {
		return nil, err
	}
	if m.gaps, err = obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "canopy", Subsystem: "backup", Name: "archive_gaps_total",
		Help: "Binlog archives that stopped because the primary purged binlogs they still needed.",
	})); err != nil {
		return nil, err
	}
	return &m, nil
}

package snap

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the snapshotter's series, under etcd's names: for .snap
// files, how long marshalling, the fsync and the whole save take; for
// images received from a leader (.snap.db), how long the fsync and the
// whole save take. The caller registers Collectors.
type Metrics struct {
	marshallingSeconds prometheus.Histogram
	saveSeconds        prometheus.Histogram
	fsyncSeconds       prometheus.Histogram
	dbSaveSeconds      prometheus.Histogram
	dbFsyncSeconds     prometheus.Histogram
}

// NewMetrics makes a snapshotter's metrics, not registered.
func NewMetrics() *Metrics {
	histogram := func(ns, name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "snap", Name: name, Help: help, Buckets: buckets})
	}
	ms := prometheus.ExponentialBuckets(0.001, 2, 14)
	return &Metrics{
		marshallingSeconds: histogram("etcd_debugging", "save_marshalling_duration_seconds",
			"The marshalling cost distributions of save called by snapshot.", ms),
		saveSeconds: histogram("etcd_debugging", "save_total_duration_seconds",
			"The total latency distributions of save called by snapshot.", ms),
		fsyncSeconds: histogram("etcd", "fsync_duration_seconds", "The latency distributions of fsync called by snap.", ms),
		dbSaveSeconds: histogram("etcd", "db_save_total_duration_seconds", "The total latency distributions of v3 snapshot save",
			prometheus.ExponentialBuckets(0.1, 2, 10)),
		dbFsyncSeconds: histogram("etcd", "db_fsync_duration_seconds", "The latency distributions of fsyncing .snap.db file", ms),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.marshallingSeconds, m.saveSeconds, m.fsyncSeconds, m.dbSaveSeconds, m.dbFsyncSeconds}
}

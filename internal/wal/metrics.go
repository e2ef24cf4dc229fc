package wal

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the WAL's series, under etcd's names: how long each fsync
// and each write of records takes, and how many bytes were written. The
// caller registers Collectors.
type Metrics struct {
	fsyncSeconds prometheus.Histogram
	writeSeconds prometheus.Histogram
	// writeBytes is a gauge in etcd.
	writeBytes prometheus.Gauge
}

// NewMetrics makes a WAL's metrics, not registered.
func NewMetrics() *Metrics {
	return &Metrics{
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "wal_fsync_duration_seconds",
			Help:    "The latency distributions of fsync called by WAL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "wal_write_duration_seconds",
			Help:    "The latency distributions of write called by WAL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		writeBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "wal_write_bytes_total",
			Help: "Total number of bytes written in WAL.",
		}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.fsyncSeconds, m.writeSeconds, m.writeBytes}
}

package lease

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the lessor's counters, under etcd's names: grants and
// revocations applied, renewals this member served as the leader, and the
// TTLs granted. The caller registers Collectors.
type Metrics struct {
	granted, revoked, renewed prometheus.Counter
	ttls                      prometheus.Histogram
}

// NewMetrics makes a lessor's metrics, not registered.
func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd_debugging", Subsystem: "lease", Name: name, Help: help})
	}
	return &Metrics{
		granted: counter("granted_total", "The total number of granted leases."),
		revoked: counter("revoked_total", "The total number of revoked leases."),
		renewed: counter("renewed_total", "The number of renewed leases seen by the leader."),
		ttls: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd_debugging", Subsystem: "lease", Name: "ttl_total",
			Help: "Bucketed histogram of lease TTLs.", Buckets: prometheus.ExponentialBuckets(1, 2, 24),
		}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.granted, m.revoked, m.renewed, m.ttls}
}

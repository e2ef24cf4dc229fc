package mvcc

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the store's counters and histograms, under etcd's names,
// help texts and buckets. One Metrics outlives the Stores it is handed to
// (the applier reopens the store when it installs a snapshot image), so
// that its counters never go back. The caller registers Collectors; the
// gauges read from a live store (keys, revisions) are the caller's, as
// they follow whichever Store is open.
//
// Every update is an atomic add or a histogram observation: no lock.
type Metrics struct {
	// ranges, puts and deletes count operations as etcd's store does:
	// every read of a range (a Range request, a txn's range and compare,
	// a put's prev_kv read), every put, every delete request. txns counts
	// the requests that did more than one of them.
	ranges, puts, deletes, txns prometheus.Counter
	// putBytes is the sum of len(key)+len(value) of every put (a gauge in
	// etcd).
	putBytes prometheus.Gauge
	// events counts events sent to watch clients; pendingEvents those
	// queued on watch streams and not yet taken by their sender.
	events        prometheus.Counter
	pendingEvents prometheus.Gauge

	indexCompactionPauseMs prometheus.Histogram
	dbCompactionPauseMs    prometheus.Histogram
	dbCompactionTotalMs    prometheus.Histogram
	dbCompactionLast       prometheus.Gauge
	dbCompactionKeys       prometheus.Counter

	hashSeconds    prometheus.Histogram
	hashRevSeconds prometheus.Histogram
}

// NewMetrics makes a store's metrics, not registered.
func NewMetrics() *Metrics {
	counter := func(ns, name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "mvcc", Name: name, Help: help})
	}
	gauge := func(ns, name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "mvcc", Name: name, Help: help})
	}
	histogram := func(ns, name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "mvcc", Name: name, Help: help, Buckets: buckets})
	}
	return &Metrics{
		ranges:        counter("etcd", "range_total", "Total number of ranges seen by this member."),
		puts:          counter("etcd", "put_total", "Total number of puts seen by this member."),
		deletes:       counter("etcd", "delete_total", "Total number of deletes seen by this member."),
		txns:          counter("etcd", "txn_total", "Total number of txns seen by this member."),
		putBytes:      gauge("etcd_debugging", "total_put_size_in_bytes", "The total size of put kv pairs seen by this member."),
		events:        counter("etcd_debugging", "events_total", "Total number of events sent by this member."),
		pendingEvents: gauge("etcd_debugging", "pending_events_total", "Total number of pending events to be sent."),
		indexCompactionPauseMs: histogram("etcd_debugging", "index_compaction_pause_duration_milliseconds",
			"Bucketed histogram of index compaction pause duration.", prometheus.ExponentialBuckets(0.5, 2, 14)),
		dbCompactionPauseMs: histogram("etcd_debugging", "db_compaction_pause_duration_milliseconds",
			"Bucketed histogram of db compaction pause duration.", prometheus.ExponentialBuckets(1, 2, 13)),
		dbCompactionTotalMs: histogram("etcd_debugging", "db_compaction_total_duration_milliseconds",
			"Bucketed histogram of db compaction total duration.", prometheus.ExponentialBuckets(100, 2, 14)),
		dbCompactionLast: gauge("etcd_debugging", "db_compaction_last",
			"The unix time of the last db compaction. Resets to 0 on start."),
		dbCompactionKeys: counter("etcd_debugging", "db_compaction_keys_total", "Total number of db keys compacted."),
		hashSeconds: histogram("etcd", "hash_duration_seconds",
			"The latency distribution of storage hash operation.", prometheus.ExponentialBuckets(.01, 2, 15)),
		hashRevSeconds: histogram("etcd", "hash_rev_duration_seconds",
			"The latency distribution of storage hash by revision operation.", prometheus.ExponentialBuckets(.01, 2, 15)),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.ranges, m.puts, m.deletes, m.txns, m.putBytes, m.events, m.pendingEvents,
		m.indexCompactionPauseMs, m.dbCompactionPauseMs, m.dbCompactionTotalMs, m.dbCompactionLast,
		m.dbCompactionKeys, m.hashSeconds, m.hashRevSeconds}
}

// opCounts are one request's operations, counted without atomics while it
// runs and added to the Metrics once at its end (add).
type opCounts struct {
	ranges, puts, deletes int
	putBytes              int
}

// add records one request's operations; a request of more than one
// operation is a txn, as etcd counts them.
func (m *Metrics) add(c opCounts) {
	if c.ranges+c.puts+c.deletes > 1 {
		m.txns.Inc()
	}
	if c.ranges > 0 {
		m.ranges.Add(float64(c.ranges))
	}
	if c.puts > 0 {
		m.puts.Add(float64(c.puts))
		m.putBytes.Add(float64(c.putBytes))
	}
	if c.deletes > 0 {
		m.deletes.Add(float64(c.deletes))
	}
}

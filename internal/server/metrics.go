package server

import (
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/transport"
	"github.com/cairn-db/cairn/internal/wal"
)

// metrics are the member's series, under etcd's names, types, labels and
// help texts, so that existing dashboards and alerts work. The storage
// packages and the transport count into metrics of their own (storage,
// transport), made here and registered with the rest; the gauges of state
// (leader, indexes, sizes, keys) are read when scraped.
//
// On the request paths every update is an atomic add or a histogram
// observation on a child resolved at start-up: no label lookup, no lock.
type metrics struct {
	storage   member.Metrics
	transport *transport.Metrics

	leaderChanges   prometheus.Counter
	proposalsFailed prometheus.Counter
	// promoted and promoteFailed count MemberPromote calls (etcd's
	// learner_promote_successes and _failures, by reason).
	promoted      prometheus.Counter
	promoteFailed *prometheus.CounterVec
	// requestSeconds and applySeconds are by request type (apply.RequestType)
	// and by success (index 1) or failure (0).
	requestSeconds map[string][2]prometheus.Observer
	applySeconds   map[string][2]prometheus.Observer
	rangeSeconds   [2]prometheus.Observer
	slowApplies    prometheus.Counter
	readIndexFails prometheus.Counter
	slowReadIndex  prometheus.Counter
	// snapshotApplying is 1 while an image from the leader is installed.
	snapshotApplying prometheus.Gauge
	leasesExpired    prometheus.Counter
	backendCommit    prometheus.Histogram
	backendSnapshot  prometheus.Histogram
	// defragSeconds times each defragmentation; defragInflight is 1
	// while one runs.
	defragSeconds  prometheus.Histogram
	defragInflight prometheus.Gauge
	// requestVecs are the vectors behind requestSeconds, applySeconds and
	// rangeSeconds, to register.
	requestVecs []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{
		storage: member.Metrics{
			Apply: apply.Metrics{MVCC: mvcc.NewMetrics(), Lease: lease.NewMetrics()},
			WAL:   wal.NewMetrics(),
			Snap:  snap.NewMetrics(),
		},
		transport: transport.NewMetrics(),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "leader_changes_seen_total",
			Help: "The number of leader changes seen.",
		}),
		promoted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "learner_promote_successes",
			Help: "The total number of successful learner promotions while this member is leader.",
		}),
		promoteFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "learner_promote_failures",
			Help: "The total number of failed learner promotions (likely learner not ready) while this member is leader.",
		}, []string{"Reason"}),
		proposalsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "proposals_failed_total",
			Help: "The total number of failed proposals seen.",
		}),
		slowApplies: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "slow_apply_total",
			Help: "The total number of slow apply requests (likely overloaded from slow disk).",
		}),
		readIndexFails: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "read_indexes_failed_total",
			Help: "The total number of failed read indexes seen.",
		}),
		slowReadIndex: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "slow_read_indexes_total",
			Help: "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
		}),
		snapshotApplying: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "server", Name: "snapshot_apply_in_progress_total",
			Help: "1 if the server is applying the incoming snapshot. 0 if none.",
		}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd_debugging", Subsystem: "server", Name: "lease_expired_total",
			Help: "The total number of expired leases.",
		}),
		backendCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
			Help:    "The latency distributions of commit called by backend.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		defragSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_defrag_duration_seconds",
			Help:    "The latency distribution of backend defragmentation.",
			Buckets: prometheus.ExponentialBuckets(.1, 2, 13),
		}),
		defragInflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "defrag_inflight",
			Help: "Whether or not defrag is active on the member. 1 means active, 0 means not.",
		}),
		backendSnapshot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_snapshot_duration_seconds",
			Help:    "The latency distribution of backend snapshots.",
			Buckets: prometheus.ExponentialBuckets(.01, 2, 17),
		}),
	}
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "server", Name: "request_duration_seconds",
		Help:    "Response latency distribution in seconds for each type.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"type", "success"})
	applies := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "server", Name: "apply_duration_seconds",
		Help:    "The latency distributions of v2 apply called by backend.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
	}, []string{"version", "op", "success"})
	ranges := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "server", Name: "range_duration_seconds",
		Help:    "The latency distributions of txn.Range",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
	}, []string{"success"})
	m.requestVecs = []prometheus.Collector{requests, applies, ranges}
	// Children are made on first use, as etcd's series appear only once
	// observed; resolving them here keeps label lookups off the request
	// paths.
	m.requestSeconds = map[string][2]prometheus.Observer{}
	m.applySeconds = map[string][2]prometheus.Observer{}
	for _, t := range append(apply.RequestTypes(), "ReadonlyTxn") {
		m.requestSeconds[t] = [2]prometheus.Observer{lazyObserver(requests, t, "false"), lazyObserver(requests, t, "true")}
		m.applySeconds[t] = [2]prometheus.Observer{lazyObserver(applies, "v3", t, "false"), lazyObserver(applies, "v3", t, "true")}
	}
	m.rangeSeconds = [2]prometheus.Observer{lazyObserver(ranges, "false"), lazyObserver(ranges, "true")}
	return m
}

// lazyObserver is a child of vec, made on its first observation (so that
// the series appears then, as etcd's do) and kept: later observations
// cost an atomic load, not a label lookup.
func lazyObserver(vec *prometheus.HistogramVec, labels ...string) prometheus.Observer {
	return &lazyChild{vec: vec, labels: labels}
}

type lazyChild struct {
	once   sync.Once
	vec    *prometheus.HistogramVec
	labels []string
	child  prometheus.Observer
}

func (l *lazyChild) Observe(v float64) {
	l.once.Do(func() { l.child = l.vec.WithLabelValues(l.labels...) })
	l.child.Observe(v)
}

// register registers every series, the gauges reading s when scraped.
func (m *metrics) register(reg prometheus.Registerer, s *Server) {
	gauge := func(ns, sub, name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, fn)
	}
	// constant is a series whose value Cairn never changes; see each use.
	constant := func(ns, sub, name, help string, typ prometheus.ValueType, v float64) prometheus.Collector {
		return constCollector{prometheus.MustNewConstMetric(
			prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, nil, nil), typ, v)}
	}
	info := func(name, help, label, value string) prometheus.Collector {
		return constCollector{prometheus.MustNewConstMetric(
			prometheus.NewDesc(prometheus.BuildFQName("etcd", "server", name), help, []string{label}, nil),
			prometheus.GaugeValue, 1, value)}
	}
	cs := []prometheus.Collector{
		m.leaderChanges, m.promoted, m.promoteFailed, m.proposalsFailed, m.slowApplies, m.readIndexFails, m.slowReadIndex, m.snapshotApplying,
		m.leasesExpired, m.backendCommit, m.backendSnapshot, m.defragSeconds, m.defragInflight,
		gauge("etcd", "server", "has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", func() float64 {
			return boolGauge(s.rn != nil && s.rn.Lead() != 0)
		}),
		gauge("etcd", "server", "is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", func() float64 {
			return boolGauge(s.rn != nil && s.rn.Lead() == s.st.MemberID)
		}),
		gauge("etcd", "server", "is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", func() float64 {
			for _, mb := range s.applier.Members() {
				if mb.ID == s.st.MemberID {
					return boolGauge(mb.IsLearner)
				}
			}
			return 0
		}),
		gauge("etcd", "server", "proposals_committed_total", "The total number of consensus proposals committed.", func() float64 {
			if s.rn == nil {
				return float64(s.AppliedIndex())
			}
			return float64(s.rn.CommitIndex())
		}),
		gauge("etcd", "server", "proposals_applied_total", "The total number of consensus proposals applied.",
			func() float64 { return float64(s.AppliedIndex()) }),
		gauge("etcd", "server", "proposals_pending", "The current number of pending proposals to commit.",
			func() float64 { return float64(s.wait.len()) }),
		gauge("etcd", "server", "quota_backend_bytes", "Current backend storage quota size in bytes.",
			func() float64 { return float64(s.cfg.QuotaBackendBytes) }),
		alarmSeries{s: s, desc: prometheus.NewDesc("etcd_debugging_server_alarms",
			"Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for 'alarm_type' label with type of this alarm",
			[]string{"server_id", "alarm_type"}, nil)},
		info("id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
			"server_id", membership.IDString(s.st.MemberID)),
		info("go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.",
			"server_go_version", runtime.Version()),
		newStoreStats(s),
		gauge("etcd_debugging", "mvcc", "watch_stream_total", "Total number of watch streams.",
			func() float64 { return float64(s.applier.Watchable().Stats().Streams) }),
		gauge("etcd_debugging", "mvcc", "watcher_total", "Total number of watchers.",
			func() float64 { return float64(s.applier.Watchable().Stats().Watchers) }),
		gauge("etcd_debugging", "mvcc", "slow_watcher_total", "Total number of unsynced slow watchers.",
			func() float64 { return float64(s.applier.Watchable().Stats().Slow) }),
		gauge("os", "fd", "used", "The number of used file descriptors.", func() float64 { return float64(fdUsed()) }),
		gauge("os", "fd", "limit", "The file descriptor limit.", func() float64 { return float64(FDLimit()) }),
		knownPeers{s: s, desc: prometheus.NewDesc("etcd_network_known_peers",
			"The current number of known peers.", []string{"Local", "Remote"}, nil)},

		// Mechanisms Cairn does not have; their values are what they
		// truly are here (README: "Metrics").
		// bbolt's commit phases: a pebble commit has no rebalance or
		// spill, and is timed whole in backend_commit_duration_seconds.
		prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd_debugging", Subsystem: "disk", Name: "backend_commit_rebalance_duration_seconds",
			Help: "The latency distributions of commit.rebalance called by bboltdb backend.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd_debugging", Subsystem: "disk", Name: "backend_commit_spill_duration_seconds",
			Help: "The latency distributions of commit.spill called by bboltdb backend.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd_debugging", Subsystem: "disk", Name: "backend_commit_write_duration_seconds",
			Help: "The latency distributions of commit.write called by bboltdb backend.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "etcd_debugging", Subsystem: "auth", Name: "revision",
			Help: "The current revision of auth store."}, func() float64 { return float64(s.Auth().Revision()) }),
		// No v2 store: no v2 watchers or TTL keys.
		constant("etcd_debugging", "store", "watchers", "Count of currently active watchers.", prometheus.GaugeValue, 0),
		constant("etcd_debugging", "store", "expires_total", "Total number of expired keys.", prometheus.CounterValue, 0),
		constant("etcd_debugging", "store", "watch_requests_total", "Total number of incoming watch requests (new or reestablished).", prometheus.CounterValue, 0),
		// No gRPC proxy: a member serves clients itself.
		constant("etcd", "grpc_proxy", "cache_hits_total", "Total number of cache hits", prometheus.GaugeValue, 0),
		constant("etcd", "grpc_proxy", "cache_misses_total", "Total number of cache misses", prometheus.GaugeValue, 0),
		constant("etcd", "grpc_proxy", "cache_keys_total", "Total number of keys/ranges cached", prometheus.GaugeValue, 0),
		constant("etcd", "grpc_proxy", "events_coalescing_total", "Total number of events coalescing", prometheus.CounterValue, 0),
		constant("etcd", "grpc_proxy", "watchers_coalescing_total", "Total number of current watchers coalescing", prometheus.GaugeValue, 0),
	}
	cs = append(cs, m.requestVecs...)
	cs = append(cs, m.storage.Apply.MVCC.Collectors()...)
	cs = append(cs, m.storage.Apply.Lease.Collectors()...)
	cs = append(cs, m.storage.WAL.Collectors()...)
	cs = append(cs, m.storage.Snap.Collectors()...)
	cs = append(cs, m.transport.Collectors()...)
	reg.MustRegister(cs...)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// constCollector is one series whose value never changes.
type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// storeStats are the gauges read from the applier's Stats, taken once a
// scrape: each take asks pebble for its metrics.
type storeStats struct {
	s      *Server
	series []storeSeries
}

type storeSeries struct {
	desc  *prometheus.Desc
	value func(apply.Stats) float64
}

func newStoreStats(s *Server) storeStats {
	series := func(ns, name, help string, value func(apply.Stats) float64) storeSeries {
		return storeSeries{prometheus.NewDesc(prometheus.BuildFQName(ns, "mvcc", name), help, nil, nil), value}
	}
	return storeStats{s: s, series: []storeSeries{
		series("etcd", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.",
			func(st apply.Stats) float64 { return float64(st.Backend.Total) }),
		series("etcd", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.",
			func(st apply.Stats) float64 { return float64(st.Backend.InUse) }),
		series("etcd", "db_open_read_transactions", "The number of currently open read transactions",
			func(st apply.Stats) float64 { return float64(st.Backend.OpenReadViews) }),
		series("etcd_debugging", "keys_total", "Total number of keys.",
			func(st apply.Stats) float64 { return float64(st.Store.Keys) }),
		series("etcd_debugging", "current_revision", "The current revision of store.",
			func(st apply.Stats) float64 { return float64(st.Store.Rev) }),
		series("etcd_debugging", "compact_revision", "The revision of the last compaction in store.",
			func(st apply.Stats) float64 { return float64(st.Store.CompactRev) }),
	}}
}

func (c storeStats) Describe(ch chan<- *prometheus.Desc) {
	for _, se := range c.series {
		ch <- se.desc
	}
}

func (c storeStats) Collect(ch chan<- prometheus.Metric) {
	st := c.s.applier.Stats()
	for _, se := range c.series {
		ch <- prometheus.MustNewConstMetric(se.desc, prometheus.GaugeValue, se.value(st))
	}
}

// alarmSeries is etcd's etcd_debugging_server_alarms: 1 for every active
// alarm of the cluster, by member and type. etcd counts the alarms this
// member applied since it started (and keeps a cleared one's series, at
// 0); this reads the alarms in force, which survive a restart.
type alarmSeries struct {
	s    *Server
	desc *prometheus.Desc
}

func (a alarmSeries) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }
func (a alarmSeries) Collect(ch chan<- prometheus.Metric) {
	for _, am := range a.s.Alarms() {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, 1, membership.IDString(am.MemberID), am.Alarm.String())
	}
}

// knownPeers is etcd's etcd_network_known_peers: 1 for every member of
// the cluster as applied, this one included.
type knownPeers struct {
	s    *Server
	desc *prometheus.Desc
}

func (k knownPeers) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }
func (k knownPeers) Collect(ch chan<- prometheus.Metric) {
	local := membership.IDString(k.s.st.MemberID)
	for _, mb := range k.s.applier.Members() {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, 1, local, membership.IDString(mb.ID))
	}
}

func (m *metrics) leaderChanged(lead uint64) {
	if lead != 0 {
		m.leaderChanges.Inc()
	}
}

// observeRequest records a request of type typ that started at start.
func (m *metrics) observeRequest(typ string, start time.Time, err error) {
	m.requestSeconds[typ][successIndex(err)].Observe(time.Since(start).Seconds())
}

// observeApply records an entry's apply (etcd counts a compaction refused
// as compacted as a success).
func (m *metrics) observeApply(res apply.Result, took time.Duration) {
	if res.Op == "" {
		return
	}
	ok := res.Err == nil || errors.Is(res.Err, mvcc.ErrCompacted)
	m.applySeconds[res.Op][boolIndex(ok)].Observe(took.Seconds())
}

// observeRead records a range read out of the store (etcd's
// range_duration_seconds). A slow one is counted, and logged, by warnSlow.
func (m *metrics) observeRead(start time.Time, err error) {
	m.rangeSeconds[successIndex(err)].Observe(time.Since(start).Seconds())
}

func successIndex(err error) int { return boolIndex(err == nil) }

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

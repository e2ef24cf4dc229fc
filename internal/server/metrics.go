package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the core series, under etcd's names so that existing
// dashboards and alerts work.
type metrics struct {
	hasLeader          prometheus.GaugeFunc
	isLeader           prometheus.GaugeFunc
	leaderChanges      prometheus.Counter
	proposalsCommitted prometheus.Counter
	proposalsApplied   prometheus.GaugeFunc
	walFsync           prometheus.Histogram
	backendCommit      prometheus.Histogram
	dbSize             prometheus.GaugeFunc
	watchStreams       prometheus.GaugeFunc
	watchers           prometheus.GaugeFunc
	slowWatchers       prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		hasLeader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "server", Name: "has_leader",
			Help: "Whether or not a leader exists. 1 is existence, 0 is not.",
		}, func() float64 {
			if s.rn != nil && s.rn.Lead() != 0 {
				return 1
			}
			return 0
		}),
		isLeader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "server", Name: "is_leader",
			Help: "Whether or not this member is a leader. 1 if is, 0 otherwise.",
		}, func() float64 {
			if s.rn != nil && s.rn.Lead() == s.st.MemberID {
				return 1
			}
			return 0
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "leader_changes_seen_total",
			Help: "The number of leader changes seen.",
		}),
		proposalsCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "etcd", Subsystem: "server", Name: "proposals_committed_total",
			Help: "The total number of consensus proposals committed.",
		}),
		proposalsApplied: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "server", Name: "proposals_applied_total",
			Help: "The total number of consensus proposals applied.",
		}, func() float64 { return float64(s.AppliedIndex()) }),
		walFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "wal_fsync_duration_seconds",
			Help:    "The latency distributions of fsync called by WAL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		backendCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
			Help:    "The latency distributions of commit called by backend.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		dbSize: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: "mvcc", Name: "db_total_size_in_bytes",
			Help: "Total size of the underlying database physically allocated in bytes.",
		}, func() float64 { return float64(s.applier.DBSize()) }),
		watchStreams: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watch_stream_total",
			Help: "Total number of watch streams.",
		}, func() float64 { return float64(s.applier.Watchable().Stats().Streams) }),
		watchers: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watcher_total",
			Help: "Total number of watchers.",
		}, func() float64 { return float64(s.applier.Watchable().Stats().Watchers) }),
		slowWatchers: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "slow_watcher_total",
			Help: "Total number of unsynced slow watchers.",
		}, func() float64 { return float64(s.applier.Watchable().Stats().Slow) }),
	}
	reg.MustRegister(m.hasLeader, m.isLeader, m.leaderChanges, m.proposalsCommitted, m.proposalsApplied,
		m.walFsync, m.backendCommit, m.dbSize, m.watchStreams, m.watchers, m.slowWatchers)
	return m
}

func (m *metrics) leaderChanged(lead uint64) {
	if lead != 0 {
		m.leaderChanges.Inc()
	}
}

func (m *metrics) walSync(d time.Duration) { m.walFsync.Observe(d.Seconds()) }

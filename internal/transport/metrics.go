package transport

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the transport's series, under etcd's names and labels
// (member IDs in hex). Series per peer appear once there is something to
// count, as etcd's. The caller registers Collectors.
//
// A peer's children are resolved once, when its stream starts, so sending
// a message costs an atomic add, not a label lookup.
type Metrics struct {
	activePeers       *prometheus.GaugeVec   // Local, Remote
	disconnectedPeers *prometheus.CounterVec // Local, Remote
	sentBytes         *prometheus.CounterVec // To
	receivedBytes     *prometheus.CounterVec // From
	sentFailures      *prometheus.CounterVec // To
	snapshotSent      *prometheus.CounterVec // To
	snapshotSendFail  *prometheus.CounterVec // To
	snapshotSendTime  *prometheus.HistogramVec
	snapshotRecv      *prometheus.CounterVec // From
	snapshotRecvFail  *prometheus.CounterVec // From
	snapshotRecvTime  *prometheus.HistogramVec
	// heartbeatFailures counts heartbeats dropped because the peer's
	// queue was full: the leader produces faster than it can send
	// (etcd's etcd_server_heartbeat_send_failures_total).
	heartbeatFailures prometheus.Counter
}

// NewMetrics makes a transport's metrics, not registered.
func NewMetrics() *Metrics {
	counters := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network", Name: name, Help: help},
			[]string{label})
	}
	seconds := func(name, help, label string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "network", Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 10)}, []string{label})
	}
	return &Metrics{
		activePeers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "etcd", Subsystem: "network", Name: "active_peers",
			Help: "The current number of active peer connections."}, []string{"Local", "Remote"}),
		disconnectedPeers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "disconnected_peers_total", Help: "The total number of disconnected peers."}, []string{"Local", "Remote"}),
		sentBytes:        counters("peer_sent_bytes_total", "The total number of bytes sent to peers.", "To"),
		receivedBytes:    counters("peer_received_bytes_total", "The total number of bytes received from peers.", "From"),
		sentFailures:     counters("peer_sent_failures_total", "The total number of send failures from peers.", "To"),
		snapshotSent:     counters("snapshot_send_success", "Total number of successful snapshot sends", "To"),
		snapshotSendFail: counters("snapshot_send_failures", "Total number of snapshot send failures", "To"),
		snapshotSendTime: seconds("snapshot_send_total_duration_seconds", "Total latency distributions of v3 snapshot sends", "To"),
		snapshotRecv:     counters("snapshot_receive_success", "Total number of successful snapshot receives", "From"),
		snapshotRecvFail: counters("snapshot_receive_failures", "Total number of snapshot receive failures", "From"),
		snapshotRecvTime: seconds("snapshot_receive_total_duration_seconds", "Total latency distributions of v3 snapshot receives", "From"),
		heartbeatFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "server",
			Name: "heartbeat_send_failures_total",
			Help: "The total number of leader heartbeat send failures (likely overloaded from slow disk)."}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.activePeers, m.disconnectedPeers, m.sentBytes, m.receivedBytes, m.sentFailures,
		m.snapshotSent, m.snapshotSendFail, m.snapshotSendTime, m.snapshotRecv, m.snapshotRecvFail, m.snapshotRecvTime,
		m.heartbeatFailures}
}

// peerMetrics are one peer's children of the per-peer series.
type peerMetrics struct {
	sentBytes, sentFailures prometheus.Counter
}

func (m *Metrics) forPeer(id uint64) peerMetrics {
	to := idString(id)
	return peerMetrics{sentBytes: m.sentBytes.WithLabelValues(to), sentFailures: m.sentFailures.WithLabelValues(to)}
}

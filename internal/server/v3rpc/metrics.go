package v3rpc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/version"
)

// grpcMetrics are the client gRPC server's series as etcd exports them
// (go-grpc-middleware's prometheus provider, which etcd uses): per method,
// calls started and handled (by status code), messages received and
// sent, and with --metrics=extensive the handling time. As etcd does, the
// series of every registered method exist, at zero, before any call.
//
// The interceptors cost a map read (methods is read-only once Register
// has run) and atomic adds: no lock, no allocation for a unary call.
type grpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	// handling is nil unless extensive.
	handling *prometheus.HistogramVec
	// methods is filled by initialize, before the server serves.
	methods map[string]*methodMetrics
}

// methodMetrics are one method's children.
type methodMetrics struct {
	started, received, sent prometheus.Counter
	// handled is by status code (codes.Code, 0..16).
	handled  [numCodes]prometheus.Counter
	handling prometheus.Observer // nil unless extensive
}

const numCodes = int(codes.Unauthenticated) + 1

func newGRPCMetrics(extensive bool) *grpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	m := &grpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server."}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure."},
			append(labels[:3:3], "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server."}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server."}, labels),
		methods: map[string]*methodMetrics{},
	}
	if extensive {
		m.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets}, labels)
	}
	return m
}

func (m *grpcMetrics) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{m.started, m.handled, m.received, m.sent}
	if m.handling != nil {
		cs = append(cs, m.handling)
	}
	return cs
}

// initialize makes the series of every method registered on g.
func (m *grpcMetrics) initialize(g Registrar) {
	for service, info := range g.GetServiceInfo() {
		for _, method := range info.Methods {
			typ := "bidi_stream"
			switch {
			case !method.IsClientStream && !method.IsServerStream:
				typ = "unary"
			case method.IsClientStream && !method.IsServerStream:
				typ = "client_stream"
			case !method.IsClientStream && method.IsServerStream:
				typ = "server_stream"
			}
			mm := &methodMetrics{
				started:  m.started.WithLabelValues(typ, service, method.Name),
				received: m.received.WithLabelValues(typ, service, method.Name),
				sent:     m.sent.WithLabelValues(typ, service, method.Name),
			}
			for c := range mm.handled {
				mm.handled[c] = m.handled.WithLabelValues(typ, service, method.Name, codes.Code(c).String())
			}
			if m.handling != nil {
				mm.handling = m.handling.WithLabelValues(typ, service, method.Name)
			}
			m.methods["/"+service+"/"+method.Name] = mm
		}
	}
}

// done records a call's end, as the provider does: its code, and its
// handling time if extensive.
func (mm *methodMetrics) done(err error, start time.Time) {
	mm.handled[codeOf(err)].Inc()
	if mm.handling != nil {
		mm.handling.Observe(time.Since(start).Seconds())
	}
}

// codeOf is the status code gRPC sends for err (context errors as gRPC
// maps them).
func codeOf(err error) codes.Code {
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	if c := s.Code(); int(c) < numCodes {
		return c
	}
	return codes.Unknown
}

// countedStream counts every SendMsg and RecvMsg, failed ones included,
// as the provider does.
type countedStream struct {
	grpc.ServerStream
	m *methodMetrics
}

func (s *countedStream) SendMsg(msg any) error {
	err := s.ServerStream.SendMsg(msg)
	s.m.sent.Inc()
	return err
}

func (s *countedStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	s.m.received.Inc()
	return err
}

// clientRequests is etcd's etcd_server_client_requests_total: calls by
// kind (unary, stream) and the client's API version (its
// "client-api-version" metadata). The children of the versions seen are
// kept in copy-on-write maps, one per kind, so a call costs a map read.
type clientRequests struct {
	vec *prometheus.CounterVec
	mu  sync.Mutex // serializes writers of byVersion
	// byVersion maps a version to its child, for unary calls (0) and
	// streams (1). Replaced, never modified, under mu.
	byVersion [2]atomic.Pointer[map[string]prometheus.Counter]
}

const (
	unaryCall  = 0
	streamCall = 1
)

func newClientRequests() *clientRequests {
	c := &clientRequests{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "client_requests_total",
		Help: "The total number of client requests per client version.",
	}, []string{"type", "client_api_version"})}
	for i := range c.byVersion {
		c.byVersion[i].Store(&map[string]prometheus.Counter{})
	}
	return c
}

// count counts a call of kind (unaryCall, streamCall) from the client of
// ctx. A version that is not UTF-8 fails the call, as etcd's.
func (c *clientRequests) count(ctx context.Context, kind int) error {
	version := "unknown"
	if vs := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataClientAPIVersionKey); len(vs) > 0 {
		version = vs[0]
	}
	if ctr, ok := (*c.byVersion[kind].Load())[version]; ok {
		ctr.Inc()
		return nil
	}
	if !utf8.ValidString(version) {
		return rpctypes.ErrGRPCInvalidClientAPIVersion
	}
	c.add(kind, version).Inc()
	return nil
}

func (c *clientRequests) add(kind int, version string) prometheus.Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.byVersion[kind].Load()
	if ctr, ok := old[version]; ok {
		return ctr
	}
	next := make(map[string]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	ctr := c.vec.WithLabelValues([]string{"unary", "stream"}[kind], version)
	next[version] = ctr
	c.byVersion[kind].Store(&next)
	return ctr
}

// watchMetrics are the watch send loop's timings, under etcd's names.
type watchMetrics struct {
	// events is a response's events sent: the whole send, and per event.
	events, perEvent prometheus.Histogram
	// control is a create's or cancel's answer sent; progress a progress
	// tick's requests made.
	control, progress prometheus.Histogram
}

func newWatchMetrics() *watchMetrics {
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "etcd_debugging", Subsystem: "server",
			Name: name, Help: help, Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	}
	return &watchMetrics{
		events: h("watch_send_loop_watch_stream_duration_seconds",
			"The total duration in seconds of running through the send loop watch stream response all events."),
		perEvent: h("watch_send_loop_watch_stream_duration_per_event_seconds",
			"The average duration in seconds of running through the send loop watch stream response, per event."),
		control: h("watch_send_loop_control_stream_duration_seconds",
			"The total duration in seconds of running through the send loop control stream response."),
		progress: h("watch_send_loop_progress_duration_seconds",
			"The total duration in seconds of running through the progress loop control stream response."),
	}
}

func (w *watchMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.events, w.perEvent, w.control, w.progress}
}

// versionMetrics are etcd's etcd_server_version and etcd_cluster_version:
// the etcd release Cairn implements, and its major.minor (a cluster of
// Cairn members all run the one version).
func versionMetrics() prometheus.Collector {
	return constCollectors{
		prometheus.MustNewConstMetric(prometheus.NewDesc("etcd_server_version",
			"Which version is running. 1 for 'server_version' label with current version.", []string{"server_version"}, nil),
			prometheus.GaugeValue, 1, version.Etcd),
		prometheus.MustNewConstMetric(prometheus.NewDesc("etcd_cluster_version",
			"Which version is running. 1 for 'cluster_version' label with current cluster version", []string{"cluster_version"}, nil),
			prometheus.GaugeValue, 1, version.API),
	}
}

// constCollectors are series whose values never change.
type constCollectors []prometheus.Metric

func (c constCollectors) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c {
		ch <- m.Desc()
	}
}

func (c constCollectors) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

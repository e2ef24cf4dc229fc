package v3rpc

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/h2grpc"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/server/v3lock"
)

// grpcOverheadBytes is what a request may carry beyond --max-request-bytes
// in gRPC framing, as etcd allows.
const grpcOverheadBytes = 512 * 1024

// Service is the client API's gRPC services on a server, and the
// goroutines they run beside their handlers: the leader guard's monitor,
// the receivers of watch streams that outlive their handler (see Watch),
// and the Lock and Election services' in-process client. Close stops them
// and waits for them.
type Service struct {
	s     *server.Server
	guard *leaderGuard
	// lockElection is the Lock and Election services, on a client of
	// this Service's own KV, Lease and Watch handlers.
	lockElection *v3lock.Server
	// Metrics, registered by New on the server's registry.
	grpcMetrics *grpcMetrics
	clients     *clientRequests
	watch       *watchMetrics
	sentBytes   prometheus.Counter
	recvBytes   prometheus.Counter
	stats       requestStats

	// stopc is closed by Close; wg counts the goroutines Close waits for.
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    struct {
		sync.Mutex
		// closed refuses goroutines once Close has begun to wait.
		closed bool
	}
}

// New returns the services on s, registers their metrics on the server's
// registry, and starts the leader guard's monitor.
func New(s *server.Server) *Service {
	cfg := s.Config()
	v := &Service{s: s, stopc: make(chan struct{}),
		stats:       requestStats{lg: cfg.Logger, warn: cfg.WarningUnaryRequestDuration},
		grpcMetrics: newGRPCMetrics(cfg.Metrics == "extensive"),
		clients:     newClientRequests(),
		watch:       newWatchMetrics(),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "client_grpc_sent_bytes_total", Help: "The total number of bytes sent to grpc clients."}),
		recvBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "client_grpc_received_bytes_total", Help: "The total number of bytes received from grpc clients."}),
	}
	cs := append(v.grpcMetrics.collectors(), v.watch.collectors()...)
	cs = append(cs, v.clients.vec, v.sentBytes, v.recvBytes, versionMetrics())
	cfg.Registry.MustRegister(cs...)
	v.guard = newLeaderGuard(s)
	v.goAttached(func() { v.guard.monitor(v.stopc) })
	v.lockElection = v3lock.New(&kvServer{s: s}, &leaseServer{s: s}, v.newWatchServer(), cfg.Logger)
	return v
}

// ServerOptions are the client gRPC server's options for the server's
// limits: its request sizes, --max-concurrent-streams and the
// --grpc-keepalive-* settings (a client that pings more often than
// --grpc-keepalive-min-time, or at all with no stream open, is sent
// GOAWAY "too_many_pings", as etcd's), and the slow-request warning.
func (v *Service) ServerOptions() []grpc.ServerOption {
	cfg := v.s.Config()
	return []grpc.ServerOption{
		// One interceptor each: gRPC builds a closure per call for
		// every interceptor of a chain longer than one.
		grpc.ChainUnaryInterceptor(v.unary),
		grpc.ChainStreamInterceptor(v.stream),
		grpc.ForceServerCodecV2(newCodec(v.sentBytes, v.recvBytes)),
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepAliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.GRPCKeepAliveInterval, Timeout: cfg.GRPCKeepAliveTimeout}),
		// Reused workers keep the stacks they grew: a fresh goroutine
		// per request spent a third of the server's CPU on stack growth
		// (runtime.copystack) in a profile of serializable ranges. A
		// worker is held for the whole of its stream (a watch, a
		// keep-alive) and of a write (until applied), and a request
		// that finds none idle gets a fresh goroutine: with 64 workers,
		// 100 clients putting spent 3.6% of the leader's CPU growing
		// stacks, 1.5% with 256. An idle worker costs its stack.
		grpc.NumStreamWorkers(uint32(max(256, 16*runtime.NumCPU()))),
		// Static flow-control windows, as the peer transport's: gRPC
		// then stops estimating the bandwidth-delay product, which sends
		// a WINDOW_UPDATE and a PING when a request arrives on a
		// connection with no such PING outstanding (with one request at a
		// time, every request) and reads the client's PING ACK back. The
		// client pays most: a put with one client cost the benchmark tool
		// 3.3-3.6 CPU-s per 10k with them and 2.6-2.8 without. The stream
		// window holds a request of --max-request-bytes, so it waits for
		// no window update; the connection's is the most the estimator
		// would grow it to (16 MiB).
		grpc.InitialWindowSize(streamWindowBytes(cfg.MaxRequestBytes)),
		grpc.InitialConnWindowSize(connWindowBytes),
	}
}

// connWindowBytes is a client connection's HTTP/2 flow-control window:
// the limit of the window gRPC's estimator grows.
const connWindowBytes = 16 << 20

// streamWindowBytes is a client stream's HTTP/2 flow-control window: a
// request of maxRequest bytes and its framing, at least 1 MiB and at most
// connWindowBytes.
func streamWindowBytes(maxRequest int) int32 {
	return int32(min(max(maxRequest+grpcOverheadBytes, 1<<20), connWindowBytes))
}

// OwnServerOptions are ServerOptions for the client API's own server
// (h2grpc, cairn's default: --own-grpc-server): the same interceptors,
// codec, limits, keepalive settings and windows.
func (v *Service) OwnServerOptions() h2grpc.Options {
	cfg := v.s.Config()
	return h2grpc.Options{
		Codec:                newCodec(v.sentBytes, v.recvBytes),
		UnaryInterceptor:     v.unary,
		StreamInterceptor:    v.stream,
		MaxRecvMsgSize:       cfg.MaxRequestBytes + grpcOverheadBytes,
		MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		StreamWindow:         streamWindowBytes(cfg.MaxRequestBytes),
		ConnWindow:           connWindowBytes,
		KeepaliveTime:        cfg.GRPCKeepAliveInterval,
		KeepaliveTimeout:     cfg.GRPCKeepAliveTimeout,
		KeepaliveMinTime:     cfg.GRPCKeepAliveMinTime,
		Workers:              max(256, 16*runtime.NumCPU()),
		Inline:               inlineCall,
		Defer:                v.deferCall,
	}
}

// Registrar is a server the services register on: grpc-go's
// (*grpc.Server, built with ServerOptions) or h2grpc's (built with
// OwnServerOptions).
type Registrar interface {
	grpc.ServiceRegistrar
	GetServiceInfo() map[string]grpc.ServiceInfo
}

// Register adds the services to g.
func (v *Service) Register(g Registrar) {
	s := v.s
	pb.RegisterKVServer(g, &kvServer{s: s})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s})
	pb.RegisterClusterServer(g, &clusterServer{s: s})
	pb.RegisterWatchServer(g, v.newWatchServer())
	pb.RegisterLeaseServer(g, &leaseServer{s: s})
	pb.RegisterAuthServer(g, &authServer{s: s})
	v.lockElection.Register(g)
	v.grpcMetrics.initialize(g)
}

func (v *Service) newWatchServer() *watchServer {
	return &watchServer{s: v.s, goAttached: v.goAttached, metrics: v.watch}
}

// unary is every unary call's interceptor: the gRPC metrics, then, as
// etcd's, the client's version counted and the leader guard; outermost,
// the request stats line (its time includes the guard's, as etcd's).
func (v *Service) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := callStart(ctx)
	mm := v.grpcMetrics.methods[info.FullMethod]
	if mm != nil {
		mm.started.Inc()
		mm.received.Inc()
	}
	resp, err := v.guardedUnary(ctx, req, info, handler)
	if mm != nil {
		// As go-grpc-middleware's: the response counts as sent, error or not.
		mm.sent.Inc()
		mm.done(err, start)
	}
	v.stats.observe(ctx, start, info.FullMethod, req, resp)
	return resp, err
}

func (v *Service) guardedUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := v.clients.count(ctx, unaryCall); err != nil {
		return nil, err
	}
	if v.s.IsLearner() && !learnerServes(req) {
		return nil, rpctypes.ErrGRPCNotSupportedForLearner
	}
	return v.guard.unary(ctx, req, info, handler)
}

// stream is every stream's interceptor, as unary.
func (v *Service) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	mm := v.grpcMetrics.methods[info.FullMethod]
	if mm == nil {
		return v.guardedStream(srv, ss, info, handler)
	}
	start := time.Now()
	mm.started.Inc()
	err := v.guardedStream(srv, &countedStream{ServerStream: ss, m: mm}, info, handler)
	mm.done(err, start)
	return err
}

func (v *Service) guardedStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := v.clients.count(ss.Context(), streamCall); err != nil {
		return err
	}
	if v.s.IsLearner() && info.FullMethod != "/etcdserverpb.Maintenance/Snapshot" {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	return v.guard.stream(srv, ss, info, handler)
}

// Close stops the service's goroutines and waits for them. Call it once,
// after the gRPC server's Stop has returned: Stop ends every stream, which
// ends the watch receivers Close waits for.
func (v *Service) Close() {
	// First: the in-process client's watch streams hold goroutines
	// (receivers) that wg counts.
	v.lockElection.Close()
	v.mu.Lock()
	v.mu.closed = true
	v.mu.Unlock()
	close(v.stopc)
	v.wg.Wait()
}

// goAttached runs fn in a goroutine that Close waits for; once Close has
// begun, it refuses (false).
func (v *Service) goAttached(fn func()) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.closed {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		fn()
	}()
	return true
}

// header fills h (allocating it if nil) with the member's identity, and
// with the store's revision if the response carries none.
func header(s *server.Server, h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId = s.ClusterID()
	h.MemberId = s.ID()
	h.RaftTerm = s.Term()
	if h.Revision == 0 {
		h.Revision = s.Rev()
	}
	return h
}

// learnerServes reports whether a learner serves req: as etcd's, only
// Status and serializable ranges (a learner's state may lag, and it has no
// vote to confirm a read with).
func learnerServes(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.Serializable
	}
	return false
}

// toGRPCError maps the server's errors to etcd's.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if e, ok := authErrors[err]; ok {
		return e
	}
	switch {
	case errors.Is(err, mvcc.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, mvcc.ErrFutureRev):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, mvcc.ErrKeyNotFound):
		return rpctypes.ErrGRPCKeyNotFound
	case errors.Is(err, mvcc.ErrLeaseNotFound), errors.Is(err, lease.ErrNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, lease.ErrExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, lease.ErrTTLTooLarge):
		return rpctypes.ErrGRPCLeaseTTLTooLarge
	case errors.Is(err, mvcc.ErrDuplicateKey):
		return rpctypes.ErrGRPCDuplicateKey
	case errors.Is(err, server.ErrNoLeader):
		return rpctypes.ErrGRPCNoLeader
	case errors.Is(err, server.ErrTimeout):
		return rpctypes.ErrGRPCTimeout
	case errors.Is(err, server.ErrStopped):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, server.ErrCanceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, server.ErrTooManyRequests):
		return rpctypes.ErrGRPCRequestTooManyRequests
	case errors.Is(err, server.ErrRequestTooLarge):
		return rpctypes.ErrGRPCRequestTooLarge
	case errors.Is(err, server.ErrNoSpace):
		return rpctypes.ErrGRPCNoSpace
	case errors.Is(err, server.ErrCorrupt):
		return rpctypes.ErrGRPCCorrupt
	case errors.Is(err, membership.ErrIDRemoved), errors.Is(err, membership.ErrIDNotFound):
		return rpctypes.ErrGRPCMemberNotFound
	case errors.Is(err, membership.ErrIDExists):
		return rpctypes.ErrGRPCMemberExist
	case errors.Is(err, membership.ErrPeerURLExists):
		return rpctypes.ErrGRPCPeerURLExist
	case errors.Is(err, membership.ErrMemberNotLearner):
		return rpctypes.ErrGRPCMemberNotLearner
	case errors.Is(err, membership.ErrTooManyLearners):
		return rpctypes.ErrGRPCTooManyLearners
	case errors.Is(err, server.ErrNotEnoughStartedMembers):
		return rpctypes.ErrMemberNotEnoughStarted
	case errors.Is(err, server.ErrLearnerNotReady):
		return rpctypes.ErrGRPCLearnerNotReady
	case errors.Is(err, server.ErrNotLeader):
		return rpctypes.ErrGRPCNotLeader
	case errors.Is(err, server.ErrUnhealthy):
		return rpctypes.ErrGRPCUnhealthy
	case errors.Is(err, server.ErrBadLeaderTransferee):
		return rpctypes.ErrGRPCBadLeaderTransferee
	case errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return status.Error(codes.Unknown, err.Error())
}

package v3rpc

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/server"
)

// grpcOverheadBytes is what a request may carry beyond --max-request-bytes
// in gRPC framing, as etcd allows.
const grpcOverheadBytes = 512 * 1024

// Service is the client API's gRPC services on a server, and the
// goroutines they run beside their handlers: the leader guard's monitor,
// and the receivers of watch streams that outlive their handler (see
// Watch). Close stops them and waits for them.
type Service struct {
	s     *server.Server
	guard *leaderGuard

	// stopc is closed by Close; wg counts the goroutines Close waits for.
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    struct {
		sync.Mutex
		// closed refuses goroutines once Close has begun to wait.
		closed bool
	}
}

// New returns the services on s, and starts the leader guard's monitor.
func New(s *server.Server) *Service {
	v := &Service{s: s, stopc: make(chan struct{})}
	v.guard = newLeaderGuard(s)
	v.goAttached(func() { v.guard.monitor(v.stopc) })
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
		// The stats outermost, as etcd's: a request's time includes
		// the leader guard's.
		grpc.ChainUnaryInterceptor(newRequestStats(cfg.Logger, cfg.WarningUnaryRequestDuration), v.guard.unary),
		grpc.ChainStreamInterceptor(v.guard.stream),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepAliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.GRPCKeepAliveInterval, Timeout: cfg.GRPCKeepAliveTimeout}),
		// Reused workers keep the stacks they grew: a fresh goroutine
		// per request spent a third of the server's CPU on stack growth
		// (runtime.copystack) in a profile of serializable ranges.
		grpc.NumStreamWorkers(uint32(max(64, 16*runtime.NumCPU()))),
	}
}

// Register adds the services to g, which must have been built with
// ServerOptions.
func (v *Service) Register(g *grpc.Server) {
	s := v.s
	pb.RegisterKVServer(g, &kvServer{s: s})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s})
	pb.RegisterClusterServer(g, &clusterServer{s: s})
	pb.RegisterWatchServer(g, &watchServer{s: s, goAttached: v.goAttached})
	pb.RegisterLeaseServer(g, &leaseServer{s: s})
}

// Close stops the service's goroutines and waits for them. Call it once,
// after the gRPC server's Stop has returned: Stop ends every stream, which
// ends the watch receivers Close waits for.
func (v *Service) Close() {
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

// toGRPCError maps the server's errors to etcd's.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
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
	case errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return status.Error(codes.Unknown, err.Error())
}

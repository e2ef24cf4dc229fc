package v3rpc

import (
	"context"
	"errors"
	"math"
	"runtime"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/server"
)

// grpcOverheadBytes is what a request may carry beyond --max-request-bytes
// in gRPC framing, as etcd allows.
const grpcOverheadBytes = 512 * 1024

// ServerOptions are the client gRPC server's options for s's limits.
func ServerOptions(s *server.Server) []grpc.ServerOption {
	g := newLeaderGuard(s)
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(s.Config().MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// Reused workers keep the stacks they grew: a fresh goroutine
		// per request spent a third of the server's CPU on stack growth
		// (runtime.copystack) in a profile of serializable ranges.
		grpc.NumStreamWorkers(uint32(max(64, 16*runtime.NumCPU()))),
	}
}

// Register adds the services to g.
func Register(g *grpc.Server, s *server.Server) {
	pb.RegisterKVServer(g, &kvServer{s: s})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s})
	pb.RegisterClusterServer(g, &clusterServer{s: s})
	pb.RegisterWatchServer(g, &watchServer{s: s})
	pb.RegisterLeaseServer(g, &leaseServer{s: s})
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

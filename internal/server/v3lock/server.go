package v3lock

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/api/v3electionpb"
	"github.com/cairn-db/cairn/api/v3lockpb"
)

// errStopped is what a request gets once Close has begun.
var errStopped = rpctypes.ErrGRPCStopped

// callKey is the outgoing metadata that gives each request its own watch
// streams (see Server.call).
const callKey = "cairn-v3lock-call"

// Server is the Lock and Election services, and the in-process client
// they run on. Close ends the client's streams and waits for their
// handlers.
type Server struct {
	c *clientv3.Client
	// calls numbers requests, for callKey.
	calls atomic.Uint64

	// wg counts the stream handlers' goroutines (see spawn).
	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		// closed refuses new goroutines once Close has begun to wait.
		closed bool
	}
}

// New returns the services over the client API's own KV, Lease and Watch
// services (their handlers, called in process, with each request's
// context).
func New(kv pb.KVServer, lease pb.LeaseServer, watch pb.WatchServer, lg *zap.Logger) *Server {
	s := &Server{}
	s.c = newClient(kv, lease, watch, s.spawn, lg)
	return s
}

// Register adds the Lock and Election services to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	v3lockpb.RegisterLockServer(g, &lockServer{s: s})
	v3electionpb.RegisterElectionServer(g, &electionServer{s: s})
}

// Close ends the inner client (its watch and keepalive streams, and so
// their handlers) and waits for the handlers. Call it once, after the
// gRPC servers have stopped (no request runs any more).
func (s *Server) Close() {
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	s.c.Close()
	s.wg.Wait()
}

// spawn runs fn in a goroutine that Close waits for; once Close has begun,
// it refuses (false).
func (s *Server) spawn(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// call is the context the inner client serves a request with: the
// request's own (its metadata and peer say who the caller is, and the KV,
// Lease and Watch services check that caller's permissions), marked with a
// number of its own. clientv3 shares one watch stream among the watches
// whose contexts have the same outgoing metadata, and a stream's watches
// are checked as the user of the context that opened it; the mark gives
// each request its own stream, so each watch is checked as its caller.
func (s *Server) call(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, callKey, strconv.FormatUint(s.calls.Add(1), 10))
}

// session is the caller's lease as a concurrency session, orphaned at
// once as etcd's: no keepalive runs, the lease lives or expires as its
// owner keeps it. Lease 0 grants a new lease of the session's default TTL
// (60s), as etcd's does.
func (s *Server) session(ctx context.Context, lease int64) (*concurrency.Session, error) {
	sess, err := concurrency.NewSession(s.c, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	sess.Orphan()
	return sess, nil
}

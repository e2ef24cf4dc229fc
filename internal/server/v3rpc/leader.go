package v3rpc

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/internal/server"
)

// maxNoLeaderElections is how many election timeouts in a row a member
// must find no leader before it ends the streams that require one, as
// etcd: reconnecting a stream costs more than refusing a new request.
const maxNoLeaderElections = 3

var errNoLeader = errors.New("the member has no leader")

// leaderGuard serves clients that ask for a leader (the "hasleader"
// metadata that clientv3.WithRequireLeader sets): requests and new streams
// are refused with "no leader" while the member has none, and streams are
// ended once it has had none for maxNoLeaderElections election timeouts,
// so the client moves to a member that is in touch with a quorum.
type leaderGuard struct {
	s *server.Server

	mu      sync.Mutex
	streams map[*guardedStream]struct{}
}

type guardedStream struct {
	grpc.ServerStream
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (g *guardedStream) Context() context.Context { return g.ctx }

func newLeaderGuard(s *server.Server) *leaderGuard {
	return &leaderGuard{s: s, streams: map[*guardedStream]struct{}{}}
}

func requiresLeader(ctx context.Context) bool {
	v := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

func (g *leaderGuard) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if requiresLeader(ctx) && g.s.Leader() == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	return handler(ctx, req)
}

func (g *leaderGuard) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !requiresLeader(ss.Context()) {
		return handler(srv, ss)
	}
	if g.s.Leader() == 0 {
		return rpctypes.ErrGRPCNoLeader
	}
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	gs := &guardedStream{ServerStream: ss, ctx: ctx, cancel: cancel}
	g.mu.Lock()
	g.streams[gs] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.streams, gs)
		g.mu.Unlock()
	}()
	return handler(srv, gs)
}

// monitor ends the streams that require a leader once the member has had
// none for maxNoLeaderElections election timeouts. It returns when stop is
// closed or the member stops.
func (g *leaderGuard) monitor(stop <-chan struct{}) {
	election := g.s.Config().ElectionTimeout
	ticker := time.NewTicker(election)
	defer ticker.Stop()
	missed := 0
	for {
		select {
		case <-stop:
			return
		case <-g.s.Stopping():
			return
		case <-ticker.C:
		}
		if g.s.Leader() != 0 {
			missed = 0
			continue
		}
		if missed++; missed < maxNoLeaderElections {
			continue
		}
		g.mu.Lock()
		for gs := range g.streams {
			gs.cancel(errNoLeader)
		}
		g.mu.Unlock()
	}
}

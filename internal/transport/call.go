package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const mdMethod = "cairn-method"

// Calls serves requests a peer forwards to this member (a follower's lease
// keep-alives, for the leader): method names the request, req and the
// answer are the caller's encoding. A refusal should not use the codes
// Unavailable or DeadlineExceeded, which the caller reads as a broken
// connection.
type Calls interface {
	HandleCall(ctx context.Context, method string, req []byte) ([]byte, error)
}

// Call sends req to peer to's Calls and returns its answer. Calls share one
// connection per peer, opened at the first call; an error from the peer's
// handler comes back as its gRPC status.
func (t *Transport) Call(ctx context.Context, to uint64, method string, req []byte) ([]byte, error) {
	conn, err := t.callConn(to)
	if err != nil {
		return nil, err
	}
	ctx = metadata.AppendToOutgoingContext(t.outgoingContext(ctx, to), mdMethod, method)
	var resp []byte
	if err := conn.Invoke(ctx, "/"+serviceName+"/Call", &req, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
		if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded {
			// The connection, not the peer's answer: dial again.
			t.dropCallConn(to, conn)
		}
		return nil, err
	}
	return resp, nil
}

// dropCallConn closes a call connection that failed, so the next call
// dials again, at the peer's next URL.
func (t *Transport) dropCallConn(to uint64, conn *grpc.ClientConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.mu.peers[to]; ok && p.callConn == conn {
		p.callConn.Close()
		p.callConn = nil
		p.callURL++
	}
}

func (t *Transport) callConn(to uint64) (*grpc.ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.stopped {
		return nil, fmt.Errorf("transport: stopped")
	}
	p, ok := t.mu.peers[to]
	if !ok {
		return nil, fmt.Errorf("transport: no peer %s", idString(to))
	}
	if p.callConn == nil {
		conn, err := dial(p.urls[p.callURL%len(p.urls)], t.cfg.TLS, t.cfg.LocalAddr)
		if err != nil {
			return nil, err
		}
		p.callConn = conn
	}
	return p.callConn, nil
}

// handleCall is the server side of Call.
func (t *Transport) handleCall(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	if _, err := t.checkStream(ctx); err != nil {
		return nil, err
	}
	var req []byte
	if err := dec(&req); err != nil {
		return nil, err
	}
	if t.cfg.Calls == nil {
		return nil, fmt.Errorf("transport: this member serves no calls")
	}
	method := metadata.ValueFromIncomingContext(ctx, mdMethod)
	if len(method) != 1 {
		return nil, fmt.Errorf("transport: a call without a method")
	}
	resp, err := t.cfg.Calls.HandleCall(ctx, method[0], req)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// handleCluster answers FetchCluster. It asks nothing of the caller: a
// member joining the cluster knows neither the cluster's ID nor its own.
func (t *Transport) handleCluster(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var req []byte
	if err := dec(&req); err != nil {
		return nil, err
	}
	if t.cfg.Cluster == nil {
		return nil, status.Error(codes.Unimplemented, "transport: this member does not describe its cluster")
	}
	resp, err := t.cfg.Cluster()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &resp, nil
}

// FetchCluster asks the member at peer URL rawURL to describe its
// cluster (its Config.Cluster), for a member joining it; tlsConfig is
// what https:// URLs are dialled with (Config.TLS), and local, if set, the
// address to dial from (Config.LocalAddr).
func FetchCluster(ctx context.Context, rawURL string, tlsConfig *tls.Config, local net.IP) ([]byte, error) {
	conn, err := dial(rawURL, tlsConfig, local)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var req, resp []byte
	if err := conn.Invoke(ctx, "/"+serviceName+"/Cluster", &req, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return nil, err
	}
	return resp, nil
}

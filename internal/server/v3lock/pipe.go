package v3lock

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// pipe is one gRPC stream in process: a handler (a service's streaming
// method) runs in a goroutine on the server end, and the client end is
// what the inner client reads and writes. Messages pass by pointer over
// unbuffered channels, so each Send returns once the other end has the
// message, and the order is the senders'.
//
// The client's context is the stream's, as in gRPC: the handler sees it
// (with the caller's metadata and peer) through serverCtx, which is also
// cancelled once the handler returns. Cancelling the client's context
// ends the stream at both ends.
type pipe[Req, Resp any] struct {
	clientCtx context.Context
	serverCtx context.Context
	reqc      chan *Req
	respc     chan *Resp
	// sendClosed is closed by the client's CloseSend: the handler's Recv
	// then returns io.EOF.
	sendClosed chan struct{}
	// done is closed when the handler has returned, after handlerErr is
	// set.
	done       chan struct{}
	handlerErr error
}

// openPipe starts handler on a new stream with the client's context ctx,
// in a goroutine that spawn runs (and its owner waits for); it returns the
// client's end, or errStopped once spawn refuses.
func openPipe[Req, Resp any](ctx context.Context, spawn func(func()) bool, handler func(*serverEnd[Req, Resp]) error) (*clientEnd[Req, Resp], error) {
	serverCtx, cancel := context.WithCancel(ctx)
	p := &pipe[Req, Resp]{
		clientCtx:  ctx,
		serverCtx:  serverCtx,
		reqc:       make(chan *Req),
		respc:      make(chan *Resp),
		sendClosed: make(chan struct{}),
		done:       make(chan struct{}),
	}
	if !spawn(func() {
		defer cancel()
		err := handler(&serverEnd[Req, Resp]{p})
		if err != nil {
			// What gRPC would send of it: a status.
			err = status.Convert(err).Err()
		}
		p.handlerErr = err
		close(p.done)
	}) {
		cancel()
		return nil, errStopped
	}
	return &clientEnd[Req, Resp]{p: p}, nil
}

// clientEnd is a pipe's client end: a grpc.BidiStreamingClient, and a
// grpc.ServerStreamingClient for a stream the client does not write.
type clientEnd[Req, Resp any] struct {
	p *pipe[Req, Resp]
	// sendClosed is the client's own: CloseSend closes p.sendClosed once.
	// Only the client's one sending goroutine touches it, as gRPC allows.
	sendClosed bool
}

func (c *clientEnd[Req, Resp]) Send(r *Req) error {
	if c.sendClosed {
		return fmt.Errorf("v3lock: send after CloseSend")
	}
	select {
	case c.p.reqc <- r:
		return nil
	case <-c.p.done:
		// As gRPC's: the stream has ended; Recv says why.
		return io.EOF
	case <-c.p.clientCtx.Done():
		return status.FromContextError(c.p.clientCtx.Err()).Err()
	}
}

func (c *clientEnd[Req, Resp]) Recv() (*Resp, error) {
	select {
	case r := <-c.p.respc:
		return r, nil
	case <-c.p.done:
		if c.p.handlerErr == nil {
			return nil, io.EOF
		}
		return nil, c.p.handlerErr
	case <-c.p.clientCtx.Done():
		return nil, status.FromContextError(c.p.clientCtx.Err()).Err()
	}
}

func (c *clientEnd[Req, Resp]) CloseSend() error {
	if !c.sendClosed {
		c.sendClosed = true
		close(c.p.sendClosed)
	}
	return nil
}

func (c *clientEnd[Req, Resp]) Header() (metadata.MD, error) { return nil, nil }
func (c *clientEnd[Req, Resp]) Trailer() metadata.MD         { return nil }
func (c *clientEnd[Req, Resp]) Context() context.Context     { return c.p.clientCtx }

func (c *clientEnd[Req, Resp]) SendMsg(m any) error {
	r, ok := m.(*Req)
	if !ok {
		return fmt.Errorf("v3lock: SendMsg of a %T", m)
	}
	return c.Send(r)
}

func (c *clientEnd[Req, Resp]) RecvMsg(m any) error {
	r, err := c.Recv()
	if err != nil {
		return err
	}
	return copyMessage(m, r)
}

// serverEnd is a pipe's handler end: a grpc.BidiStreamingServer, and a
// grpc.ServerStreamingServer.
type serverEnd[Req, Resp any] struct {
	p *pipe[Req, Resp]
}

func (s *serverEnd[Req, Resp]) Send(r *Resp) error {
	select {
	case s.p.respc <- r:
		return nil
	case <-s.p.serverCtx.Done():
		return status.FromContextError(s.p.serverCtx.Err()).Err()
	}
}

func (s *serverEnd[Req, Resp]) Recv() (*Req, error) {
	select {
	case r := <-s.p.reqc:
		return r, nil
	case <-s.p.sendClosed:
		return nil, io.EOF
	case <-s.p.serverCtx.Done():
		return nil, status.FromContextError(s.p.serverCtx.Err()).Err()
	}
}

func (s *serverEnd[Req, Resp]) SetHeader(metadata.MD) error  { return nil }
func (s *serverEnd[Req, Resp]) SendHeader(metadata.MD) error { return nil }
func (s *serverEnd[Req, Resp]) SetTrailer(metadata.MD)       {}
func (s *serverEnd[Req, Resp]) Context() context.Context     { return s.p.serverCtx }

func (s *serverEnd[Req, Resp]) SendMsg(m any) error {
	r, ok := m.(*Resp)
	if !ok {
		return fmt.Errorf("v3lock: SendMsg of a %T", m)
	}
	return s.Send(r)
}

func (s *serverEnd[Req, Resp]) RecvMsg(m any) error {
	r, err := s.Recv()
	if err != nil {
		return err
	}
	return copyMessage(m, r)
}

// copyMessage sets dst, a message gRPC's RecvMsg would decode into, to a
// copy of src.
func copyMessage(dst, src any) error {
	d, ok := dst.(proto.Message)
	s, ok2 := src.(proto.Message)
	if !ok || !ok2 {
		return fmt.Errorf("v3lock: RecvMsg into a %T", dst)
	}
	proto.Reset(d)
	proto.Merge(d, s)
	return nil
}

// The ends are gRPC streams.
var (
	_ grpc.ClientStream = (*clientEnd[int, int])(nil)
	_ grpc.ServerStream = (*serverEnd[int, int])(nil)
)

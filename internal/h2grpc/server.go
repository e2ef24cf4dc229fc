package h2grpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
)

// Options are a Server's settings; zero values take the defaults named.
type Options struct {
	// Codec encodes answers and decodes requests. Required.
	Codec encoding.CodecV2
	// UnaryInterceptor and StreamInterceptor wrap every call, as
	// grpc.ChainUnaryInterceptor's single interceptor does.
	UnaryInterceptor  grpc.UnaryServerInterceptor
	StreamInterceptor grpc.StreamServerInterceptor
	// MaxRecvMsgSize bounds a request message. Default 4 MiB.
	MaxRecvMsgSize int
	// MaxConcurrentStreams bounds the calls open on a connection.
	// Default: unbounded (math.MaxUint32).
	MaxConcurrentStreams uint32
	// StreamWindow and ConnWindow are the flow-control windows offered to
	// clients. Defaults 1 MiB and 16 MiB.
	StreamWindow, ConnWindow int32
	// KeepaliveTime is how long a connection may stay silent before the
	// server pings it, KeepaliveTimeout how long the ping's answer may
	// take before the connection is closed. Zero Time: no pings.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// KeepaliveMinTime is the least time between a client's pings: more
	// than maxPingStrikes pings closer than that (or any ping but the
	// first with no call open) get GOAWAY "too_many_pings". Default 5 min.
	KeepaliveMinTime time.Duration
	// Workers is how many goroutines stay idle for calls (a call that
	// finds none gets a fresh goroutine). Default 256.
	Workers int
	// Inline, if set, says whether a unary call may run on the
	// connection's reader goroutine instead of a worker: one that
	// answers at once, without waiting for anything (a serializable read
	// of one key). msg is its request (uncompressed). The reader reads
	// nothing else meanwhile, and writes the answers it has when its read
	// buffer is empty: no goroutine is woken for such a call.
	Inline func(fullMethod string, msg []byte) bool
	// Defer, if set, may take a unary call the reader would hand to a
	// worker (returning true) to run it later itself: once the call can
	// be answered without waiting, it calls answer with the call's
	// context (or one derived from it) on a goroutine of its own, and
	// answer runs the call there without waiting for anything (an answer
	// beyond the client's windows goes to a worker); or it calls dispatch
	// to run the call on a worker after all. (A linearizable read waits
	// for its ReadIndex round: one goroutine then answers the round's
	// reads, where each read's worker would have been woken.)
	Defer func(ctx context.Context, fullMethod string, msg []byte, answer func(context.Context), dispatch func()) bool
	// Creds, if set, is each new connection's handshake, as grpc.Creds's:
	// it may replace the connection, and its AuthInfo is the calls'
	// peer.FromContext(ctx).AuthInfo (a TLS client certificate's CN, for
	// one). It runs on the connection's goroutine and must not block for
	// long: Stop waits for it. (Cairn's tlsutil.ServerCredentials hand
	// over connections whose TLS handshake is already done.)
	Creds credentials.TransportCredentials
}

// maxPingStrikes is how many pings too close together a connection may
// send before it is closed, as grpc-go's server allows.
const maxPingStrikes = 2

// Server is a gRPC server for the services registered on it. Register
// every service before Serve.
type Server struct {
	opts    Options
	methods map[string]*method
	info    map[string]grpc.ServiceInfo
	// work hands a call to an idle worker (see run).
	work chan func()

	mu struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		conns     map[*conn]struct{}
		stopped   bool
	}
	// wg counts Serve loops, connections and workers: Stop waits for it.
	wg sync.WaitGroup
	// workers counts the idle workers' goroutines apart, so that Stop can
	// end them after the connections.
	workers   sync.WaitGroup
	stopWork  chan struct{}
	startOnce sync.Once
	stopOnce  sync.Once
}

// method is one registered method: a unary handler or a stream handler.
type method struct {
	srv        any
	fullMethod string
	unary      grpc.MethodHandler
	stream     grpc.StreamHandler
	streamInfo grpc.StreamServerInfo
}

// NewServer returns a server with opts.
func NewServer(opts Options) *Server {
	if opts.Codec == nil {
		panic("h2grpc: Options.Codec is required")
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = 4 << 20
	}
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = ^uint32(0)
	}
	if opts.StreamWindow <= 0 {
		opts.StreamWindow = 1 << 20
	}
	if opts.ConnWindow <= 0 {
		opts.ConnWindow = 16 << 20
	}
	if opts.KeepaliveMinTime <= 0 {
		opts.KeepaliveMinTime = 5 * time.Minute
	}
	if opts.KeepaliveTime > 0 && opts.KeepaliveTimeout <= 0 {
		opts.KeepaliveTimeout = 20 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 256
	}
	s := &Server{opts: opts, methods: map[string]*method{}, info: map[string]grpc.ServiceInfo{},
		work: make(chan func()), stopWork: make(chan struct{})}
	s.mu.listeners = map[net.Listener]struct{}{}
	s.mu.conns = map[*conn]struct{}{}
	return s
}

// RegisterService registers a service and its implementation (as
// grpc.Server's: the type check of impl against sd.HandlerType aside).
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	info := grpc.ServiceInfo{Metadata: sd.Metadata}
	for i := range sd.Methods {
		md := &sd.Methods[i]
		full := "/" + sd.ServiceName + "/" + md.MethodName
		s.methods[full] = &method{srv: impl, fullMethod: full, unary: md.Handler}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: md.MethodName})
	}
	for i := range sd.Streams {
		sdesc := &sd.Streams[i]
		full := "/" + sd.ServiceName + "/" + sdesc.StreamName
		s.methods[full] = &method{srv: impl, fullMethod: full, stream: sdesc.Handler,
			streamInfo: grpc.StreamServerInfo{FullMethod: full, IsClientStream: sdesc.ClientStreams, IsServerStream: sdesc.ServerStreams}}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: sdesc.StreamName,
			IsClientStream: sdesc.ClientStreams, IsServerStream: sdesc.ServerStreams})
	}
	s.info[sd.ServiceName] = info
}

// GetServiceInfo returns the registered services, as grpc.Server's.
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.info }

// ErrServerStopped is Serve's error once Stop has been called.
var ErrServerStopped = errors.New("h2grpc: the server has been stopped")

// Serve accepts connections on l and serves them until l fails or the
// server stops; it closes l.
func (s *Server) Serve(l net.Listener) error {
	s.startOnce.Do(s.startWorkers)
	s.mu.Lock()
	if s.mu.stopped {
		s.mu.Unlock()
		l.Close()
		return ErrServerStopped
	}
	s.mu.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.mu.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.mu.stopped
			s.mu.Unlock()
			if done {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff) // as net/http's Serve: a full fd table eases
				continue
			}
			return err
		}
		backoff = 0
		s.serveConn(nc)
	}
}

// serveConn starts the connection's reader goroutine, unless the server
// is stopping.
func (s *Server) serveConn(nc net.Conn) {
	s.mu.Lock()
	if s.mu.stopped {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		var auth credentials.AuthInfo
		if s.opts.Creds != nil {
			hc, ai, err := s.opts.Creds.ServerHandshake(nc)
			if err != nil {
				nc.Close()
				return
			}
			nc, auth = hc, ai
		}
		c := newConn(s, nc, auth)
		s.mu.Lock()
		if s.mu.stopped {
			s.mu.Unlock()
			c.cancel()
			nc.Close()
			return
		}
		s.mu.conns[c] = struct{}{}
		s.mu.Unlock()
		c.serve()
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
	}()
}

// Stop closes the listeners and every connection (their calls' contexts
// are cancelled) and waits for the connections' goroutines and the idle
// workers; a handler still running ends in its own time, as with
// grpc.Server.Stop.
func (s *Server) Stop() {
	for _, c := range s.stopAccepting() {
		c.close(errors.New("h2grpc: server stopped"))
	}
	s.wg.Wait()
	s.stopWorkers()
}

// stopAccepting marks the server stopped (no connection is served after
// it), closes its listeners and returns the connections it serves.
func (s *Server) stopAccepting() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.stopped = true
	for l := range s.mu.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	return conns
}

// GracefulStop stops the server as Stop does, but first lets the unary
// calls in flight answer: it closes the listeners, sends every connection
// GOAWAY (a call opened after it is refused, which grpc-go's client
// retries elsewhere) and closes each connection once its unary calls
// have answered, ending its streaming calls then (see conn.drainCalls).
// Connections still busy after timeout are closed as Stop closes them.
// grpc.Server.GracefulStop also waits for streaming calls, which a watch
// never ends: etcd bounds that wait by its request timeout.
func (s *Server) GracefulStop(timeout time.Duration) {
	var drained sync.WaitGroup
	for _, c := range s.stopAccepting() {
		drained.Add(1)
		go func() {
			defer drained.Done()
			c.drainCalls()
		}()
	}
	done := make(chan struct{})
	go func() {
		drained.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	s.Stop() // the connections left, and the wait for every goroutine
	<-done
}

func (s *Server) startWorkers() {
	for range s.opts.Workers {
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			for {
				select {
				case f := <-s.work:
					f()
				case <-s.stopWork:
					return
				}
			}
		}()
	}
}

func (s *Server) stopWorkers() {
	s.startOnce.Do(func() {})
	s.stopOnce.Do(func() { close(s.stopWork) })
	s.workers.Wait()
}

// run runs f on an idle worker, or on a fresh goroutine if none is idle:
// reused workers keep the stacks they grew (a fresh goroutine per call
// grows its stack again, a third of a member's CPU in one profile of
// grpc-go's server without workers).
func (s *Server) run(f func()) {
	select {
	case s.work <- f:
	default:
		go f()
	}
}

// lookup returns the method a :path names, or the status message
// grpc-go's server answers an unknown one with.
func (s *Server) lookup(path string) (*method, string) {
	if m := s.methods[path]; m != nil {
		return m, ""
	}
	p := strings.TrimPrefix(path, "/")
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return nil, fmt.Sprintf("malformed method name: %q", path)
	}
	service := p[:i]
	if _, ok := s.info[service]; !ok {
		return nil, fmt.Sprintf("unknown service %v", service)
	}
	return nil, fmt.Sprintf("unknown method %v for service %v", p[i+1:], service)
}

package v3rpc

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/h2grpc"
	"github.com/cairn-db/cairn/internal/server"
)

// These tests run a one-member server in the process, its client API
// served on loopback, and end watch streams every way a handler can end:
// each handler must return (it waits for its receiving goroutine only when
// that cannot deadlock), and Service.Close must return once the gRPC
// server has stopped. The package's TestMain checks that nothing is left.

const waitTimeout = 10 * time.Second

// member is a one-member cluster serving the client API.
type member struct {
	s   *server.Server
	svc *Service
	// grpc is the client API's gRPC server: grpc-go's or h2grpc's.
	grpc interface {
		Serve(net.Listener) error
		Stop()
	}
	served  chan struct{}
	conn    *grpc.ClientConn
	addr    string
	stopped bool
	// watchEnded receives what each Watch handler returned.
	watchEnded chan error
}

func startMember(t testing.TB, extra ...grpc.ServerOption) *member {
	t.Helper()
	return startMemberWith(t, nil, extra...)
}

// startMemberWith is startMember with tune, if set, changing the config.
func startMemberWith(t testing.TB, tune func(*server.Config), extra ...grpc.ServerOption) *member {
	t.Helper()
	return startMemberOn(t, grpcGo, tune, extra...)
}

// The client API's two gRPC servers: grpc-go's, and h2grpc's (cairn's
// --own-grpc-server, the default). Tests of what a client sees run on
// both (eachServer).
const (
	grpcGo = "grpc-go"
	own    = "h2grpc"
)

// eachServer runs f as a subtest on each server.
func eachServer(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range []string{grpcGo, own} {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

// startMemberOn is startMemberWith on the server kind; extra options are
// grpc-go's only.
func startMemberOn(t testing.TB, kind string, tune func(*server.Config), extra ...grpc.ServerOption) *member {
	t.Helper()
	cfg := server.Config{
		Name:              "m",
		DataDir:           t.TempDir(),
		AdvertisePeerURLs: []string{"http://127.0.0.1:1"},
		InitialCluster:    "m=http://127.0.0.1:1",
		HeartbeatInterval: 10 * time.Millisecond,
		ElectionTimeout:   100 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	m := &member{s: s, svc: New(s), served: make(chan struct{}), watchEnded: make(chan error, 8)}
	observe := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if info.FullMethod == "/etcdserverpb.Watch/Watch" {
			m.watchEnded <- err
		}
		return err
	}
	if kind == own {
		opts := m.svc.OwnServerOptions()
		inner := opts.StreamInterceptor
		opts.StreamInterceptor = func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return inner(srv, ss, info, func(srv any, ss grpc.ServerStream) error { return observe(srv, ss, info, handler) })
		}
		g := h2grpc.NewServer(opts)
		m.svc.Register(g)
		m.grpc = g
	} else {
		opts := append(m.svc.ServerOptions(), grpc.ChainStreamInterceptor(observe))
		g := grpc.NewServer(append(opts, extra...)...)
		m.svc.Register(g)
		m.grpc = g
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = lis.Addr().String()
	go func() {
		defer close(m.served)
		m.grpc.Serve(lis)
	}()
	m.conn, err = grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.stop(t) })
	deadline := time.Now().Add(waitTimeout)
	for s.Leader() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond) // a polling interval
	}
	return m
}

// stop shuts the member down as cmd/cairn does: the gRPC server, then the
// service, then the server.
func (m *member) stop(t testing.TB) {
	if m.stopped {
		return
	}
	m.stopped = true
	m.conn.Close()
	m.grpc.Stop()
	<-m.served
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		m.svc.Close()
	}()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Error("Service.Close did not return")
	}
	m.s.Stop()
}

// openWatch creates a watcher on key from rev on a new stream, and reads
// its Created response.
func (m *member) openWatch(t *testing.T, ctx context.Context, key string, rev int64) pb.Watch_WatchClient {
	t.Helper()
	stream, err := pb.NewWatchClient(m.conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
		CreateRequest: &pb.WatchCreateRequest{Key: []byte(key), StartRevision: rev}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || !resp.Created {
		t.Fatalf("create: %v, %v", resp, err)
	}
	return stream
}

// waitWatchEnded waits for a Watch handler to return, and returns what it
// returned.
func (m *member) waitWatchEnded(t *testing.T) error {
	t.Helper()
	select {
	case err := <-m.watchEnded:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("the Watch handler did not return")
		return nil
	}
}

// A Send that fails (here a response over the send limit) ends the
// handler although the client keeps its side open: gRPC finished the
// stream, so the receiver the handler waits for returned.
func TestWatchHandlerEndsWhenSendFails(t *testing.T) {
	const sendLimit = 4096
	m := startMember(t, grpc.MaxSendMsgSize(sendLimit))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	value := bytes.Repeat([]byte("v"), 2*sendLimit)
	if _, err := pb.NewKVClient(m.conn).Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: value}); err != nil {
		t.Fatal(err)
	}
	stream := m.openWatch(t, ctx, "k", 1)
	if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an event over the send limit: %v, want ResourceExhausted", err)
	}
	if err := m.waitWatchEnded(t); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the handler returned %v", err)
	}
}

// The member stopping ends a live stream: the handler returns "server
// stopped" without waiting for its receiver (whose Recv ends only once the
// handler has returned), and Close, after the gRPC server's Stop, waits
// for that receiver.
func TestWatchHandlerEndsWhenServerStops(t *testing.T) {
	eachServer(t, testWatchHandlerEndsWhenServerStops)
}

func testWatchHandlerEndsWhenServerStops(t *testing.T, kind string) {
	m := startMemberOn(t, kind, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream := m.openWatch(t, ctx, "k", 0)
	m.s.Stop()
	if _, err := stream.Recv(); err == nil || !strings.Contains(err.Error(), rpctypes.ErrGRPCStopped.Error()) {
		t.Fatalf("watching a stopping member: %v, want %v", err, rpctypes.ErrGRPCStopped)
	}
	if err := m.waitWatchEnded(t); err != rpctypes.ErrGRPCStopped {
		t.Fatalf("the handler returned %v", err)
	}
	m.stop(t)
}

// The client cancelling its stream, or half-closing it, ends or keeps the
// handler as etcd does: cancelled, it returns; half-closed, it keeps
// sending events until the client cancels.
func TestWatchHandlerEndsWhenClientLeaves(t *testing.T) {
	eachServer(t, testWatchHandlerEndsWhenClientLeaves)
}

func testWatchHandlerEndsWhenClientLeaves(t *testing.T, kind string) {
	m := startMemberOn(t, kind, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	watchCtx, watchCancel := context.WithCancel(ctx)
	m.openWatch(t, watchCtx, "k", 0)
	watchCancel()
	if err := m.waitWatchEnded(t); err == nil {
		t.Fatal("a cancelled stream's handler returned nil")
	}

	watchCtx, watchCancel = context.WithCancel(ctx)
	defer watchCancel()
	stream := m.openWatch(t, watchCtx, "k", 0)
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewKVClient(m.conn).Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || len(resp.Events) != 1 {
		t.Fatalf("an event after half-closing: %v, %v", resp, err)
	}
	watchCancel()
	m.waitWatchEnded(t)
}

// Close stops the leader guard's monitor while the member runs on (it
// also ends when the member stops, which would hide a Close that did not
// stop it).
func TestCloseStopsMonitor(t *testing.T) { eachServer(t, testCloseStopsMonitor) }

func testCloseStopsMonitor(t *testing.T, kind string) {
	m := startMemberOn(t, kind, nil)
	const monitor = "v3rpc.(*leaderGuard).monitor"
	// Until the goroutine first runs, its stack shows only its closure.
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(allStacks(), monitor) {
		if time.Now().After(deadline) {
			t.Fatal("no monitor running")
		}
		time.Sleep(time.Millisecond) // a polling interval
	}
	m.stopped = true // stopped here, not by the cleanup
	m.conn.Close()
	m.grpc.Stop()
	<-m.served
	m.svc.Close()
	// Close waited for it: it is gone at once, not eventually.
	if stacks := allStacks(); strings.Contains(stacks, monitor) {
		t.Fatalf("the monitor runs after Close:\n%s", stacks)
	}
	m.s.Stop()
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

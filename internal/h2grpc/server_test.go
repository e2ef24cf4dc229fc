package h2grpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the codec the tests' server uses
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait of these tests; a busy machine is slow,
// not this slow.
const waitTimeout = 30 * time.Second

// echoService is the tests' service: Echo answers a RangeRequest with a
// RangeResponse holding one key-value, the request's key and a value of
// its Limit bytes (for the key "gate", once it has said so on started and
// received from gate, or failing when its context ends); Hold, a stream,
// says it started on started, holds until its context ends and reports
// that on held.
type echoService struct {
	started chan struct{}
	held    chan error
	gate    chan struct{}
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Echo", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		req := &pb.RangeRequest{}
		if err := dec(req); err != nil {
			return nil, err
		}
		if string(req.Key) == "gate" {
			srv.(*echoService).started <- struct{}{}
			select {
			case <-srv.(*echoService).gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: req.Key, Value: bytes.Repeat([]byte("v"), int(req.Limit))}}}, nil
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Hold", ClientStreams: true, ServerStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
		srv.(*echoService).started <- struct{}{}
		<-ss.Context().Done()
		err := ss.Context().Err()
		srv.(*echoService).held <- err
		return err
	}}},
}

// startServer serves the echo service on loopback until the test ends.
func startServer(t *testing.T, opts Options) (*Server, string, *echoService) {
	t.Helper()
	if opts.Codec == nil {
		opts.Codec = encoding.GetCodecV2("proto")
	}
	s := NewServer(opts)
	svc := &echoService{started: make(chan struct{}, 2), held: make(chan error, 2), gate: make(chan struct{})}
	s.RegisterService(&echoDesc, svc)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, l.Addr().String(), svc
}

// dialGRPC connects grpc-go's client to addr until the test ends, and
// returns a context ending after waitTimeout.
func dialGRPC(t *testing.T, addr string) (*grpc.ClientConn, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return conn, ctx
}

// rawClient is a client connection the test speaks HTTP/2 on frame by
// frame, its settings given.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	rc := &rawClient{t: t, c: c, fr: http2.NewFramer(c, c)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return rc
}

// call opens stream id to path and sends msg (nil: none) with END_STREAM
// if end.
func (rc *rawClient) call(id uint32, path string, msg proto.Message, end bool) {
	rc.t.Helper()
	rc.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		rc.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true, EndStream: msg == nil && end}); err != nil {
		rc.t.Fatal(err)
	}
	if msg != nil {
		b, err := proto.Marshal(msg)
		if err != nil {
			rc.t.Fatal(err)
		}
		data := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b))), b...)
		if err := rc.fr.WriteData(id, end, data); err != nil {
			rc.t.Fatal(err)
		}
	}
}

// next reads the next frame, acknowledging SETTINGS and PINGs on the way
// unless told otherwise.
func (rc *rawClient) next() (http2.Frame, error) {
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				rc.fr.WriteSettingsAck()
			}
			continue
		}
		return f, nil
	}
}

// A client whose stream window is 16 bytes gets a 1,000-byte answer 16
// bytes at a time, each DATA frame after the window update that allows
// it, and the whole message intact: the server waits for the client's
// windows, frame by frame.
func TestAnswerWaitsForClientWindow(t *testing.T) {
	_, addr, _ := startServer(t, Options{})
	const window = 16
	rc := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	rc.call(1, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("k"), Limit: 1000}, true)
	var data []byte
	for {
		f, err := rc.next()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if len(f.Data()) > window {
				t.Fatalf("a DATA frame of %d bytes with a window of %d", len(f.Data()), window)
			}
			data = append(data, f.Data()...)
			// Give back the stream's window only: the connection's
			// starts at 65,535 and stays ahead.
			rc.fr.WriteWindowUpdate(1, uint32(len(f.Data())))
		case *http2.MetaHeadersFrame:
			if !f.StreamEnded() {
				continue
			}
			if got := f.PseudoValue("status"); got != "" && got != "200" {
				t.Fatalf("trailers-only answer %v", f.Fields)
			}
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" && hf.Value != "0" {
					t.Fatalf("trailers %v", f.Fields)
				}
			}
			resp := &pb.RangeResponse{}
			if len(data) < 5 || int(binary.BigEndian.Uint32(data[1:5])) != len(data)-5 {
				t.Fatalf("%d bytes received, not one whole message", len(data))
			}
			if err := proto.Unmarshal(data[5:], resp); err != nil || len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != 1000 {
				t.Fatalf("answer %v, %v", resp, err)
			}
			return
		}
	}
}

// A client sending more than a stream's window on it has the stream
// reset with FLOW_CONTROL_ERROR and its call's context cancelled; the
// connection serves on.
func TestClientBeyondStreamWindow(t *testing.T) {
	_, addr, svc := startServer(t, Options{StreamWindow: 100})
	rc := dialRaw(t, addr)
	rc.call(1, "/test.Echo/Hold", nil, false)
	<-svc.started
	if err := rc.fr.WriteData(1, false, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := rc.next()
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := f.(*http2.RSTStreamFrame); ok {
			if f.StreamID != 1 || f.ErrCode != http2.ErrCodeFlowControl {
				t.Fatalf("RST_STREAM %v on stream %d, want FLOW_CONTROL on 1", f.ErrCode, f.StreamID)
			}
			break
		}
	}
	if err := <-svc.held; !errors.Is(err, context.Canceled) {
		t.Fatalf("the reset call's context ended with %v", err)
	}
	rc.call(3, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("k"), Limit: 1}, true)
	for {
		f, err := rc.next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Header().StreamID == 1 && f.Header().Type != http2.FrameWindowUpdate {
			t.Fatalf("a frame on the reset stream: %v", f)
		}
		if f, ok := f.(*http2.MetaHeadersFrame); ok && f.StreamEnded() {
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" && hf.Value != "0" {
					t.Fatalf("a call after the reset: trailers %v", f.Fields)
				}
			}
			return
		}
	}
}

// With keepalive on, a connection silent for KeepaliveTime is pinged; a
// client that answers is kept (three pings answered), one that does not
// is closed after KeepaliveTimeout (a second: time enough for the
// answering client on a busy machine).
func TestKeepalivePings(t *testing.T) {
	_, addr, _ := startServer(t, Options{KeepaliveTime: 20 * time.Millisecond, KeepaliveTimeout: time.Second})
	for _, answer := range []bool{true, false} {
		rc := dialRaw(t, addr)
		pings := 0
		for {
			f, err := rc.next()
			if err != nil {
				if answer {
					t.Fatalf("a client answering pings was closed after %d: %v", pings, err)
				}
				// One ping, or two if the client's SETTINGS ACK (which
				// counts as activity) came only after the first.
				if pings < 1 {
					t.Fatalf("closed after %d pings, want a ping unanswered first", pings)
				}
				break
			}
			if f, ok := f.(*http2.PingFrame); ok && !f.IsAck() {
				pings++
				if answer {
					rc.fr.WritePing(true, f.Data)
				}
				if answer && pings == 3 {
					break
				}
			}
		}
	}
}

// hold opens a Hold stream on conn and returns once its handler runs.
func hold(t *testing.T, conn *grpc.ClientConn, ctx context.Context, svc *echoService) grpc.ClientStream {
	t.Helper()
	stream, err := conn.NewStream(ctx, &echoDesc.Streams[0], "/test.Echo/Hold")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&pb.RangeRequest{}); err != nil {
		t.Fatal(err)
	}
	<-svc.started
	return stream
}

// Stop ends Serve, cancels the calls' contexts, and closes the clients'
// connections; a call after it fails Unavailable on the client.
func TestStopCancelsCalls(t *testing.T) {
	s, addr, svc := startServer(t, Options{})
	conn, ctx := dialGRPC(t, addr)
	resp := &pb.RangeResponse{}
	if err := conn.Invoke(ctx, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("k"), Limit: 3}, resp); err != nil || string(resp.Kvs[0].Value) != "vvv" {
		t.Fatalf("Echo: %v, %v", resp, err)
	}
	stream := hold(t, conn, ctx, svc)
	s.Stop()
	if err := <-svc.held; !errors.Is(err, context.Canceled) {
		t.Fatalf("the held call's context ended with %v", err)
	}
	if err := stream.RecvMsg(&pb.RangeResponse{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a stream's Recv after Stop: %v, want Unavailable", err)
	}
}

// A request larger than the stream's window gets, as its prefix
// arrives, the window its message needs: the client does not stall
// halfway (a 100 KB key against a 1,000-byte window here).
func TestRequestBeyondStreamWindow(t *testing.T) {
	_, addr, _ := startServer(t, Options{StreamWindow: 1000})
	conn, ctx := dialGRPC(t, addr)
	key := bytes.Repeat([]byte("k"), 100<<10)
	resp := &pb.RangeResponse{}
	if err := conn.Invoke(ctx, "/test.Echo/Echo", &pb.RangeRequest{Key: key}, resp); err != nil || !bytes.Equal(resp.Kvs[0].Key, key) {
		t.Fatalf("Echo of a 100 KB key: %v", err)
	}
}

// A peer's SETTINGS_MAX_FRAME_SIZE outside what RFC 9113 allows ends
// the connection with GOAWAY PROTOCOL_ERROR (a frame size of 0 would
// have the server write empty frames for ever).
func TestBadMaxFrameSize(t *testing.T) {
	_, addr, _ := startServer(t, Options{})
	for _, size := range []uint32{0, 16383, 1 << 24} {
		rc := dialRaw(t, addr, http2.Setting{ID: http2.SettingMaxFrameSize, Val: size})
		for {
			f, err := rc.next()
			if err != nil {
				t.Fatalf("max frame size %d: the connection ended without a GOAWAY: %v", size, err)
			}
			if f, ok := f.(*http2.GoAwayFrame); ok {
				if f.ErrCode != http2.ErrCodeProtocol {
					t.Fatalf("max frame size %d: GOAWAY %v, want PROTOCOL_ERROR", size, f.ErrCode)
				}
				break
			}
		}
	}
}

// A client that connects and never sends the HTTP/2 preface is closed
// after prefaceTimeout; one that sends it in time is served.
func TestPrefaceTimeout(t *testing.T) {
	defer func(d time.Duration) { prefaceTimeout = d }(prefaceTimeout)
	prefaceTimeout = 200 * time.Millisecond
	_, addr, _ := startServer(t, Options{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := c.Read(make([]byte, 64)); err != io.EOF {
		t.Fatalf("a silent client read %d bytes, %v; want the connection closed (EOF)", n, err)
	}
	conn, ctx := dialGRPC(t, addr)
	resp := &pb.RangeResponse{}
	if err := conn.Invoke(ctx, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("k"), Limit: 1}, resp); err != nil {
		t.Fatalf("a client sending its preface: %v", err)
	}
}

// GracefulStop tells the client GOAWAY naming the last call it took,
// refuses a call opened after it (REFUSED_STREAM: grpc-go's client retries
// such a call elsewhere), lets the call in flight answer, and only then
// closes the connection and returns.
func TestGracefulStopAnswersCallsInFlight(t *testing.T) {
	defer func(w time.Duration) { halfCloseWait = w }(halfCloseWait)
	halfCloseWait = time.Hour // the client's close, not the timer, ends the wait
	s, addr, svc := startServer(t, Options{})
	rc := dialRaw(t, addr)
	rc.call(1, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("gate"), Limit: 3}, true)
	<-svc.started
	s.mu.Lock()
	var sc *conn
	for c := range s.mu.conns {
		sc = c
	}
	s.mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.GracefulStop(time.Hour) // not the timeout: the drain ends it
	}()
	for {
		f, err := rc.next()
		if err != nil {
			t.Fatalf("reading GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.LastStreamID != 1 || ga.ErrCode != http2.ErrCodeNo {
				t.Fatalf("GOAWAY last stream %d, code %v; want 1, NO_ERROR", ga.LastStreamID, ga.ErrCode)
			}
			break
		}
	}
	rc.call(3, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("late")}, true)
	var refused bool
	for !refused {
		f, err := rc.next()
		if err != nil {
			t.Fatalf("reading the refusal of a call after GOAWAY: %v", err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID != 3 || f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM on %d with %v, want 3 REFUSED_STREAM", f.StreamID, f.ErrCode)
			}
			refused = true
		case *http2.HeadersFrame, *http2.MetaHeadersFrame, *http2.DataFrame:
			t.Fatalf("a frame on stream %d before the gate opened", f.Header().StreamID)
		}
	}
	close(svc.gate)
	var value []byte
	status := ""
	for status == "" {
		f, err := rc.next()
		if err != nil {
			t.Fatalf("reading the answer of the call in flight: %v", err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			resp := &pb.RangeResponse{}
			if err := proto.Unmarshal(f.Data()[msgHeaderLen:], resp); err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("answer %v, %v", resp, err)
			}
			value = resp.Kvs[0].Value
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				status = grpcStatus(f) // the trailers
			}
		}
	}
	if string(value) != "vvv" || status != "0" {
		t.Fatalf("the call in flight got %q, grpc-status %s; want vvv, 0", value, status)
	}
	// The server half-closes (so that its answers are not lost to a
	// reset), and closes once the client closes too.
	for {
		if _, err := rc.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after the answer: %v, want EOF", err)
			}
			break
		}
	}
	if sc.closed.Load() {
		t.Fatal("the server closed the connection before the client did: no half-close")
	}
	rc.c.Close()
	waitStopped(t, stopped)
}

// waitStopped waits for GracefulStop to return, within waitTimeout.
func waitStopped(t *testing.T, stopped <-chan struct{}) {
	t.Helper()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatalf("GracefulStop did not return within %v", waitTimeout)
	}
}

func grpcStatus(f *http2.MetaHeadersFrame) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == "grpc-status" {
			return hf.Value
		}
	}
	return "none"
}

// Through grpc-go's client: a unary call in flight answers OK, a
// streaming call (a watch, say) does not hold the stop up and ends
// Unavailable, and a call that outlasts the timeout ends as with Stop.
func TestGracefulStopWithGRPCClient(t *testing.T) {
	s, addr, svc := startServer(t, Options{})
	conn, ctx := dialGRPC(t, addr)
	stream := hold(t, conn, ctx, svc)
	answered := make(chan error, 1)
	go func() {
		resp := &pb.RangeResponse{}
		err := conn.Invoke(ctx, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("gate"), Limit: 2}, resp)
		if err == nil && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "vv") {
			err = fmt.Errorf("answer %v", resp)
		}
		answered <- err
	}()
	<-svc.started
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.GracefulStop(time.Hour) // not the timeout: the drain ends it
	}()
	// The client leaves Ready when GOAWAY reaches it: the call is in
	// flight on a draining connection when the gate opens.
	if !conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the client never saw GOAWAY")
	}
	close(svc.gate)
	if err := <-answered; err != nil {
		t.Fatalf("the unary call in flight: %v", err)
	}
	waitStopped(t, stopped)
	select {
	case err := <-svc.held:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the streaming call's context ended with %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the streaming call's handler still runs %v after GracefulStop", waitTimeout)
	}
	if err := stream.RecvMsg(&pb.RangeResponse{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("the streaming call after GracefulStop: %v, want Unavailable", err)
	}
}

func TestGracefulStopTimeout(t *testing.T) {
	s, addr, svc := startServer(t, Options{})
	conn, ctx := dialGRPC(t, addr)
	answered := make(chan error, 1)
	go func() {
		answered <- conn.Invoke(ctx, "/test.Echo/Echo", &pb.RangeRequest{Key: []byte("gate")}, &pb.RangeResponse{})
	}()
	<-svc.started
	s.GracefulStop(time.Millisecond) // returns although the gate stays shut
	if err := <-answered; status.Code(err) != codes.Unavailable {
		t.Fatalf("a call that outlasted GracefulStop's timeout: %v, want Unavailable", err)
	}
}

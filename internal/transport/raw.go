package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// The raw message connection (see doc.go): the sender writes
//
//	hello:  | rawMagic (8B) | cluster ID (8B BE) | from (8B BE) | to (8B BE) |
//	frames: | length (4B BE) | Messages frame |  ...
//
// and the receiver answers the hello, and ends the connection, when it
// refuses the sender later, with a status:
//
//	answer: | rawMagic (8B) | status |
//	status: | code (1B) | length (2B BE) | text |
//
// A gRPC client's first bytes are HTTP/2's preface ("PRI * HTTP/2.0"), so
// Serve tells the two apart by the first eight bytes.
const rawMagic = "CAIRNRT1"

// rawCode is a receiver's status.
type rawCode byte

const (
	rawOK rawCode = iota
	rawOtherCluster
	rawOtherMember
	rawRemoved
	rawBadFrame
)

const (
	helloBytes = len(rawMagic) + 24
	// handshakeTimeout bounds the hello and its answer.
	handshakeTimeout = 10 * time.Second
	// rawWriteTimeout bounds one frame's write: a receiver that reads
	// nothing for that long is taken as gone, and the sender reconnects.
	rawWriteTimeout = 10 * time.Second
	// rawReadBuffer is the receiver's read buffer.
	rawReadBuffer = 64 << 10
)

// refusal is a receiver's refusal of a stream or call: what it tells the
// sender, and the error it maps to in each protocol.
type refusal struct {
	code rawCode
	text string
}

func (r *refusal) Error() string { return r.text }

// Is makes a refusal match the errors its code stands for.
func (r *refusal) Is(target error) bool {
	switch r.code {
	case rawRemoved:
		return target == ErrMemberRemoved
	case rawOtherCluster:
		return target == ErrClusterMismatch
	}
	return false
}

// grpcStatus is the refusal as the gRPC methods answer it.
func (r *refusal) grpcStatus() error {
	code := codes.InvalidArgument
	switch r.code {
	case rawOtherCluster, rawOtherMember:
		code = codes.FailedPrecondition
	case rawRemoved:
		code = codes.PermissionDenied
	}
	return status.Error(code, r.text)
}

// refusalOf returns the refusal a sender got: one read from a raw
// connection, or one a gRPC stream ended with (grpcStatus's, read back;
// FailedPrecondition as another member, which is all a sender tells
// apart), else nil.
func refusalOf(err error) *refusal {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	st, ok := status.FromError(err)
	switch {
	case !ok:
		return nil
	case st.Code() == codes.PermissionDenied && st.Message() == ErrMemberRemoved.Error():
		return &refusal{code: rawRemoved, text: st.Message()}
	case st.Code() == codes.FailedPrecondition:
		return &refusal{code: rawOtherMember, text: st.Message()}
	}
	return nil
}

// errNoRawTransport is a peer that closed (or reset) the connection
// without answering the hello: a member from before the raw connection,
// whose gRPC server took the hello for a bad HTTP/2 preface. (Or one that
// died at that moment: the gRPC stream then tried works with either.)
var errNoRawTransport = errors.New("transport: peer does not take raw message connections")

// errUnusableURL is a peer URL that cannot be dialled as it is.
var errUnusableURL = errors.New("transport: unusable peer URL")

// dialRaw opens a raw message connection's socket to a peer URL
// (parsePeerURL), with TCP keep-alives that notice a vanished peer in
// seconds, as gRPC's keep-alive pings did; from local, if set.
func dialRaw(ctx context.Context, rawURL string, tlsConfig *tls.Config, local net.IP) (net.Conn, error) {
	pt, err := parsePeerURL(rawURL, tlsConfig, local)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keepaliveTime, Interval: time.Second, Count: 3},
		Control: setUserTimeout, LocalAddr: pt.local}
	conn, err := d.DialContext(ctx, pt.network, pt.address)
	if err != nil || pt.tls == nil {
		return conn, err
	}
	tc := tls.Client(conn, pt.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

func appendHello(buf []byte, cluster, from, to uint64) []byte {
	buf = append(buf, rawMagic...)
	buf = binary.BigEndian.AppendUint64(buf, cluster)
	buf = binary.BigEndian.AppendUint64(buf, from)
	return binary.BigEndian.AppendUint64(buf, to)
}

// writeStatus writes prefix (the answer's magic, or nothing) and a status,
// rawOK for a nil refusal, in one write; a refusal's text is cut to what
// the length field holds.
func writeStatus(w io.Writer, prefix string, r *refusal) error {
	if r == nil {
		r = &refusal{code: rawOK}
	}
	text := r.text
	if len(text) > 1<<12 {
		text = text[:1<<12]
	}
	buf := append([]byte(prefix), byte(r.code), byte(len(text)>>8), byte(len(text)))
	_, err := w.Write(append(buf, text...))
	return err
}

// lingerTimeout bounds lingerClose's wait for the sender to close.
const lingerTimeout = 2 * time.Second

// lingerClose ends a connection whose sender was just sent a refusal:
// it closes the writing half and reads (and drops) what the sender still
// sends until the sender closes or lingerTimeout passes. Closed at once
// with frames unread, the socket would be reset, and a reset can reach
// the sender before it reads the refusal, which tells it why (a removed
// member would not learn it was removed).
func lingerClose(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, conn)
}

// readStatus reads a receiver's status: nil for rawOK, else its refusal.
func readStatus(r io.Reader) error {
	var head [3]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return err
	}
	text := make([]byte, binary.BigEndian.Uint16(head[1:]))
	if _, err := io.ReadFull(r, text); err != nil {
		return err
	}
	if rawCode(head[0]) == rawOK {
		return nil
	}
	return &refusal{code: rawCode(head[0]), text: string(text)}
}

// readAnswer reads a receiver's answer to the hello: nil if it takes the
// connection, its refusal, or errNoRawTransport if it is not a raw
// receiver (a gRPC server writes its HTTP/2 settings first, then closes
// the connection at the hello).
func readAnswer(r io.Reader) error {
	var magic [len(rawMagic)]byte
	_, err := io.ReadFull(r, magic[:])
	if err == nil && string(magic[:]) != rawMagic ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return errNoRawTransport
	}
	if err != nil {
		return err
	}
	return readStatus(r)
}

// rawStream says hello on a raw message connection, then sends on it
// until it breaks (an error) or the peer stops (nil). It owns conn and
// closes it.
func (p *peer) rawStream(conn net.Conn) (err error) {
	// One goroutine closes the connection when the peer stops, which
	// ends a blocked hello or write; another, once the hello is
	// answered, reads the refusal that is all the receiver writes before
	// it ends the connection. The return below closes the connection and
	// waits for both.
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		conn.Close()
		wg.Wait()
		select {
		case <-p.stopc:
			err = nil // stopped, whatever the connection said then
		default:
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-p.stopc:
			conn.Close()
		case <-done:
		}
	}()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := conn.Write(appendHello(nil, p.t.cfg.ClusterID, p.t.cfg.LocalID, p.id)); err != nil {
		return err
	}
	if err := readAnswer(conn); err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	broken := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := readStatus(conn)
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("transport: peer closed the connection")
		}
		broken <- err
	}()
	// Send may write to a plain socket itself from now on (direct.go).
	closeDirect := p.openDirect(conn)
	defer closeDirect()
	return p.sendLoop(broken, func(batch []raftpb.Message, size int) (int, error) {
		p.direct.mu.Lock()
		defer p.direct.mu.Unlock()
		conn.SetWriteDeadline(time.Now().Add(rawWriteTimeout))
		// The deadline is for these writes: left set, it would refuse
		// Send's direct writes once passed.
		defer conn.SetWriteDeadline(time.Time{})
		if pending := p.direct.pending; len(pending) > 0 {
			if _, err := conn.Write(pending); err != nil {
				return 0, err
			}
			p.direct.pending = pending[:0]
		}
		if len(batch) == 0 {
			return 0, nil
		}
		p.buf = encodeRawFrame(p.buf[:0], p.t.cfg.ClusterID, batch, size)
		n, err := conn.Write(p.buf)
		if cap(p.buf) > 2*maxBatchBytes {
			p.buf = nil // not kept after one very large message
		}
		return n, err
	}, func(err error) error {
		// A receiver that refused this member wrote why before it
		// closed the connection: that says more than the write's error.
		// Closing ends the read if nothing was written.
		conn.Close()
		var r *refusal
		if rerr := <-broken; errors.As(rerr, &r) {
			return r
		}
		return err
	})
}

// encodeRawFrame appends a length-prefixed Messages frame of batch (whose
// messages' sizes sum to size).
func encodeRawFrame(buf []byte, clusterID uint64, batch []raftpb.Message, size int) []byte {
	buf = append(buf, 0, 0, 0, 0)
	if need := len(buf) + size + 16 + 10*len(batch); cap(buf) < need {
		buf = append(make([]byte, 0, need), buf...)
	}
	buf = encodeBatch(buf, clusterID, batch)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// Serve serves peers on l until l is closed: raw message connections
// itself, everything else (the gRPC methods, and the message streams of
// members from before the raw connection) through g, which must have been
// built with ServerOptions and registered with Register. It returns when
// l's Accept fails, after the connections it is still telling apart have
// been handed on or closed; g's Serve on them has returned by then too.
// g's Stop closes l (as it closes the listeners it serves itself).
func (t *Transport) Serve(l net.Listener, g *grpc.Server) error {
	gl := &connListener{root: l, conns: make(chan net.Conn), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.Serve(gl)
	}()
	defer func() {
		gl.Close()
		wg.Wait()
	}()
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			// Out of descriptors or memory for now: wait, as gRPC's and
			// net/http's servers do, rather than stop serving peers.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				t.logger.Warn("accepting a peer connection failed; retrying", zap.Error(err), zap.Duration("delay", delay))
				select {
				case <-time.After(delay):
					continue
				case <-t.stopc:
				}
			}
			return err
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.classify(conn, gl)
		}()
	}
}

// classify reads a connection's first bytes: a raw message connection is
// served here, anything else handed to gRPC with those bytes put back.
func (t *Transport) classify(conn net.Conn, gl *connListener) {
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	head := make([]byte, len(rawMagic))
	n, err := io.ReadFull(conn, head)
	if err != nil && n == 0 {
		conn.Close()
		return
	}
	if string(head[:n]) == rawMagic {
		t.serveRaw(conn)
		return
	}
	conn.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: conn, prefix: head[:n]}
	var c net.Conn = pc
	if tc, ok := conn.(*tls.Conn); ok {
		c = &tlsPrefixConn{prefixConn: pc, tc: tc}
	}
	select {
	case gl.conns <- c:
	case <-gl.done:
		conn.Close()
	}
}

// serveRaw receives one peer's raw message connection (its magic read).
func (t *Transport) serveRaw(conn net.Conn) {
	defer conn.Close()
	t.mu.Lock()
	if t.mu.stopped {
		t.mu.Unlock()
		return
	}
	// Stop closes the connection, which ends the reads below, and
	// waits for this to return.
	t.mu.inbound[conn] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.mu.inbound, conn)
		t.mu.Unlock()
		t.wg.Done()
	}()
	var hello [helloBytes - len(rawMagic)]byte
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		return
	}
	from := binary.BigEndian.Uint64(hello[8:])
	ref := t.checkIdentity(binary.BigEndian.Uint64(hello[:]), from, binary.BigEndian.Uint64(hello[16:]))
	conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	if err := writeStatus(conn, rawMagic, ref); err != nil {
		return
	}
	if ref != nil {
		lingerClose(conn)
		return
	}
	conn.SetDeadline(time.Time{})
	ctx, cancel := cancelOn(context.Background(), t.stopc)
	defer cancel()
	received := t.cfg.Metrics.receivedBytes.WithLabelValues(idString(from))
	refuse := func(r *refusal) {
		conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		if writeStatus(conn, "", r) == nil {
			lingerClose(conn)
		}
	}
	br := bufio.NewReaderSize(conn, rawReadBuffer)
	var head [4]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(head[:])
		if size > MaxFrameBytes {
			t.logger.Error("refused a frame larger than the limit from a peer", zap.String("remote-member", idString(from)),
				zap.Uint32("bytes", size), zap.Int("limit", MaxFrameBytes))
			refuse(&refusal{code: rawBadFrame, text: fmt.Sprintf("transport: frame of %d bytes, the limit is %d", size, MaxFrameBytes)})
			return
		}
		// A new buffer per frame: the decoded messages point into it.
		frame := make([]byte, size)
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		received.Add(float64(len(frame) + len(head)))
		r, err := t.receiveFrame(ctx, from, frame)
		if r != nil {
			refuse(r)
		}
		if r != nil || err != nil {
			return
		}
	}
}

// connListener hands the connections Serve passes on to gRPC. Closing it
// (as the gRPC server's Stop does) closes the listener Serve accepts on
// too, which ends Serve.
type connListener struct {
	root  net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.root.Close()
	})
	return err
}

func (l *connListener) Addr() net.Addr { return l.root.Addr() }

// prefixConn reads prefix, the bytes classify took, before the rest.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// tlsPrefixConn is a prefixConn over TLS, which tells gRPC's credentials
// (tlsutil.ServerCredentials) the connection's TLS state.
type tlsPrefixConn struct {
	*prefixConn
	tc *tls.Conn
}

func (c *tlsPrefixConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

package h2grpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Frame sizes and the windows HTTP/2 starts with (RFC 9113 6.5.2, 6.9.2).
const (
	frameHeaderLen      = 9
	defaultMaxFrameSize = 16384
	initialWindow       = 65535
	readBufferSize      = 32 << 10
	// maxHeaderListSize bounds a request's decoded header fields, as
	// grpc-go's server's default.
	maxHeaderListSize = 16 << 20
	// minWriteBatch is the size under which the writer yields before
	// writing (see writeLoop).
	minWriteBatch = 1000
)

// conn is one client connection: its reader goroutine (serve) and its
// write side, shared by the reader and the calls' workers.
type conn struct {
	s    *Server
	nc   net.Conn
	peer *peer.Peer
	// ctx is every call's parent: cancelled when the connection closes.
	ctx    context.Context
	cancel context.CancelFunc
	// closed is set once by close.
	closed atomic.Bool
	// activity is set by the reader on every frame and cleared by the
	// keepalive timer (see keepalive).
	activity atomic.Bool
	// wake asks writeLoop to write the out buffer.
	wake chan struct{}
	// readerDone is closed when serve returns (the reader and the
	// writer have ended).
	readerDone chan struct{}

	// Reader-goroutine state.
	fr            *http2.Framer
	maxStreamID   uint32
	recvConnWin   int64 // what the client may still send on the connection
	recvConnAcked int64 // bytes received since the last connection WINDOW_UPDATE
	pingStrikes   int
	lastPing      time.Time
	// answered is set when the reader has answered a call itself (see
	// Options.Inline): it writes the out buffer once its read buffer is
	// empty.
	answered bool

	wmu   sync.Mutex
	wcond *sync.Cond
	w     struct {
		// out holds frames not yet written; spare is the buffer the
		// writer gave back. writing is set from a flush until the
		// writer has emptied out.
		out, spare []byte
		writing    bool
		// err is set once the socket fails or the connection closes:
		// nothing more is written.
		err      error
		henc     *hpack.Encoder
		hbuf     bytes.Buffer
		sendWin  int64 // the connection's send window
		peerWin  int64 // SETTINGS_INITIAL_WINDOW_SIZE of the peer
		maxFrame int   // the peer's SETTINGS_MAX_FRAME_SIZE
		streams  map[uint32]*stream
		// resetPings is set when the server sends HEADERS or DATA: the
		// client's next ping starts a fresh count, as in grpc-go.
		resetPings bool
		// goAway is set once GOAWAY was sent: new streams are refused.
		goAway bool
		// draining is set by drainCalls: ending streams wake it.
		draining bool
		// open is set once the client's preface is read and SETTINGS,
		// the first frame the server must send, is in out.
		open bool
		// pingOut is set while a keepalive ping awaits its answer.
		pingOut bool
		// timer is the keepalive timer, nil without keepalive.
		timer *time.Timer
		// readerAnswering is set while the reader runs a call (see
		// Options.Inline): flushes wait for the reader's writeAnswers.
		readerAnswering bool
	}
}

// prefaceTimeout bounds the wait for a new connection's HTTP/2 preface:
// a client that connects (and finishes a TLS handshake) and says nothing
// does not hold the connection's goroutines for ever.
var prefaceTimeout = 10 * time.Second

func newConn(s *Server, nc net.Conn, auth credentials.AuthInfo) *conn {
	c := &conn{s: s, nc: nc, peer: &peer.Peer{Addr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(), AuthInfo: auth}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.ctx = peer.NewContext(c.ctx, c.peer)
	c.wcond = sync.NewCond(&c.wmu)
	c.wake = make(chan struct{}, 1)
	c.w.henc = hpack.NewEncoder(&c.w.hbuf)
	c.w.sendWin = initialWindow
	c.w.peerWin = initialWindow
	c.w.maxFrame = defaultMaxFrameSize
	c.w.streams = map[uint32]*stream{}
	c.recvConnWin = int64(s.opts.ConnWindow)
	c.readerDone = make(chan struct{})
	return c
}

// serve reads the connection until it fails or closes, then cancels its
// calls and waits for its writer.
func (c *conn) serve() {
	defer close(c.readerDone)
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		c.writeLoop()
	}()
	defer writer.Wait()
	defer c.close(io.EOF)
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	preface := make([]byte, len(http2.ClientPreface))
	// A client has prefaceTimeout to open (grpc-go allows its connection
	// timeout, 120 s, for the handshake and the preface together).
	c.nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	c.fr = http2.NewFramer(io.Discard, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderListSize
	c.fr.SetMaxReadFrameSize(defaultMaxFrameSize)

	c.wmu.Lock()
	c.w.open = true
	c.appendSettingsLocked()
	if extra := int64(c.s.opts.ConnWindow) - initialWindow; extra > 0 {
		c.appendWindowUpdateLocked(0, uint32(extra))
	}
	if c.s.opts.KeepaliveTime > 0 {
		c.w.timer = time.AfterFunc(c.s.opts.KeepaliveTime, c.keepalive)
	}
	c.flushLocked()
	c.wmu.Unlock()

	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if se.StreamID > c.maxStreamID && se.StreamID%2 == 1 {
					// A refused HEADERS still opened (and closed) its
					// stream: DATA that follows it is not on an idle one.
					c.wmu.Lock()
					c.maxStreamID = se.StreamID
					c.wmu.Unlock()
				}
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.goAwayAndClose(http2.ErrCode(ce), nil)
			}
			return
		}
		c.activity.Store(true)
		if err := c.handle(f); err != nil {
			return
		}
		if c.answered && !wholeFrameBuffered(br) {
			c.answered = false
			c.writeAnswers()
		}
		c.throttle()
	}
}

// wholeFrameBuffered reports whether br holds the whole of the next frame:
// the reader then answers it before writing what it has.
func wholeFrameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < frameHeaderLen {
		return false
	}
	h, err := br.Peek(frameHeaderLen)
	if err != nil {
		return false
	}
	return n >= frameHeaderLen+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// maxPendingOut bounds the out buffer the reader lets grow: past it, the
// reader waits for the writer before reading on. A client that sends and
// never reads (SETTINGS, PINGs, calls to unknown methods: each answered)
// would otherwise grow it without end; grpc-go's server throttles its
// reader likewise.
const maxPendingOut = 4 << 20

// throttle waits, on the reader, while the out buffer is past
// maxPendingOut.
func (c *conn) throttle() {
	c.wmu.Lock()
	for len(c.w.out) > maxPendingOut && c.w.err == nil {
		c.flushLocked()
		c.wcond.Wait()
	}
	c.wmu.Unlock()
}

// handle handles one frame; an error ends the connection (GOAWAY sent).
func (c *conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.RSTStreamFrame:
		c.wmu.Lock()
		st := c.w.streams[f.StreamID]
		c.wmu.Unlock()
		if st != nil {
			st.abort(errStreamReset(f.ErrCode))
		}
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		return c.onPing(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.GoAwayFrame:
		// The client will open no more streams; the open ones finish.
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			if s.Val > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
			delta := int64(s.Val) - c.w.peerWin
			c.w.peerWin = int64(s.Val)
			for _, st := range c.w.streams {
				st.sendWin += delta
			}
			c.wcond.Broadcast()
		case http2.SettingMaxFrameSize:
			if s.Val < defaultMaxFrameSize || s.Val > 1<<24-1 {
				return http2.ConnectionError(http2.ErrCodeProtocol) // RFC 9113 6.5.2
			}
			c.w.maxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.w.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		code := http2.ErrCodeProtocol
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			code = http2.ErrCode(ce)
		}
		c.sendGoAwayLocked(code, nil)
		return err
	}
	c.appendFrameHeaderLocked(0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	c.flushLocked()
	return nil
}

func (c *conn) onPing(f *http2.PingFrame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if f.IsAck() {
		c.w.pingOut = false
		return nil
	}
	if c.w.resetPings {
		c.pingStrikes, c.lastPing, c.w.resetPings = 0, time.Time{}, false
	}
	now := time.Now()
	if len(c.w.streams) == 0 {
		// grpc-go's server, without PermitWithoutStream: a ping with no
		// call open is allowed once every two hours.
		if !c.lastPing.IsZero() && c.lastPing.Add(2*time.Hour).After(now) {
			c.pingStrikes++
		}
	} else if !c.lastPing.IsZero() && c.lastPing.Add(c.s.opts.KeepaliveMinTime).After(now) {
		c.pingStrikes++
	}
	c.lastPing = now
	if c.pingStrikes > maxPingStrikes {
		c.sendGoAwayLocked(http2.ErrCodeEnhanceYourCalm, []byte("too_many_pings"))
		return errors.New("h2grpc: too many pings")
	}
	c.appendFrameHeaderLocked(0, http2.FramePing, http2.FlagPingAck, 8)
	c.w.out = append(c.w.out, f.Data[:]...)
	c.flushLocked()
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if f.StreamID == 0 {
		c.w.sendWin += int64(f.Increment)
		if c.w.sendWin > 1<<31-1 {
			c.sendGoAwayLocked(http2.ErrCodeFlowControl, nil)
			return errors.New("h2grpc: connection window overflow")
		}
	} else if st := c.w.streams[f.StreamID]; st != nil {
		st.sendWin += int64(f.Increment)
	}
	c.wcond.Broadcast()
	return nil
}

// onData appends a DATA frame's bytes to its stream, returning the
// connection's window as they arrive (a stream's own window bounds what
// waits in it) and the stream's as its calls read them.
func (c *conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	c.recvConnWin -= n
	if c.recvConnWin < 0 {
		c.goAwayAndClose(http2.ErrCodeFlowControl, nil)
		return errors.New("h2grpc: connection window exceeded")
	}
	c.recvConnAcked += n
	if c.recvConnAcked >= int64(c.s.opts.ConnWindow)/4 {
		c.wmu.Lock()
		c.appendWindowUpdateLocked(0, uint32(c.recvConnAcked))
		c.flushLocked()
		c.wmu.Unlock()
		c.recvConnWin += c.recvConnAcked
		c.recvConnAcked = 0
	}
	if f.StreamID > c.maxStreamID {
		c.goAwayAndClose(http2.ErrCodeProtocol, nil)
		return errors.New("h2grpc: DATA on an idle stream")
	}
	c.wmu.Lock()
	st := c.w.streams[f.StreamID]
	c.wmu.Unlock()
	if st == nil {
		return nil // a stream closed already: the client may not know yet
	}
	st.receive(f.Data(), n, f.StreamEnded())
	return nil
}

// keepalive runs on the keepalive timer: a connection silent for
// KeepaliveTime is pinged, and closed if still silent KeepaliveTimeout
// later.
func (c *conn) keepalive() {
	active := c.activity.Swap(false)
	c.wmu.Lock()
	unanswered := false
	switch {
	case c.w.err != nil:
	case active:
		c.w.pingOut = false
		c.w.timer.Reset(c.s.opts.KeepaliveTime)
	case c.w.pingOut:
		unanswered = true
	default:
		c.w.pingOut = true
		c.appendFrameHeaderLocked(0, http2.FramePing, 0, 8)
		c.w.out = append(c.w.out, 0, 0, 0, 0, 0, 0, 0, 0)
		c.flushLocked()
		c.w.timer.Reset(c.s.opts.KeepaliveTimeout)
	}
	c.wmu.Unlock()
	if unanswered {
		c.close(errors.New("h2grpc: keepalive ping not answered"))
	}
}

// close closes the connection once: no more writes, every call's
// context cancelled, the socket closed (which ends the reader).
func (c *conn) close(err error) {
	if c.closed.Swap(true) {
		return
	}
	c.wmu.Lock()
	if c.w.err == nil {
		c.w.err = err
	}
	if c.w.timer != nil {
		c.w.timer.Stop()
	}
	streams := make([]*stream, 0, len(c.w.streams))
	for _, st := range c.w.streams {
		streams = append(streams, st)
	}
	c.wcond.Broadcast()
	c.wmu.Unlock()
	c.cancel()
	for _, st := range streams {
		st.abort(errConnClosed)
	}
	c.nc.Close()
}

// drainCalls is the connection's part of Server.GracefulStop: GOAWAY tells
// the client to open no more calls here (one it opens anyway is refused,
// and grpc-go's client retries it elsewhere); the unary calls already
// accepted run to their answers; then the streaming calls end (a watch or
// a lease keep-alive would never end by itself; clientv3 resumes them on
// another member) and the connection closes. Server.GracefulStop closes
// it early if the calls outlast its timeout.
//
// The answers are in the kernel once written, not yet with the client: a
// close with unread bytes from the client (its WINDOW_UPDATEs and PINGs)
// resets the connection and drops them. So the connection is half-closed
// first and the reader reads on until the client closes too, or for
// halfCloseWait (grpc-go's server, which does not half-close, waits for
// its reader likewise, up to a second, before closing).
func (c *conn) drainCalls() {
	c.wmu.Lock()
	if c.w.err == nil && c.w.open && !c.w.goAway {
		c.appendGoAwayLocked(http2.ErrCodeNo, nil)
		c.flushLocked()
	}
	c.w.draining = true
	for c.w.err == nil && c.unaryCallsLocked() > 0 {
		c.wcond.Wait()
	}
	// The streaming calls write nothing more (they end, Unavailable as
	// with Stop, once wmu is released); what the unary calls appended
	// goes out.
	ended := make([]*stream, 0, len(c.w.streams))
	for _, st := range c.w.streams {
		st.endLocked()
		ended = append(ended, st)
	}
	for c.w.err == nil && (c.w.writing || len(c.w.out) > 0) {
		c.flushLocked()
		c.wcond.Wait()
	}
	halfClose := c.w.err == nil && c.w.open
	if halfClose {
		c.w.err = errDraining // nothing more is written
		c.wcond.Broadcast()
	}
	c.wmu.Unlock()
	for _, st := range ended {
		st.abort(errConnClosed)
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); halfClose && ok && cw.CloseWrite() == nil {
		t := time.AfterFunc(halfCloseWait, func() { c.close(errDraining) })
		<-c.readerDone
		t.Stop()
	}
	c.close(errDraining)
}

// halfCloseWait bounds how long drainCalls waits for the client to close
// its side after the server closed its own.
var halfCloseWait = time.Second

// unaryCallsLocked counts the accepted calls that are not known to be
// streaming. REQUIRES: c.wmu held.
func (c *conn) unaryCallsLocked() int {
	n := 0
	for _, st := range c.w.streams {
		if !st.streaming {
			n++
		}
	}
	return n
}

func (c *conn) goAwayAndClose(code http2.ErrCode, debug []byte) {
	c.wmu.Lock()
	c.sendGoAwayLocked(code, debug)
	c.wmu.Unlock()
	c.close(fmt.Errorf("h2grpc: connection error %v", code))
}

func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.wmu.Lock()
	st := c.w.streams[id]
	c.appendRSTLocked(id, code)
	if st != nil {
		st.endLocked() // in the RST's critical section: no frame after it
	}
	c.flushLocked()
	c.wmu.Unlock()
	if st != nil {
		st.abort(errStreamReset(code))
	}
}

// Frame writers: each appends one frame to the out buffer; the caller
// holds wmu and calls flushLocked when done.

func (c *conn) appendFrameHeaderLocked(id uint32, t http2.FrameType, flags http2.Flags, length int) {
	c.w.out = append(c.w.out, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags))
	c.w.out = binary.BigEndian.AppendUint32(c.w.out, id&(1<<31-1))
}

func (c *conn) appendSettingsLocked() {
	settings := []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: c.s.opts.MaxConcurrentStreams},
		{ID: http2.SettingInitialWindowSize, Val: uint32(c.s.opts.StreamWindow)},
		{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	}
	c.appendFrameHeaderLocked(0, http2.FrameSettings, 0, 6*len(settings))
	for _, s := range settings {
		c.w.out = binary.BigEndian.AppendUint16(c.w.out, uint16(s.ID))
		c.w.out = binary.BigEndian.AppendUint32(c.w.out, s.Val)
	}
}

func (c *conn) appendWindowUpdateLocked(id, incr uint32) {
	c.appendFrameHeaderLocked(id, http2.FrameWindowUpdate, 0, 4)
	c.w.out = binary.BigEndian.AppendUint32(c.w.out, incr)
}

func (c *conn) appendRSTLocked(id uint32, code http2.ErrCode) {
	c.appendFrameHeaderLocked(id, http2.FrameRSTStream, 0, 4)
	c.w.out = binary.BigEndian.AppendUint32(c.w.out, uint32(code))
}

// appendGoAwayLocked appends GOAWAY naming the last stream the reader
// accepted; streams opened after it are refused (see onHeaders).
func (c *conn) appendGoAwayLocked(code http2.ErrCode, debug []byte) {
	c.w.goAway = true
	c.appendFrameHeaderLocked(0, http2.FrameGoAway, 0, 8+len(debug))
	// The reader writes maxStreamID under wmu (onHeaders), so wmu
	// suffices to read it here.
	c.w.out = binary.BigEndian.AppendUint32(c.w.out, c.maxStreamID)
	c.w.out = binary.BigEndian.AppendUint32(c.w.out, uint32(code))
	c.w.out = append(c.w.out, debug...)
}

// sendGoAwayLocked appends GOAWAY and writes everything appended before
// returning (within a second), so that the client reads why before the
// connection closes.
func (c *conn) sendGoAwayLocked(code http2.ErrCode, debug []byte) {
	c.appendGoAwayLocked(code, debug)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	for c.w.writing && c.w.err == nil {
		c.wcond.Wait()
	}
	if c.w.err == nil {
		c.nc.Write(c.w.out)
		c.w.out = c.w.out[:0]
	}
}

// appendHeadersLocked HPACK-encodes fields into a HEADERS frame (and
// CONTINUATION frames beyond the peer's frame size).
func (c *conn) appendHeadersLocked(id uint32, fields []hpack.HeaderField, endStream bool) {
	c.w.hbuf.Reset()
	for _, f := range fields {
		c.w.henc.WriteField(f)
	}
	block := c.w.hbuf.Bytes()
	t, flags := http2.FrameHeaders, http2.Flags(0)
	if endStream {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), c.w.maxFrame)
		fl := flags
		if n == len(block) {
			fl |= http2.FlagHeadersEndHeaders // == FlagContinuationEndHeaders
		}
		c.appendFrameHeaderLocked(id, t, fl, n)
		c.w.out = append(c.w.out, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			break
		}
		t, flags = http2.FrameContinuation, 0
	}
	c.w.resetPings = true
}

// flushLocked has the connection's writer write the out buffer to the
// socket. The writer is a goroutine of its own: a call's worker that
// wrote its answer and returned would have each answer in a write
// syscall of its own (16% of a leader's CPU under puts from 100 clients,
// against half that with one writer, which finds several answers
// waiting when it runs).
func (c *conn) flushLocked() {
	if c.w.err != nil {
		c.w.out = c.w.out[:0]
		return
	}
	if len(c.w.out) == 0 || c.w.writing || c.w.readerAnswering {
		return
	}
	c.w.writing = true
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeAnswers writes the out buffer from the reader goroutine, unless
// the writer is writing already (it then writes what is there too).
func (c *conn) writeAnswers() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.writing || len(c.w.out) == 0 || c.w.err != nil {
		return
	}
	c.w.writing = true
	c.drainLocked()
}

// drainLocked writes the out buffer to the socket, wmu released during
// each write, until it is empty or the connection fails; then clears
// writing (which the caller set) and wakes sendGoAwayLocked and throttle.
func (c *conn) drainLocked() {
	for len(c.w.out) > 0 && c.w.err == nil {
		buf := c.w.out
		c.w.out = c.w.spare[:0]
		c.wmu.Unlock()
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		c.w.spare = buf[:0]
		if err != nil && c.w.err == nil {
			c.w.err = err
			c.wcond.Broadcast()
			c.wmu.Unlock()
			c.close(err)
			c.wmu.Lock()
		}
	}
	c.w.writing = false
	c.wcond.Broadcast()
	if cap(c.w.spare) > 1<<20 {
		c.w.spare = nil // do not keep a large answer's buffer
	}
}

// writeLoop is the connection's writer: it writes what flushLocked asks
// for, outside the lock, until the connection closes.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.ctx.Done():
			return
		}
		c.wmu.Lock()
		if len(c.w.out) < minWriteBatch {
			// Yield once before a small write, as grpc-go's writer does:
			// the calls answered by the same applied batch are runnable,
			// and their answers then share the write. Without it, a
			// leader under puts from 100 clients wrote 1.8x as often.
			c.wmu.Unlock()
			runtime.Gosched()
			c.wmu.Lock()
		}
		c.drainLocked()
		c.wmu.Unlock()
	}
}

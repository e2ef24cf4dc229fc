package h2grpc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// msgHeaderLen is gRPC's message prefix: a compressed flag and a length.
const msgHeaderLen = 5

var (
	errConnClosed = status.Error(codes.Unavailable, "transport is closing")
	errDraining   = errors.New("h2grpc: server stopped gracefully")
)

func errStreamReset(code http2.ErrCode) error {
	if code == http2.ErrCodeCancel || code == http2.ErrCodeNo {
		return status.Error(codes.Canceled, context.Canceled.Error())
	}
	return status.Errorf(codes.Canceled, "stream reset by the client: %v", code)
}

// stream is one call. The reader fills its messages; the call's worker
// takes them (RecvMsg) and answers (SendMsg, finish).
type stream struct {
	c  *conn
	id uint32
	m  *method
	// ctx and cancel are set once (setContext, under c.wmu), after the
	// stream is in the connection's map: nil until then.
	ctx    context.Context
	cancel context.CancelFunc
	// encoding is the request's grpc-encoding ("" or "identity": none);
	// comp its compressor, registered with grpc's encoding package, which
	// also compresses the answers, as grpc-go's server does.
	encoding string
	comp     encoding.Compressor

	mu   sync.Mutex
	cond *sync.Cond
	r    struct {
		// buf holds received bytes not yet cut into messages; msgs the
		// messages cut, not yet taken.
		buf  []byte
		msgs [][]byte
		// ended is set by the client's END_STREAM; err by a reset, a
		// closed connection or a refused message.
		ended bool
		err   error
		// unacked counts bytes the call took that the stream's window
		// has not been given back.
		unacked int64
		// recvWin is what the client may still send on the stream.
		recvWin int64
		// dispatched is set once a unary call's worker has been started.
		dispatched bool
	}

	// Write side, under c.wmu.
	sendWin int64
	// streaming is set once the stream is known to call a streaming
	// method (Watch, LeaseKeepAlive, ...), which a draining connection
	// does not wait for (see conn.drainCalls).
	streaming  bool
	headerSent bool
	done       bool // trailers or RST_STREAM sent
	header     metadata.MD
	trailer    metadata.MD
}

// onHeaders opens a stream for a HEADERS frame (the client sends no
// trailers in gRPC: HEADERS on an open stream ends it).
func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 || id <= c.maxStreamID {
		c.wmu.Lock()
		st := c.w.streams[id]
		c.wmu.Unlock()
		if st != nil && f.StreamEnded() {
			st.receive(nil, 0, true)
			return nil
		}
		c.goAwayAndClose(http2.ErrCodeProtocol, nil)
		return errors.New("h2grpc: HEADERS on a closed or even stream")
	}
	st := &stream{c: c, id: id}
	st.cond = sync.NewCond(&st.mu)
	// Accepted or refused in one critical section with GOAWAY (see
	// conn.drainCalls): a stream GOAWAY counts as accepted is in the map.
	c.wmu.Lock()
	c.maxStreamID = id
	refused := c.w.goAway || uint32(len(c.w.streams)) >= c.s.opts.MaxConcurrentStreams
	if refused {
		c.appendRSTLocked(id, http2.ErrCodeRefusedStream)
		c.flushLocked()
	} else {
		st.sendWin = c.w.peerWin
		c.w.streams[id] = st
	}
	c.wmu.Unlock()
	if refused {
		return nil
	}
	if f.Truncated {
		// Past maxHeaderListSize, as grpc-go's server answers it.
		c.resetStream(id, http2.ErrCodeFrameSize)
		return nil
	}

	var path, contentType, timeout string
	post := false
	md := metadata.MD{}
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			post = hf.Value == "POST"
		case ":path":
			path = hf.Value
		case "content-type":
			contentType = hf.Value
			md[hf.Name] = append(md[hf.Name], hf.Value)
		case "grpc-timeout":
			timeout = hf.Value
		case "grpc-encoding":
			st.encoding = hf.Value
		default:
			// As grpc-go's: reserved headers are not metadata, but for
			// :authority and user-agent.
			if isReservedHeader(hf.Name) && hf.Name != ":authority" && hf.Name != "user-agent" {
				continue
			}
			v := hf.Value
			if strings.HasSuffix(hf.Name, "-bin") {
				b, err := decodeBinHeader(v)
				if err != nil {
					c.resetStream(id, http2.ErrCodeProtocol)
					return nil
				}
				v = string(b)
			}
			md[hf.Name] = append(md[hf.Name], v)
		}
	}
	if !post || !isGRPCContentType(contentType) {
		c.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	ctx := metadata.NewIncomingContext(c.ctx, md)
	if timeout != "" {
		d, err := decodeTimeout(timeout)
		if err != nil {
			st.setContext(context.WithCancel(ctx))
			st.finish(status.Newf(codes.Internal, "malformed grpc-timeout: %v", err))
			return nil
		}
		st.setContext(context.WithTimeout(ctx, d))
	} else {
		st.setContext(context.WithCancel(ctx))
	}
	st.r.recvWin = int64(c.s.opts.StreamWindow)

	m, msg := c.s.lookup(path)
	if m == nil {
		st.finish(status.New(codes.Unimplemented, msg))
		return nil
	}
	st.m = m
	if st.encoding != "" && st.encoding != "identity" {
		if st.comp = encoding.GetCompressor(st.encoding); st.comp == nil {
			st.finish(status.Newf(codes.Unimplemented, "grpc: Decompressor is not installed for grpc-encoding %q", st.encoding))
			return nil
		}
	}
	if m.stream != nil {
		c.wmu.Lock()
		st.streaming = true
		if c.w.draining {
			c.wcond.Broadcast() // drainCalls counts the calls left
		}
		c.wmu.Unlock()
		st.r.dispatched = true
		c.s.run(st.runStream)
	}
	if f.StreamEnded() {
		st.receive(nil, 0, true)
	}
	return nil
}

// isGRPCContentType reports whether ct is application/grpc or one of its
// subtypes (application/grpc+proto, application/grpc;...).
func isGRPCContentType(ct string) bool {
	const base = "application/grpc"
	if !strings.HasPrefix(ct, base) {
		return false
	}
	return len(ct) == len(base) || ct[len(base)] == '+' || ct[len(base)] == ';'
}

// decodeBinHeader decodes a -bin metadata value: base64, padded or not.
func decodeBinHeader(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// decodeTimeout parses a grpc-timeout value: at most 8 digits and a unit.
func decodeTimeout(s string) (time.Duration, error) {
	if len(s) < 2 || len(s) > 9 {
		return 0, fmt.Errorf("bad length %q", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("unknown unit in %q", s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad value %q", s)
	}
	if d := time.Duration(n); d > (1<<63-1)/unit {
		return 1<<63 - 1, nil
	}
	return time.Duration(n) * unit, nil
}

// receive takes a DATA frame's bytes (n counts its padding too) and the
// client's END_STREAM; it cuts whole messages and starts a unary call's
// worker once its request has ended.
func (st *stream) receive(data []byte, n int64, end bool) {
	st.mu.Lock()
	if st.r.err != nil {
		st.mu.Unlock()
		return
	}
	st.r.recvWin -= n
	if st.r.recvWin < 0 {
		st.mu.Unlock()
		st.c.resetStream(st.id, http2.ErrCodeFlowControl)
		return
	}
	// Padding is given back at once: no call takes it.
	st.r.unacked += n - int64(len(data))
	st.r.buf = append(st.r.buf, data...)
	var refuse *status.Status
	var grant int64
	for len(st.r.buf) >= msgHeaderLen {
		size := int(binary.BigEndian.Uint32(st.r.buf[1:5]))
		if size > st.c.s.opts.MaxRecvMsgSize {
			refuse = status.Newf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", size, st.c.s.opts.MaxRecvMsgSize)
			break
		}
		switch {
		case st.r.buf[0] > 1:
			refuse = status.Newf(codes.Internal, "grpc: received unexpected payload format %d", st.r.buf[0])
		case st.r.buf[0] == 1 && st.comp == nil:
			refuse = status.New(codes.Internal, "grpc: compressed flag set with identity or empty encoding")
		}
		if refuse != nil {
			break
		}
		if len(st.r.buf) < msgHeaderLen+size {
			if cap(st.r.buf) < msgHeaderLen+size {
				// Room for the whole message at once (a large value
				// arrives in 16 KiB frames) once an eighth of it has
				// come, not on the word of its prefix alone: before,
				// room for twice what came.
				want := msgHeaderLen + size
				if len(st.r.buf)*8 < want {
					want = min(want, 2*len(st.r.buf)+64<<10)
				}
				st.r.buf = append(make([]byte, 0, want), st.r.buf...)
			}
			// The rest of the message must fit the stream's window: a
			// message larger than what is left of it would stall the
			// client halfway (grpc-go's server grants what a message
			// needs as it starts reading it).
			if need := int64(msgHeaderLen + size - len(st.r.buf)); need > st.r.recvWin {
				grant = need - st.r.recvWin
				st.r.recvWin += grant
			}
			break
		}
		// A message keeps its prefix: its first byte says whether it is
		// compressed (see payload).
		msg := st.r.buf[: msgHeaderLen+size : msgHeaderLen+size]
		st.r.msgs = append(st.r.msgs, msg)
		st.r.buf = st.r.buf[msgHeaderLen+size:]
		if len(st.r.buf) == 0 {
			st.r.buf = nil // the messages keep the old array
		}
	}
	if refuse != nil {
		// A streaming call's RecvMsg returns the error (its handler
		// answers with it); a unary call is answered here.
		st.r.err = refuse.Err()
		st.r.buf, st.r.msgs = nil, nil
	}
	if end {
		st.r.ended = true
	}
	start := end && !st.r.dispatched && refuse == nil && st.m != nil
	if start {
		st.r.dispatched = true
	}
	answer := refuse != nil && !st.r.dispatched
	st.cond.Broadcast()
	st.mu.Unlock()
	if grant > 0 {
		st.giveWindow(grant)
	}
	if answer {
		st.finish(refuse)
		return
	}
	if start {
		st.start()
	}
}

// start runs a unary call whose request has ended: on the reader
// goroutine if Options.Inline says so, later where Options.Defer says,
// else on a worker.
func (st *stream) start() {
	c := st.c
	opts := &c.s.opts
	if opts.Inline == nil && opts.Defer == nil {
		c.s.run(st.runUnaryOnWorker)
		return
	}
	st.mu.Lock()
	var msg []byte
	if len(st.r.msgs) == 1 && st.r.msgs[0][0] == 0 {
		msg = st.r.msgs[0][msgHeaderLen:]
	}
	st.mu.Unlock()
	if msg == nil {
		c.s.run(st.runUnaryOnWorker)
		return
	}
	if opts.Inline != nil && opts.Inline(st.m.fullMethod, msg) {
		c.wmu.Lock()
		c.w.readerAnswering = true
		c.wmu.Unlock()
		st.runUnary(st.ctx, true)
		c.wmu.Lock()
		c.w.readerAnswering = false
		c.wmu.Unlock()
		c.answered = true
		return
	}
	if opts.Defer != nil && opts.Defer(st.ctx, st.m.fullMethod, msg, st.answer, st.dispatch) {
		return
	}
	c.s.run(st.runUnaryOnWorker)
}

// answer and dispatch are the callbacks Options.Defer takes.
func (st *stream) answer(ctx context.Context) { st.runUnary(ctx, true) }
func (st *stream) dispatch()                  { st.c.s.run(st.runUnaryOnWorker) }

// setContext sets the call's context, under c.wmu: the stream is in the
// connection's map already, where abort may find it (and, until then,
// the connection's context, which close cancels first, is its parent).
func (st *stream) setContext(ctx context.Context, cancel context.CancelFunc) {
	st.c.wmu.Lock()
	st.ctx, st.cancel = ctx, cancel
	st.c.wmu.Unlock()
}

// abort ends the stream (reset either way, or its connection closed):
// nothing more is written for it, its receiving ends with err, and its
// call's context is cancelled, in that order, so that the call's own
// finish, which either of the last two may set off, writes nothing after
// a reset.
func (st *stream) abort(err error) {
	c := st.c
	c.wmu.Lock()
	st.endLocked()
	c.wcond.Broadcast()
	cancel := st.cancel
	c.wmu.Unlock()
	st.mu.Lock()
	if st.r.err == nil {
		st.r.err = err
	}
	st.cond.Broadcast()
	st.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// endLocked marks the stream ended (nothing more is written for it) and
// forgets it.
func (st *stream) endLocked() {
	if !st.done {
		st.done = true
		st.c.removeStreamLocked(st)
	}
}

// removeStreamLocked forgets an ended stream.
func (c *conn) removeStreamLocked(st *stream) {
	delete(c.w.streams, st.id)
	if c.w.draining {
		c.wcond.Broadcast() // drainCalls counts the calls left
	}
}

// next waits for the next request message (with its prefix: see
// payload): nil and io.EOF once the client has ended the stream.
func (st *stream) next() ([]byte, error) {
	st.mu.Lock()
	for len(st.r.msgs) == 0 && st.r.err == nil && !st.r.ended && st.ctx.Err() == nil {
		st.waitLocked()
	}
	if len(st.r.msgs) > 0 {
		msg := st.r.msgs[0]
		st.r.msgs[0] = nil
		st.r.msgs = st.r.msgs[1:]
		st.r.unacked += int64(len(msg))
		var give int64
		if !st.r.ended && st.r.unacked >= int64(st.c.s.opts.StreamWindow)/4 {
			give, st.r.unacked = st.r.unacked, 0
			st.r.recvWin += give
		}
		st.mu.Unlock()
		if give > 0 {
			st.giveWindow(give)
		}
		return msg, nil
	}
	err := st.r.err
	ended := st.r.ended
	st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if ended {
		return nil, io.EOF
	}
	return nil, status.FromContextError(st.ctx.Err()).Err()
}

// giveWindow sends the client a WINDOW_UPDATE of n on the stream, unless
// it has ended. The caller holds neither lock (wmu is taken here).
func (st *stream) giveWindow(n int64) {
	c := st.c
	c.wmu.Lock()
	if !st.done {
		c.appendWindowUpdateLocked(st.id, uint32(n))
		c.flushLocked()
	}
	c.wmu.Unlock()
}

// waitLocked waits on cond, woken also when the call's context ends
// (a deadline passing wakes no one otherwise).
func (st *stream) waitLocked() {
	stop := context.AfterFunc(st.ctx, func() {
		st.mu.Lock()
		st.cond.Broadcast()
		st.mu.Unlock()
	})
	st.cond.Wait()
	stop()
}

// runUnary runs a unary call whose request has ended, with ctx (the
// stream's, or one Options.Defer derived from it); with noWait (on the
// connection's reader, or a goroutine answering many calls) it never
// waits for the client's windows: such an answer goes to a worker.
func (st *stream) runUnary(ctx context.Context, noWait bool) {
	msg, err := st.next()
	if err == io.EOF {
		st.finish(status.New(codes.Internal, "grpc: error while reading request: no message"))
		return
	}
	if err != nil {
		st.finish(status.Convert(err))
		return
	}
	st.mu.Lock()
	extra := len(st.r.msgs) > 0
	st.mu.Unlock()
	if extra {
		st.finish(status.New(codes.Internal, "grpc: more than one request message in a unary call"))
		return
	}
	codec := st.c.s.opts.Codec
	dec := func(v any) error {
		b, err := st.payload(msg)
		if err != nil {
			return err
		}
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, v); err != nil {
			return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
		}
		return nil
	}
	resp, appErr := st.m.unary(st.m.srv, ctx, dec, st.c.s.opts.UnaryInterceptor)
	if appErr != nil {
		st.finish(appStatus(appErr))
		return
	}
	out, err := codec.Marshal(resp)
	if err != nil {
		out.Free()
		st.finish(status.Newf(codes.Internal, "grpc: error while marshaling: %v", err))
		return
	}
	err = st.send(out, true, noWait)
	if err == errWouldWait {
		// An answer beyond the client's windows: a worker waits for
		// them.
		st.c.s.run(func() { st.sendAndFinish(out) })
		return
	}
	out.Free()
	st.finish(status.Convert(err)) // nil: OK
}

// sendAndFinish sends a unary call's answer, waiting for the windows, and
// its trailers.
func (st *stream) sendAndFinish(out mem.BufferSlice) {
	err := st.send(out, true, false)
	out.Free()
	st.finish(status.Convert(err))
}

func (st *stream) runUnaryOnWorker() { st.runUnary(st.ctx, false) }

// runStream runs a streaming call from its HEADERS on.
func (st *stream) runStream() {
	defer st.cancel()
	var err error
	if i := st.c.s.opts.StreamInterceptor; i != nil {
		err = i(st.m.srv, st, &st.m.streamInfo, st.m.stream)
	} else {
		err = st.m.stream(st.m.srv, st)
	}
	if err != nil {
		st.finish(appStatus(err))
		return
	}
	st.finish(nil)
}

// appStatus is the status a handler's error answers with, as grpc-go's.
func appStatus(err error) *status.Status {
	if s, ok := status.FromError(err); ok {
		return s
	}
	return status.FromContextError(err)
}

// errWouldWait is send's error, with noWait, for a message beyond the
// peer's windows.
var errWouldWait = errors.New("h2grpc: the answer needs window updates")

// send writes one answer message (its headers first, if not sent),
// waiting for the peer's windows; with noWait (the reader answering: it
// would wait for window updates only it can read) it writes nothing and
// returns errWouldWait when the message is beyond them. With last, the
// caller finishes next; nothing is flushed here then (finish flushes
// message and trailers in one write).
func (st *stream) send(out mem.BufferSlice, last, noWait bool) error {
	c := st.c
	var hdr [msgHeaderLen]byte
	if st.comp != nil {
		compressed, err := st.compress(out)
		if err != nil {
			return status.Errorf(codes.Internal, "grpc: error while compressing: %v", err)
		}
		out, hdr[0] = compressed, 1
	}
	binary.BigEndian.PutUint32(hdr[1:], uint32(out.Len()))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := st.writableLocked(); err != nil {
		return err
	}
	if noWait && int64(msgHeaderLen+out.Len()) > min(c.w.sendWin, st.sendWin) {
		return errWouldWait
	}
	if !st.headerSent {
		st.appendHeaderLocked()
	}
	// The message goes out in DATA frames within both windows and the
	// peer's frame size; the prefix and the message share frames.
	pending := make([][]byte, 0, 1+len(out))
	pending = append(pending, hdr[:])
	for _, b := range out {
		pending = append(pending, b.ReadOnlyData())
	}
	total := msgHeaderLen + out.Len()
	// cut ends a stream whose message was cut short (its context ended
	// while waiting for a window): trailers after part of a message
	// would hand the client a broken one, so the stream is reset.
	cut := func(err error) error {
		if total < msgHeaderLen+out.Len() && !st.done && c.w.err == nil {
			st.done = true
			c.appendRSTLocked(st.id, http2.ErrCodeCancel)
			c.removeStreamLocked(st)
			c.flushLocked()
		}
		return err
	}
	for total > 0 {
		for c.w.sendWin <= 0 || st.sendWin <= 0 {
			if err := st.writableLocked(); err != nil {
				return cut(err)
			}
			c.flushLocked()
			if c.w.sendWin > 0 && st.sendWin > 0 {
				break
			}
			st.waitWindowLocked()
			if err := st.writableLocked(); err != nil {
				return cut(err)
			}
		}
		n := min(int64(total), c.w.sendWin, st.sendWin, int64(c.w.maxFrame))
		c.appendFrameHeaderLocked(st.id, http2.FrameData, 0, int(n))
		for left := int(n); left > 0; {
			k := min(left, len(pending[0]))
			c.w.out = append(c.w.out, pending[0][:k]...)
			pending[0] = pending[0][k:]
			if len(pending[0]) == 0 {
				pending = pending[1:]
			}
			left -= k
		}
		c.w.sendWin -= n
		st.sendWin -= n
		total -= int(n)
		// Every DATA frame written starts the client's ping count
		// afresh, as grpc-go's: a client receiving a long answer pings
		// to estimate its bandwidth.
		c.w.resetPings = true
	}
	if !last {
		c.flushLocked()
	}
	return nil
}

// writableLocked is the error a send must stop on: the connection's, the
// stream's end, or its context's.
func (st *stream) writableLocked() error {
	if st.c.w.err != nil {
		return errConnClosed
	}
	if st.done {
		return status.Error(codes.Canceled, "the stream has ended")
	}
	if err := st.ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}

// waitWindowLocked waits on the connection's wcond for a window update,
// woken also when the call's context ends.
func (st *stream) waitWindowLocked() {
	c := st.c
	stop := context.AfterFunc(st.ctx, func() {
		c.wmu.Lock()
		c.wcond.Broadcast()
		c.wmu.Unlock()
	})
	c.wcond.Wait()
	stop()
}

func (st *stream) appendHeaderLocked() {
	fields := []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}
	if st.comp != nil {
		fields = append(fields, hpack.HeaderField{Name: "grpc-encoding", Value: st.comp.Name()})
	}
	fields = appendMD(fields, st.header)
	st.c.appendHeadersLocked(st.id, fields, false)
	st.headerSent = true
}

// finish sends the call's status in trailers (alone if no header was
// sent: a trailers-only answer) and ends the stream and its context; a
// nil s is OK. Once the stream has ended (reset, connection closed) it
// only cancels the context.
// A stream the client has not ended is reset after (NO_ERROR), as
// grpc-go's server does, so the client stops sending.
func (st *stream) finish(s *status.Status) {
	defer st.cancel()
	c := st.c
	c.wmu.Lock()
	if st.done || c.w.err != nil {
		c.wmu.Unlock()
		return
	}
	st.done = true
	var fields []hpack.HeaderField
	if !st.headerSent {
		fields = append(fields, hpack.HeaderField{Name: ":status", Value: "200"},
			hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
		fields = appendMD(fields, st.header)
	}
	code := codes.OK
	if s != nil {
		code = s.Code()
	}
	fields = append(fields, hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(code))})
	if s != nil && s.Message() != "" {
		fields = append(fields, hpack.HeaderField{Name: "grpc-message", Value: encodeGrpcMessage(s.Message())})
	}
	if s != nil && len(s.Proto().GetDetails()) > 0 {
		if b, err := proto.Marshal(s.Proto()); err == nil {
			fields = append(fields, hpack.HeaderField{Name: "grpc-status-details-bin", Value: base64.RawStdEncoding.EncodeToString(b)})
		}
	}
	fields = appendMD(fields, st.trailer)
	c.appendHeadersLocked(st.id, fields, true)
	st.mu.Lock()
	ended := st.r.ended
	st.mu.Unlock()
	if !ended {
		c.appendRSTLocked(st.id, http2.ErrCodeNo)
	}
	c.removeStreamLocked(st)
	c.flushLocked()
	c.wmu.Unlock()
}

// appendMD appends metadata as header fields, -bin values in base64.
func appendMD(fields []hpack.HeaderField, md metadata.MD) []hpack.HeaderField {
	for k, vs := range md {
		if isReservedHeader(k) {
			continue
		}
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			fields = append(fields, hpack.HeaderField{Name: k, Value: v})
		}
	}
	return fields
}

func isReservedHeader(k string) bool {
	if strings.HasPrefix(k, ":") {
		return true
	}
	switch k {
	case "content-type", "user-agent", "grpc-message-type", "grpc-encoding", "grpc-message",
		"grpc-status", "grpc-timeout", "grpc-status-details-bin", "te":
		return true
	}
	return false
}

// encodeGrpcMessage percent-encodes what grpc-message may not carry
// as is: bytes outside printable ASCII, and '%'.
func encodeGrpcMessage(msg string) string {
	clean := true
	for i := 0; i < len(msg); i++ {
		if b := msg[i]; b < ' ' || b > '~' || b == '%' {
			clean = false
			break
		}
	}
	if clean {
		return msg
	}
	var sb strings.Builder
	for i := 0; i < len(msg); i++ {
		b := msg[i]
		if b < ' ' || b > '~' || b == '%' {
			fmt.Fprintf(&sb, "%%%02X", b)
		} else {
			sb.WriteByte(b)
		}
	}
	return sb.String()
}

// The stream is a grpc.ServerStream for streaming handlers.
var _ grpc.ServerStream = (*stream)(nil)

func (st *stream) Context() context.Context { return st.ctx }

func (st *stream) SetHeader(md metadata.MD) error {
	c := st.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if st.headerSent || st.done {
		return status.Error(codes.Internal, "transport: the stream is done or WriteHeader was already called")
	}
	st.header = metadata.Join(st.header, md)
	return nil
}

func (st *stream) SendHeader(md metadata.MD) error {
	c := st.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if st.headerSent || st.done {
		return status.Error(codes.Internal, "transport: the stream is done or WriteHeader was already called")
	}
	if err := st.writableLocked(); err != nil {
		return err
	}
	st.header = metadata.Join(st.header, md)
	st.appendHeaderLocked()
	c.flushLocked()
	return nil
}

func (st *stream) SetTrailer(md metadata.MD) {
	c := st.c
	c.wmu.Lock()
	st.trailer = metadata.Join(st.trailer, md)
	c.wmu.Unlock()
}

func (st *stream) SendMsg(m any) error {
	out, err := st.c.s.opts.Codec.Marshal(m)
	if err != nil {
		out.Free()
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	err = st.send(out, false, false)
	out.Free()
	return err
}

func (st *stream) RecvMsg(m any) error {
	msg, err := st.next()
	if err != nil {
		return err
	}
	b, err := st.payload(msg)
	if err != nil {
		return err
	}
	if err := st.c.s.opts.Codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
		return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return nil
}

// payload is a received message's bytes (msg without its prefix),
// decompressed if its prefix says so, within MaxRecvMsgSize.
func (st *stream) payload(msg []byte) ([]byte, error) {
	if msg[0] == 0 {
		return msg[msgHeaderLen:], nil
	}
	r, err := st.comp.Decompress(bytes.NewReader(msg[msgHeaderLen:]))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "grpc: failed to decompress the received message: %v", err)
	}
	max := st.c.s.opts.MaxRecvMsgSize
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if rc, ok := r.(io.Closer); ok {
		rc.Close()
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "grpc: failed to decompress the received message: %v", err)
	}
	if len(b) > max {
		return nil, status.Errorf(codes.ResourceExhausted, "grpc: received message after decompression larger than max %d", max)
	}
	return b, nil
}

// compress is an answer's bytes compressed with the request's
// compressor.
func (st *stream) compress(out mem.BufferSlice) (mem.BufferSlice, error) {
	var buf bytes.Buffer
	w, err := st.comp.Compress(&buf)
	if err != nil {
		return nil, err
	}
	for _, b := range out {
		if _, err := w.Write(b.ReadOnlyData()); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(buf.Bytes())}, nil
}

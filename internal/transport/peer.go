package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// peer owns the message stream to one remote member. Its run goroutine is
// the only sender on the stream; Transport.Send feeds it through msgc.
type peer struct {
	t     *Transport
	id    uint64
	urls  []string
	msgc  chan raftpb.Message
	stopc chan struct{}
	m     peerMetrics
	once  sync.Once
	// callConn carries Calls to the peer; guarded by Transport.mu, closed
	// by stop.
	callConn *grpc.ClientConn
	callURL  int
	// buf is the raw connection's frame buffer, used by run's goroutine
	// only (under direct.mu).
	buf []byte
	// direct is Send's way straight to the raw connection's socket.
	direct direct
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	p := &peer{t: t, id: id, urls: urls, msgc: make(chan raftpb.Message, peerQueueLen), stopc: make(chan struct{}),
		m: t.cfg.Metrics.forPeer(id)}
	p.direct.kick = make(chan struct{}, 1)
	return p
}

// enqueue hands m to the peer's goroutine, or drops and reports it if the
// queue is full. REQUIRES: Transport.mu held (Send's).
func (p *peer) enqueue(m raftpb.Message) {
	p.direct.queued.Add(1)
	select {
	case p.msgc <- m:
	default:
		p.direct.queued.Add(-1)
		p.t.logger.Debug("peer queue full, dropping message", zap.String("peer", idString(m.To)), zap.Stringer("type", m.Type))
		if m.Type == raftpb.MsgHeartbeat {
			p.t.cfg.Metrics.heartbeatFailures.Inc()
		}
		p.t.reportFailure(m)
	}
}

// stop ends the peer's stream and its calls' connection.
// REQUIRES: Transport.mu held.
func (p *peer) stop() {
	p.once.Do(func() {
		close(p.stopc)
		if p.callConn != nil {
			p.callConn.Close()
		}
	})
}

// run keeps a connection open to the peer and sends what arrives on
// msgc, batching what is queued into one frame. While the peer is
// unreachable, queued messages are dropped and reported, and reconnection
// backs off. It sends on a raw message connection (raw.go), or, for one
// connection after a peer did not take that (a member from before them),
// on a gRPC stream.
func (p *peer) run() {
	logger := p.t.logger.With(zap.String("peer", idString(p.id)))
	backoff := minBackoff
	var conn *grpc.ClientConn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	urlIndex := 0
	reachable := true
	useGRPC := false
	for {
		var err error
		peerURL := p.urls[urlIndex%len(p.urls)]
		if useGRPC {
			if conn == nil {
				if conn, err = dial(peerURL, p.t.cfg.TLS, p.t.cfg.LocalAddr); err != nil {
					logger.Error("peer URL unusable", zap.Error(err))
					urlIndex++
					if !p.sleep(maxBackoff) {
						return
					}
					continue
				}
			}
			err = p.stream(conn)
			// The next connection tries the raw one again: the peer
			// may have been upgraded, or may have died at the hello.
			useGRPC = false
		} else {
			err = p.dialAndSend(peerURL)
			if errors.Is(err, errNoRawTransport) {
				logger.Info("peer takes messages on gRPC streams only; using those")
				useGRPC = true
				continue
			}
			if errors.Is(err, errUnusableURL) {
				logger.Error("peer URL unusable", zap.Error(err))
				urlIndex++
				if !p.sleep(maxBackoff) {
					return
				}
				continue
			}
		}
		if err == nil {
			return // stopped
		}
		// Logged once while the peer cannot be reached, and whenever a
		// connection that worked breaks.
		if reachable || errors.Is(err, errConnected) {
			logger.Warn("lost peer stream", zap.Error(err))
			reachable = false
		}
		p.t.cfg.Raft.ReportUnreachable(p.id)
		switch r := refusalOf(err); {
		case r == nil:
		case r.code == rawRemoved:
			logger.Warn("peer says this member was removed from the cluster")
			if p.t.cfg.OnRemoved != nil {
				p.t.cfg.OnRemoved()
			}
			backoff = maxBackoff
		case r.code == rawOtherCluster || r.code == rawOtherMember:
			// Another cluster, or another member at that address: keep
			// trying (it may be replaced), but slowly.
			backoff = maxBackoff
		}
		if conn != nil {
			conn.Close()
			conn = nil
		}
		urlIndex++
		if !p.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
		if errors.Is(err, errConnected) {
			backoff = minBackoff
		}
	}
}

// dialAndSend opens a raw message connection to peerURL and sends on it
// until it breaks (an error) or the peer stops (nil).
func (p *peer) dialAndSend(peerURL string) error {
	ctx, cancel := cancelOn(context.Background(), p.stopc)
	ctx, cancelDial := context.WithTimeout(ctx, p.t.cfg.DialTimeout)
	conn, err := dialRaw(ctx, peerURL, p.t.cfg.TLS, p.t.cfg.LocalAddr)
	cancelDial()
	cancel()
	if err != nil {
		select {
		case <-p.stopc:
			return nil
		default:
		}
		return err
	}
	return p.rawStream(conn)
}

// errConnected marks a stream that worked before it broke.
var errConnected = fmt.Errorf("transport: stream broke after working")

// sleep waits d while dropping (and reporting) queued messages; it
// returns false if the peer was stopped.
func (p *peer) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-p.stopc:
			return false
		case <-timer.C:
			return true
		case m := <-p.msgc:
			p.direct.queued.Add(-1)
			p.t.reportFailure(m)
		}
	}
}

// stream opens a message stream and sends on it until it breaks (an
// error) or the peer stops (nil).
func (p *peer) stream(conn *grpc.ClientConn) (err error) {
	// Stopping the peer cancels a send blocked on flow control too.
	ctx, cancel := cancelOn(p.t.outgoingContext(context.Background(), p.id), p.stopc)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/"+serviceName+"/Messages",
		grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return err
	}
	// A client stream learns that the server ended it only by receiving.
	// The receiver ends when the stream does, at the latest when its
	// context is cancelled, which the return below waits for.
	broken := make(chan error, 1)
	received := make(chan struct{})
	go func() {
		defer close(received)
		var ack []byte
		err := stream.RecvMsg(&ack)
		if err == nil {
			err = fmt.Errorf("transport: peer closed the stream")
		}
		broken <- err
	}()
	defer func() {
		cancel()
		<-received
	}()
	return p.sendLoop(broken, func(batch []raftpb.Message, size int) (int, error) {
		if len(batch) == 0 {
			return 0, nil
		}
		// A buffer from gRPC's pool per frame, which gRPC puts back once
		// it has written the frame (it queues the bytes without copying,
		// so the frame outlives SendMsg). The bound covers the cluster ID
		// and each length.
		bufp := framePool.Get(size + 16 + 10*len(batch))
		frame := encodeBatch((*bufp)[:0], p.t.cfg.ClusterID, batch)
		msg := any(&frame)
		if len(frame) <= cap(*bufp) {
			*bufp = frame
			msg = pooledFrame{bufp}
		} else {
			// encodeBatch grew a buffer of its own: bufp is not sent.
			framePool.Put(bufp)
		}
		return len(frame), stream.SendMsg(msg)
	}, func(err error) error {
		if err != io.EOF {
			return err
		}
		// The server ended the stream; its status is what the receiver
		// above gets. Not a second RecvMsg here: two at once on one
		// stream are not allowed, and this one waited for ever at a
		// shutdown (the stream's context is cancelled only when this
		// returns).
		select {
		case err = <-broken:
			return err
		case <-p.stopc:
			return errPeerStopped
		}
	})
}

// errPeerStopped is a send given up because the peer stopped.
var errPeerStopped = errors.New("transport: peer stopped")

// sendLoop sends what arrives on msgc with send, batching what is queued
// into one call, until the peer stops (nil), the connection breaks (the
// error from broken) or a send fails: its batch is reported, and explain
// turns send's error into the one to return (errPeerStopped for nil).
// send returns how many bytes it wrote.
func (p *peer) sendLoop(broken <-chan error, send func(batch []raftpb.Message, size int) (int, error),
	explain func(error) error) (err error) {
	sent := false
	// The peer counts as active while the connection is open, as etcd's
	// peer status.
	p.t.setActive(p, true)
	defer func() {
		p.t.setActive(p, false)
		if err != nil {
			p.t.cfg.Metrics.disconnectedPeers.WithLabelValues(idString(p.t.cfg.LocalID), idString(p.id)).Inc()
		}
	}()
	var batch []raftpb.Message
	for {
		var m raftpb.Message
		select {
		case <-p.stopc:
			return nil
		case err := <-broken:
			if sent {
				return fmt.Errorf("%w: %w", errConnected, err)
			}
			return err
		case <-p.direct.kick:
			// Bytes a direct write left over: written before anything
			// else (an empty batch writes only those).
			if _, err := send(nil, 0); err != nil {
				if err = explain(err); err == errPeerStopped {
					return nil
				}
				return fmt.Errorf("%w: %w", errConnected, err)
			}
			continue
		case m = <-p.msgc:
		}
		batch = append(batch[:0], m)
		size := m.Size()
	drain:
		for size < maxBatchBytes && len(batch) < 1024 {
			select {
			case m := <-p.msgc:
				batch = append(batch, m)
				size += m.Size()
			default:
				break drain
			}
		}
		n, err := send(batch, size)
		// Written or lost: direct writes may pass them now.
		p.direct.queued.Add(-int64(len(batch)))
		if err != nil {
			for _, m := range batch {
				p.t.reportFailure(m)
			}
			if err = explain(err); err == errPeerStopped {
				return nil
			}
			if sent {
				return fmt.Errorf("%w: %w", errConnected, err)
			}
			return err
		}
		p.m.sentBytes.Add(float64(n))
		sent = true
	}
}

func encodeBatch(buf []byte, clusterID uint64, msgs []raftpb.Message) []byte {
	buf = binary.BigEndian.AppendUint64(buf, clusterID)
	buf = binary.AppendUvarint(buf, uint64(len(msgs)))
	for i := range msgs {
		buf = binary.AppendUvarint(buf, uint64(msgs[i].Size()))
		buf = msgs[i].MarshalTo(buf)
	}
	return buf
}

// decodeBatch decodes a frame of messages. They point into frame, which
// must not be modified or reused afterwards (every receive makes a new one).
func decodeBatch(frame []byte, clusterID uint64) ([]raftpb.Message, error) {
	if len(frame) < 8 {
		return nil, fmt.Errorf("transport: short frame")
	}
	if c := binary.BigEndian.Uint64(frame); c != clusterID {
		return nil, fmt.Errorf("%w: frame of cluster %s", ErrClusterMismatch, idString(c))
	}
	frame = frame[8:]
	n, k := binary.Uvarint(frame)
	if k <= 0 || n > uint64(len(frame)) {
		return nil, fmt.Errorf("transport: bad message count")
	}
	frame = frame[k:]
	// No preallocation by the count: a frame cannot make us allocate
	// more than its messages take.
	var msgs []raftpb.Message
	for i := range int(n) {
		msgs = append(msgs, raftpb.Message{})
		l, k := binary.Uvarint(frame)
		if k <= 0 || l > uint64(len(frame)-k) {
			return nil, fmt.Errorf("transport: bad message length")
		}
		if err := msgs[i].UnmarshalAliased(frame[k : k+int(l)]); err != nil {
			return nil, fmt.Errorf("transport: message %d: %w", i, err)
		}
		frame = frame[k+int(l):]
	}
	if len(frame) != 0 {
		return nil, fmt.Errorf("transport: %d trailing bytes", len(frame))
	}
	return msgs, nil
}

// rawCodec passes frames through as bytes: the peer protocol is not
// protobuf.
// rawCodec sends and receives []byte as is (a gRPC CodecV2: a received
// message is copied once, out of gRPC's pooled buffers, into a new slice
// that the receiver owns).
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch b := v.(type) {
	case *[]byte:
		return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
	case pooledFrame:
		return mem.BufferSlice{mem.NewBuffer(b.buf, framePool)}, nil
	}
	return nil, fmt.Errorf("transport: cannot encode %T", v)
}

// framePool holds the buffers of message frames (peer.stream).
var framePool = mem.DefaultBufferPool()

// pooledFrame is a message frame in a buffer from framePool: gRPC returns
// it there when it has written it. Nothing else may hold buf.
type pooledFrame struct{ buf *[]byte }

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("transport: cannot decode into %T", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "cairn-raw" }

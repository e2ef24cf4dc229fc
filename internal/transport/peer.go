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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

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
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	return &peer{t: t, id: id, urls: urls, msgc: make(chan raftpb.Message, peerQueueLen), stopc: make(chan struct{}),
		m: t.cfg.Metrics.forPeer(id)}
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

// run keeps a stream open to the peer and sends what arrives on msgc,
// batching what is queued into one frame. While the peer is unreachable,
// queued messages are dropped and reported, and reconnection backs off.
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
	for {
		if conn == nil {
			var err error
			if conn, err = dial(p.urls[urlIndex%len(p.urls)], p.t.cfg.TLS); err != nil {
				logger.Error("peer URL unusable", zap.Error(err))
				urlIndex++
				if !p.sleep(maxBackoff) {
					return
				}
				continue
			}
		}
		err := p.stream(conn)
		if err == nil {
			return // stopped
		}
		if reachable {
			logger.Warn("lost peer stream", zap.Error(err))
			reachable = false
		}
		p.t.cfg.Raft.ReportUnreachable(p.id)
		if st, ok := status.FromError(err); ok && st.Code() == codes.PermissionDenied && st.Message() == ErrMemberRemoved.Error() {
			logger.Warn("peer says this member was removed from the cluster")
			if p.t.cfg.OnRemoved != nil {
				p.t.cfg.OnRemoved()
			}
			backoff = maxBackoff
		}
		if status.Code(err) == codes.FailedPrecondition {
			// Another cluster, or another member at that address: keep
			// trying (it may be replaced), but slowly.
			backoff = maxBackoff
		}
		conn.Close()
		conn = nil
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
	sent := false
	// The peer counts as active while the stream is open (gRPC opened it
	// on a ready connection), as etcd's peer status.
	active := p.t.cfg.Metrics.activePeers.WithLabelValues(idString(p.t.cfg.LocalID), idString(p.id))
	active.Set(1)
	p.t.setActive(p.id, true)
	defer func() {
		active.Set(0)
		p.t.setActive(p.id, false)
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
				return fmt.Errorf("%w: %v", errConnected, err)
			}
			return err
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
		// A buffer from gRPC's pool per frame, which gRPC puts back once
		// it has written the frame (it queues the bytes without copying,
		// so the frame outlives SendMsg): frames were a sixteenth of
		// what a busy leader allocated. The bound covers the cluster ID
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
		if err := stream.SendMsg(msg); err != nil {
			for _, m := range batch {
				p.t.reportFailure(m)
			}
			if err == io.EOF {
				// The server ended the stream; its status is what the
				// receiver above gets. Not a second RecvMsg here: two at
				// once on one stream are not allowed, and this one waited
				// for ever at a shutdown (the stream's context is
				// cancelled only when this returns).
				select {
				case err = <-broken:
				case <-p.stopc:
					return nil
				}
			}
			if sent {
				return fmt.Errorf("%w: %v", errConnected, err)
			}
			return err
		}
		p.m.sentBytes.Add(float64(len(frame)))
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

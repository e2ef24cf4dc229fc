package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
)

const (
	serviceName = "cairn.peer.Raft"
	// peerQueueLen bounds the messages waiting for one peer's stream;
	// beyond it messages are dropped and reported unreachable.
	peerQueueLen = 4096
	// maxBatchBytes bounds one Messages frame (a single larger message is
	// sent alone).
	maxBatchBytes = 4 << 20
	// snapshotChunkBytes is the image bytes per Snapshot frame.
	snapshotChunkBytes = 1 << 20
	// MaxFrameBytes is the largest frame a peer server accepts.
	MaxFrameBytes = 256 << 20

	// flowWindowBytes is the HTTP/2 flow-control window of peer streams
	// and connections.
	flowWindowBytes = 16 << 20

	keepaliveTime    = 2 * time.Second
	keepaliveTimeout = 2 * time.Second

	mdCluster = "cairn-cluster-id"
	mdFrom    = "cairn-from"
	mdTo      = "cairn-to"
)

// ErrClusterMismatch is a peer stream or frame from another cluster.
var ErrClusterMismatch = errors.New("transport: cluster ID mismatch")

// Raft is the local member's raft loop, as the transport sees it.
type Raft interface {
	// Process hands a received message to raft.
	Process(ctx context.Context, m raftpb.Message) error
	// ReportUnreachable says a message to id was not delivered.
	ReportUnreachable(id uint64)
	// ReportSnapshot says how sending a snapshot to id ended.
	ReportSnapshot(id uint64, ok bool)
}

// Snapshots supplies the images snapshots carry.
type Snapshots interface {
	// OpenImage returns an image to send for the snapshot at index, and
	// the snapshot metadata that image holds, which can be past index (a
	// newer image is as good, and the follower skips what it holds): the
	// message is sent with that metadata.
	OpenImage(index uint64) (io.ReadCloser, snap.ImageInfo, raftpb.SnapshotMetadata, error)
	// SaveImage stores a received image for the snapshot at index,
	// checking it against what the sender reported.
	SaveImage(index uint64, r io.Reader, want snap.ImageInfo) error
}

// Config configures a Transport.
type Config struct {
	LocalID   uint64
	ClusterID uint64
	Raft      Raft
	Snapshots Snapshots
	// Calls, if set, serves what peers forward (see Call).
	Calls  Calls
	Logger *zap.Logger
	// DialTimeout bounds connecting to a peer. Default 1s.
	DialTimeout time.Duration
	// Metrics count what is sent and received. Default: metrics of the
	// transport's own, not registered.
	Metrics *Metrics
	// Removed, if set, reports whether a member was removed from the
	// cluster: its streams are refused with ErrMemberRemoved, which tells
	// it (etcd's peers answer such a member 410 Gone).
	Removed func(id uint64) bool
	// OnRemoved, if set, is called (from a peer goroutine, possibly more
	// than once) when a peer refuses this member as removed.
	OnRemoved func()
	// Cluster, if set, answers a joining member's FetchCluster: this
	// member's view of the cluster, in the caller's encoding.
	Cluster func() ([]byte, error)
	// TLS is what this member dials https:// and unixs:// peer URLs with
	// (the peer CA, and the peer client certificate presented when
	// asked). Nil: such URLs cannot be dialled.
	TLS *tls.Config
	// LocalAddr, if set, is the source address of this member's TCP
	// connections to peers (etcd's --feature-gates=SetMemberLocalAddr=true:
	// a peer that checks the IP addresses in this member's certificate
	// sees the address the certificate names). Nil: the kernel's choice.
	LocalAddr net.IP
}

// ErrMemberRemoved is a peer's answer to a member removed from the
// cluster, in etcd's words.
var ErrMemberRemoved = errors.New("the member has been permanently removed from the cluster")

// Transport sends raft messages to peers and receives theirs. Its methods
// are safe for concurrent use.
type Transport struct {
	cfg    Config
	logger *zap.Logger

	// stopc is closed by Stop; every goroutine the transport starts
	// watches it, and wg waits for them.
	stopc chan struct{}
	wg    sync.WaitGroup

	mu struct {
		sync.Mutex
		peers map[uint64]*peer
		// activeSince is when the stream to each peer last opened, for
		// the peers whose stream is open now.
		activeSince map[uint64]time.Time
		// snapshotting holds the peers with a snapshot in flight.
		snapshotting map[uint64]bool
		// batch is Send's scratch: one peer's messages.
		batch []raftpb.Message
		// inbound holds the raw message connections being received,
		// which Stop closes.
		inbound map[net.Conn]struct{}
		stopped bool
	}
}

// New returns a transport with no peers.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	t := &Transport{cfg: cfg, logger: cfg.Logger, stopc: make(chan struct{})}
	t.mu.peers = map[uint64]*peer{}
	t.mu.activeSince = map[uint64]time.Time{}
	t.mu.snapshotting = map[uint64]bool{}
	t.mu.inbound = map[net.Conn]struct{}{}
	return t
}

// ServerOptions are the options the peer gRPC server needs.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.MaxRecvMsgSize(MaxFrameBytes),
		grpc.MaxSendMsgSize(MaxFrameBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		// Static flow-control windows: gRPC then stops estimating the
		// bandwidth-delay product, whose PING frames and window updates
		// cost a write per raft message.
		grpc.InitialWindowSize(flowWindowBytes),
		grpc.InitialConnWindowSize(flowWindowBytes),
	}
}

// Register adds the peer service to s, which must have been built with
// ServerOptions.
func (t *Transport) Register(s *grpc.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Call", Handler: t.handleCall}, {MethodName: "Cluster", Handler: t.handleCluster}},
		Streams: []grpc.StreamDesc{
			{StreamName: "Messages", Handler: t.handleMessages, ClientStreams: true},
			{StreamName: "Snapshot", Handler: t.handleSnapshot, ClientStreams: true},
		},
		Metadata: "cairn/peer",
	}, t)
}

// SetPeer adds peer id at urls, or updates its URLs.
func (t *Transport) SetPeer(id uint64, urls []string) {
	if id == t.cfg.LocalID || len(urls) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.stopped {
		return
	}
	if p, ok := t.mu.peers[id]; ok {
		if slices.Equal(p.urls, urls) {
			return
		}
		t.dropPeerLocked(p)
	}
	p := newPeer(t, id, urls)
	t.mu.peers[id] = p
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		p.run()
	}()
}

// RemovePeer stops sending to id.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.mu.peers[id]; ok {
		t.dropPeerLocked(p)
	}
}

// ActiveSince returns when the message stream to peer id opened, or the
// zero time if it is not open now (etcd's ActiveSince: a peer is healthy
// when it has been reachable for a while).
func (t *Transport) ActiveSince(id uint64) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.activeSince[id]
}

func (t *Transport) setActive(p *peer, active bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.peers[p.id] != p {
		// Stopped, and replaced or removed: its successor's state (or
		// none, set by dropPeerLocked) stands.
		return
	}
	t.setActiveLocked(p.id, active)
}

// setActiveLocked records whether the connection to peer id is open.
// REQUIRES: t.mu held.
func (t *Transport) setActiveLocked(id uint64, active bool) {
	g := t.cfg.Metrics.activePeers.WithLabelValues(idString(t.cfg.LocalID), idString(id))
	if active {
		t.mu.activeSince[id] = time.Now()
		g.Set(1)
	} else {
		delete(t.mu.activeSince, id)
		g.Set(0)
	}
}

// dropPeerLocked stops peer p, which leaves the transport or is replaced.
// REQUIRES: t.mu held.
func (t *Transport) dropPeerLocked(p *peer) {
	p.stop()
	delete(t.mu.peers, p.id)
	t.setActiveLocked(p.id, false)
}

// Peers returns the IDs of the peers the transport sends to.
func (t *Transport) Peers() []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]uint64, 0, len(t.mu.peers))
	for id := range t.mu.peers {
		ids = append(ids, id)
	}
	return ids
}

// Send sends messages to their peers: a peer's messages are written to
// its socket here if that cannot block (direct.go), else queued for its
// goroutine. It never blocks: a message that cannot be queued is dropped
// and reported.
func (t *Transport) Send(msgs []raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var seenArr [8]uint64
	seen := seenArr[:0] // the peers whose messages are sent already
	for i, m := range msgs {
		if m.To == t.cfg.LocalID {
			continue
		}
		p, ok := t.mu.peers[m.To]
		if !ok || t.mu.stopped {
			t.reportFailure(m)
			continue
		}
		if m.Type == raftpb.MsgSnap {
			t.startSnapshotLocked(p, m)
			continue
		}
		if slices.Contains(seen, m.To) {
			continue
		}
		seen = append(seen, m.To)
		// This peer's first message here: its messages, in order.
		batch := t.mu.batch[:0]
		for _, m := range msgs[i:] {
			if m.To == p.id && m.Type != raftpb.MsgSnap {
				batch = append(batch, m)
			}
		}
		t.mu.batch = batch[:0]
		if !p.tryWrite(batch) {
			for _, m := range batch {
				p.enqueue(m)
			}
		}
		clear(batch) // nothing of raft's kept past Send
	}
}

func (t *Transport) reportFailure(m raftpb.Message) {
	t.cfg.Metrics.sentFailures.WithLabelValues(idString(m.To)).Inc()
	if m.Type == raftpb.MsgSnap {
		t.cfg.Raft.ReportSnapshot(m.To, false)
	}
	t.cfg.Raft.ReportUnreachable(m.To)
}

// Stop closes every connection and waits for the transport's goroutines.
func (t *Transport) Stop() {
	t.mu.Lock()
	if t.mu.stopped {
		t.mu.Unlock()
		return
	}
	t.mu.stopped = true
	close(t.stopc)
	for _, p := range t.mu.peers {
		t.dropPeerLocked(p)
	}
	for c := range t.mu.inbound {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// outgoingContext carries the stream's identity to the receiver.
func (t *Transport) outgoingContext(ctx context.Context, to uint64) context.Context {
	return metadata.AppendToOutgoingContext(ctx, mdCluster, idString(t.cfg.ClusterID),
		mdFrom, idString(t.cfg.LocalID), mdTo, idString(to))
}

// checkStream checks an incoming gRPC stream's metadata and returns the
// sender.
func (t *Transport) checkStream(ctx context.Context) (from uint64, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) (uint64, error) {
		v := md.Get(k)
		if len(v) != 1 {
			return 0, fmt.Errorf("missing %s", k)
		}
		return strconv.ParseUint(v[0], 16, 64)
	}
	cluster, err1 := get(mdCluster)
	from, err2 := get(mdFrom)
	to, err3 := get(mdTo)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.logger.Warn("rejected peer stream with bad metadata", zap.Error(err))
		return 0, status.Errorf(codes.InvalidArgument, "transport: bad stream metadata: %v", err)
	}
	if r := t.checkIdentity(cluster, from, to); r != nil {
		return 0, r.grpcStatus()
	}
	return from, nil
}

// checkIdentity checks what a stream or connection says of itself: the
// sender's cluster, the sender, and the member it is meant for. It
// returns nil if they are to be served, else the refusal (logged).
func (t *Transport) checkIdentity(cluster, from, to uint64) *refusal {
	if cluster != t.cfg.ClusterID {
		t.logger.Error("rejected peer stream from another cluster",
			zap.String("remote-member", idString(from)), zap.String("remote-cluster", idString(cluster)),
			zap.String("local-cluster", idString(t.cfg.ClusterID)))
		return &refusal{code: rawOtherCluster, text: fmt.Sprintf("%v: member %s is in cluster %s, this is cluster %s",
			ErrClusterMismatch, idString(from), idString(cluster), idString(t.cfg.ClusterID))}
	}
	if r := t.refuseRemoved(from); r != nil {
		return r
	}
	if to != t.cfg.LocalID {
		t.logger.Error("rejected peer stream meant for another member",
			zap.String("remote-member", idString(from)), zap.String("meant-for", idString(to)))
		return &refusal{code: rawOtherMember, text: fmt.Sprintf("transport: stream meant for member %s reached member %s",
			idString(to), idString(t.cfg.LocalID))}
	}
	return nil
}

// refuseRemoved is the refusal of member from if it was removed from the
// cluster (ErrMemberRemoved, which tells it), else nil.
func (t *Transport) refuseRemoved(from uint64) *refusal {
	if t.cfg.Removed == nil || !t.cfg.Removed(from) {
		return nil
	}
	t.logger.Warn("rejected peer stream from a removed member", zap.String("remote-member", idString(from)))
	return &refusal{code: rawRemoved, text: ErrMemberRemoved.Error()}
}

// handleMessages receives one peer's message stream.
func (t *Transport) handleMessages(_ any, stream grpc.ServerStream) error {
	from, err := t.checkStream(stream.Context())
	if err != nil {
		return err
	}
	received := t.cfg.Metrics.receivedBytes.WithLabelValues(idString(from))
	for {
		var frame []byte
		if err := stream.RecvMsg(&frame); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		received.Add(float64(len(frame)))
		r, err := t.receiveFrame(stream.Context(), from, frame)
		if r != nil {
			return r.grpcStatus()
		}
		if err != nil {
			return status.FromContextError(err).Err()
		}
	}
}

// receiveFrame hands raft the messages of a Messages frame received from
// member from, on a gRPC stream or a raw connection. It returns the
// refusal that ends the stream (the sender was removed, the frame is bad),
// or Raft.Process's error; a message whose From or To is not the stream's
// is dropped and logged.
func (t *Transport) receiveFrame(ctx context.Context, from uint64, frame []byte) (*refusal, error) {
	// A stream opened before its sender was removed: the sender may never
	// apply its own removal (the leader stops sending to it once
	// removed), so this refusal is how it learns.
	if r := t.refuseRemoved(from); r != nil {
		return r, nil
	}
	msgs, err := decodeBatch(frame, t.cfg.ClusterID)
	if err != nil {
		t.logger.Error("dropped a bad frame from a peer", zap.String("remote-member", idString(from)), zap.Error(err))
		return &refusal{code: rawBadFrame, text: err.Error()}, nil
	}
	for _, m := range msgs {
		if m.From != from || m.To != t.cfg.LocalID {
			t.logger.Error("dropped a message not matching its stream", zap.String("stream-from", idString(from)),
				zap.String("from", idString(m.From)), zap.String("to", idString(m.To)))
			continue
		}
		if err := t.cfg.Raft.Process(ctx, m); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// handleSnapshot receives one snapshot: its image, then its message.
func (t *Transport) handleSnapshot(_ any, stream grpc.ServerStream) error {
	from, err := t.checkStream(stream.Context())
	if err != nil {
		return err
	}
	var head []byte
	if err := stream.RecvMsg(&head); err != nil {
		return err
	}
	if len(head) < 20 {
		return status.Error(codes.InvalidArgument, "transport: short snapshot header")
	}
	if c := binary.BigEndian.Uint64(head); c != t.cfg.ClusterID {
		return status.Errorf(codes.FailedPrecondition, "%v: snapshot frame of cluster %s", ErrClusterMismatch, idString(c))
	}
	info := snap.ImageInfo{Size: int64(binary.BigEndian.Uint64(head[8:])), CRC: binary.BigEndian.Uint32(head[16:])}
	var m raftpb.Message
	if err := m.Unmarshal(head[20:]); err != nil || m.Type != raftpb.MsgSnap || m.From != from || m.To != t.cfg.LocalID {
		return status.Errorf(codes.InvalidArgument, "transport: bad snapshot message (%v)", err)
	}
	t.logger.Info("receiving database snapshot", zap.String("local-member-id", idString(t.cfg.LocalID)),
		zap.String("remote-snapshot-sender-id", idString(from)),
		zap.Uint64("incoming-snapshot-index", m.Snapshot.Metadata.Index), zap.Int64("bytes", info.Size))
	start := time.Now()
	fromLabel := idString(from)
	received := t.cfg.Metrics.receivedBytes.WithLabelValues(fromLabel)
	received.Add(float64(len(head)))
	r := &streamReader{stream: stream, received: received}
	if err := t.cfg.Snapshots.SaveImage(m.Snapshot.Metadata.Index, r, info); err != nil {
		t.cfg.Metrics.snapshotRecvFail.WithLabelValues(fromLabel).Inc()
		t.logger.Error("failed to save incoming database snapshot", zap.String("local-member-id", idString(t.cfg.LocalID)),
			zap.String("remote-snapshot-sender-id", idString(from)),
			zap.Uint64("incoming-snapshot-index", m.Snapshot.Metadata.Index), zap.Error(err))
		return status.Errorf(codes.DataLoss, "transport: storing snapshot image: %v", err)
	}
	t.cfg.Metrics.snapshotRecv.WithLabelValues(fromLabel).Inc()
	t.cfg.Metrics.snapshotRecvTime.WithLabelValues(fromLabel).Observe(time.Since(start).Seconds())
	t.logger.Info("received and saved database snapshot", zap.String("local-member-id", idString(t.cfg.LocalID)),
		zap.String("remote-snapshot-sender-id", idString(from)),
		zap.Uint64("incoming-snapshot-index", m.Snapshot.Metadata.Index), zap.Duration("took", time.Since(start)))
	if err := t.cfg.Raft.Process(stream.Context(), m); err != nil {
		return status.FromContextError(err).Err()
	}
	return stream.SendMsg(&[]byte{})
}

// streamReader reads the image frames of a snapshot stream as one stream
// of bytes.
type streamReader struct {
	stream   grpc.ServerStream
	received prometheus.Counter
	buf      []byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		var frame []byte
		if err := r.stream.RecvMsg(&frame); err != nil {
			return 0, err // io.EOF at the end of the image
		}
		r.received.Add(float64(len(frame)))
		r.buf = frame
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// startSnapshotLocked sends m (a MsgSnap) on its own connection, one at a
// time per peer. REQUIRES: t.mu held.
func (t *Transport) startSnapshotLocked(p *peer, m raftpb.Message) {
	if t.mu.snapshotting[m.To] {
		// Raft sends one snapshot at a time; a second is a retry after a
		// failure report. Let the running one finish.
		t.cfg.Raft.ReportSnapshot(m.To, false)
		return
	}
	t.mu.snapshotting[m.To] = true
	urls := p.urls
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		start := time.Now()
		t.logger.Info("sending database snapshot", zap.String("remote-peer-id", idString(m.To)),
			zap.Uint64("snapshot-index", m.Snapshot.Metadata.Index))
		err := t.sendSnapshot(urls, m)
		to := idString(m.To)
		if err != nil {
			t.cfg.Metrics.snapshotSendFail.WithLabelValues(to).Inc()
		} else {
			t.cfg.Metrics.snapshotSent.WithLabelValues(to).Inc()
			t.cfg.Metrics.snapshotSendTime.WithLabelValues(to).Observe(time.Since(start).Seconds())
		}
		t.mu.Lock()
		delete(t.mu.snapshotting, m.To)
		t.mu.Unlock()
		if err != nil {
			t.logger.Warn("failed to send database snapshot", zap.String("remote-peer-id", idString(m.To)),
				zap.Uint64("snapshot-index", m.Snapshot.Metadata.Index), zap.Error(err))
		} else {
			// etcd's words, which etcd's tests wait for.
			t.logger.Info("sent database snapshot", zap.String("remote-peer-id", idString(m.To)),
				zap.Uint64("snapshot-index", m.Snapshot.Metadata.Index))
		}
		t.cfg.Raft.ReportSnapshot(m.To, err == nil)
	}()
}

func (t *Transport) sendSnapshot(urls []string, m raftpb.Message) error {
	rc, info, md, err := t.cfg.Snapshots.OpenImage(m.Snapshot.Metadata.Index)
	if err != nil {
		return err
	}
	defer rc.Close()
	// m.Snapshot is raft's: send a copy with the image's metadata.
	sn := *m.Snapshot
	sn.Metadata = md
	m.Snapshot = &sn
	conn, err := dial(urls[0], t.cfg.TLS, t.cfg.LocalAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := cancelOn(t.outgoingContext(context.Background(), m.To), t.stopc)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/"+serviceName+"/Snapshot", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return err
	}
	head := binary.BigEndian.AppendUint64(nil, t.cfg.ClusterID)
	head = binary.BigEndian.AppendUint64(head, uint64(info.Size))
	head = binary.BigEndian.AppendUint32(head, info.CRC)
	head = m.MarshalTo(head)
	sent := t.cfg.Metrics.sentBytes.WithLabelValues(idString(m.To))
	if err := stream.SendMsg(&head); err != nil {
		return streamError(stream, err)
	}
	sent.Add(float64(len(head)))
	for {
		// A fresh buffer per chunk: gRPC may hold the last one after
		// SendMsg returns.
		buf := make([]byte, snapshotChunkBytes)
		n, err := io.ReadFull(rc, buf)
		if n > 0 {
			chunk := buf[:n]
			if err := stream.SendMsg(&chunk); err != nil {
				return streamError(stream, err)
			}
			sent.Add(float64(n))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	var ack []byte
	return stream.RecvMsg(&ack)
}

// cancelOn returns a context canceled when stop closes (or cancel is
// called), so that a stream send blocked on flow control ends with it.
// It starts a goroutine, which cancel ends and waits for.
func cancelOn(parent context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancelCtx := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-stop:
			cancelCtx()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancelCtx()
		<-done
	}
}

// streamError returns the status the server ended a stream with, which
// says more than the io.EOF a failed send reports.
func streamError(stream grpc.ClientStream, sendErr error) error {
	if sendErr != io.EOF {
		return sendErr
	}
	var ack []byte
	if err := stream.RecvMsg(&ack); err != nil && err != io.EOF {
		return err
	}
	return sendErr
}

// testStreamInterceptor, set only by tests before any dial, wraps the
// streams the transport opens (to stand in for a peer that ends a stream
// at a chosen moment).
var testStreamInterceptor grpc.StreamClientInterceptor

// peerTarget is where a peer URL is dialled.
type peerTarget struct {
	network, address string
	// host is the URL's host, gRPC's target name.
	host string
	// tls is the configuration to dial with, nil for a plain socket.
	tls *tls.Config
	// local is the address to dial from (TCP only), nil for the kernel's
	// choice: a net.Dialer's LocalAddr as it is.
	local net.Addr
}

// parsePeerURL reads a peer URL: http://host:port, or unix://path, a Unix
// socket at host+path as the member listening on it reads the URL (etcd's
// reading; "unix://localhost:2380" is a file named "localhost:2380" in the
// working directory); https:// and unixs:// are the same over TLS with
// tlsConfig, the server's name checked against the URL's host. TCP
// connections are dialled from local, if set. Its errors are
// errUnusableURL.
func parsePeerURL(rawURL string, tlsConfig *tls.Config, local net.IP) (peerTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return peerTarget{}, fmt.Errorf("%w: %w", errUnusableURL, err)
	}
	pt := peerTarget{network: "tcp", address: u.Host, host: u.Host}
	switch u.Scheme {
	case "http", "https":
		if local != nil {
			pt.local = &net.TCPAddr{IP: local}
		}
	case "unix", "unixs":
		pt.network, pt.address = "unix", u.Host+u.Path
	default:
		return peerTarget{}, fmt.Errorf("%w: unsupported scheme %q", errUnusableURL, u.Scheme)
	}
	if u.Scheme == "https" || u.Scheme == "unixs" {
		if tlsConfig == nil {
			return peerTarget{}, fmt.Errorf("%w: %s needs TLS: --peer-cert-file and --peer-key-file, --peer-trusted-ca-file or --peer-auto-tls",
				errUnusableURL, rawURL)
		}
		pt.tls = tlsConfig.Clone()
		if pt.tls.ServerName == "" && u.Scheme == "https" {
			pt.tls.ServerName = u.Hostname()
		}
	}
	return pt, nil
}

// dial returns a gRPC client connection to a peer URL (parsePeerURL).
func dial(rawURL string, tlsConfig *tls.Config, local net.IP) (*grpc.ClientConn, error) {
	var intercept []grpc.DialOption
	if testStreamInterceptor != nil {
		intercept = append(intercept, grpc.WithStreamInterceptor(testStreamInterceptor))
	}
	pt, err := parsePeerURL(rawURL, tlsConfig, local)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if pt.tls != nil {
		creds = credentials.NewTLS(pt.tls)
	}
	var dialer []grpc.DialOption
	if pt.network == "unix" || pt.local != nil {
		dialer = append(dialer, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: pt.local}
			return d.DialContext(ctx, pt.network, pt.address)
		}))
	}
	return grpc.NewClient("passthrough:///"+pt.host, append(append(dialer, intercept...),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxFrameBytes), grpc.MaxCallRecvMsgSize(MaxFrameBytes)),
		// A peer whose host vanished is noticed in seconds, not after
		// TCP's retransmissions give up.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(flowWindowBytes),
		grpc.WithInitialConnWindowSize(flowWindowBytes),
	)...)
}

func idString(id uint64) string { return strconv.FormatUint(id, 16) }

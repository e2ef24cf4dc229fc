package v3rpc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/server"
)

type watchServer struct {
	pb.UnimplementedWatchServer
	s *server.Server
	// goAttached is the Service's: it runs a goroutine that Close waits
	// for, or refuses once Close has begun.
	goAttached func(func()) bool
	metrics    *watchMetrics
}

// Watch serves one stream: requests are read by a goroutine of its own
// (recvLoop), and everything is sent from this one (sendLoop), as gRPC
// allows one sender and one receiver. Every response comes through the
// mvcc stream's channel, in the order mvcc made them (answers to creates
// in the order of the creates, each watcher's Created before its events).
//
// Recv returns only once the client ends its side or the stream's gRPC
// context is done, and gRPC cancels that context when the handler returns,
// not before. So Watch waits for its receiver only when it ends because of
// the client or of gRPC: the receiver ended, the stream's context is done,
// or a Send failed (gRPC's SendMsg then writes the status, which finishes
// the stream and cancels its context). When Watch itself ends a live
// stream (no leader, the server stopping), waiting would deadlock: the
// receiver ends just after Watch returns, and the Service's Close, called
// after the gRPC server stopped, waits for it. Until then it may still
// read a request, which the closed mvcc stream ignores.
func (ws *watchServer) Watch(stream pb.Watch_WatchServer) error {
	sw := &serverWatchStream{
		s:       ws.s,
		metrics: ws.metrics,
		grpc:    stream,
		st:      ws.s.NewWatchStream(),
		flags:   map[mvcc.WatchID]*watchFlags{},
	}
	defer sw.st.Close()
	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	if !ws.goAttached(func() {
		defer close(recvDone)
		recvErr <- sw.recvLoop()
	}) {
		return rpctypes.ErrGRPCStopped
	}
	live, err := sw.sendLoop(recvErr)
	if !live {
		<-recvDone
	}
	return err
}

// watchFlags are what the gRPC layer keeps per watcher.
type watchFlags struct {
	progressNotify bool
	fragment       bool
	// sentEvents says events were sent since the last progress tick: the
	// next periodic progress notification is not needed.
	sentEvents bool
}

type serverWatchStream struct {
	s       *server.Server
	metrics *watchMetrics
	grpc    pb.Watch_WatchServer
	st      *mvcc.WatchStream

	// mu guards flags. Lock order: mu, then the mvcc store's locks (it is
	// held around Watch, so a watcher's flags are set before the send
	// loop can see its first response).
	mu    sync.Mutex
	flags map[mvcc.WatchID]*watchFlags
}

func (sw *serverWatchStream) recvLoop() error {
	for {
		req, err := sw.grpc.Recv()
		if err == io.EOF {
			// The client closed its side; it still reads ours.
			return nil
		}
		if err != nil {
			return err
		}
		switch v := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if v.CreateRequest == nil {
				continue
			}
			sw.create(v.CreateRequest)
		case *pb.WatchRequest_CancelRequest:
			if v.CancelRequest != nil {
				// Unknown IDs are ignored, as etcd does; a known one is
				// answered through the mvcc stream, after its events.
				id := mvcc.WatchID(v.CancelRequest.WatchId)
				if sw.st.Cancel(id) == nil {
					// As etcd: its flags go now, so a watcher created with
					// its ID next gets its own.
					sw.mu.Lock()
					delete(sw.flags, id)
					sw.mu.Unlock()
				}
			}
		case *pb.WatchRequest_ProgressRequest:
			if v.ProgressRequest != nil {
				sw.st.RequestProgressAll()
			}
		default:
			// As etcd: an unknown request does not end the stream.
		}
	}
}

// create starts a watcher, or answers why not; either answer goes out
// through the mvcc stream, in the order of the creates.
func (sw *serverWatchStream) create(c *pb.WatchCreateRequest) {
	if c.StartRevision < 0 {
		// etcd refuses it before anything else, as compacted.
		sw.st.Refuse(rpctypes.ErrorDesc(rpctypes.ErrGRPCCompacted))
		return
	}
	key := c.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key, as etcd
	}
	// The whole watched range must be readable (etcd's isWatchPermitted;
	// a from-key or prefix range included: see auth.Store.CheckRange).
	if err := sw.s.CheckRead(sw.grpc.Context(), key, c.RangeEnd); err != nil {
		sw.st.Refuse(watchAuthReason(err))
		return
	}
	o := mvcc.WatchOptions{ID: mvcc.WatchID(c.WatchId), Key: key, End: c.RangeEnd, StartRev: c.StartRevision,
		PrevKV: c.PrevKv}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			o.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			o.NoDelete = true
		}
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	id, err := sw.st.Watch(o)
	if err != nil {
		sw.st.Refuse(err.Error())
		return
	}
	sw.flags[id] = &watchFlags{progressNotify: c.ProgressNotify, fragment: c.Fragment}
}

// sendLoop sends until the stream ends, and returns why; live says the
// stream is still open, to be ended by Watch's return (the member lost its
// leader or is stopping): only then does the receiver's Recv return.
func (sw *serverWatchStream) sendLoop(recvErr <-chan error) (live bool, err error) {
	ticker := time.NewTicker(sw.s.Config().WatchProgressNotifyInterval)
	defer ticker.Stop()
	ctx := sw.grpc.Context()
	for {
		select {
		case r := <-sw.st.Chan():
			// The channel closes only when the handler returns.
			if err := sw.send(r); err != nil {
				return false, err
			}
		case <-ticker.C:
			start := time.Now()
			sw.progressTick()
			sw.metrics.progress.Observe(time.Since(start).Seconds())
		case err := <-recvErr:
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return false, rpctypes.ErrGRPCWatchCanceled
				}
				return false, err
			}
			recvErr = nil // half-closed: keep sending
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errNoLeader) {
				// The leader guard's context, not gRPC's, was cancelled.
				return true, rpctypes.ErrGRPCNoLeader
			}
			return false, ctx.Err()
		case <-sw.s.Stopping():
			return true, rpctypes.ErrGRPCStopped
		}
	}
}

// progressTick asks a progress notification for each watcher that wants
// them and was sent no events since the last tick, as etcd does.
func (sw *serverWatchStream) progressTick() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for id, f := range sw.flags {
		if !f.progressNotify {
			continue
		}
		if !f.sentEvents {
			sw.st.RequestProgress(id)
		}
		f.sentEvents = false
	}
}

// send sends r, timed as etcd's send loop times its responses: those with
// events (in all, and per event) apart from the answers to creates and
// cancels.
func (sw *serverWatchStream) send(r mvcc.WatchResponse) error {
	start := time.Now()
	err := sw.sendResponse(r)
	if err != nil {
		return err
	}
	sw.st.Sent(r)
	took := time.Since(start).Seconds()
	switch {
	case len(r.Events) > 0:
		sw.metrics.events.Observe(took)
		sw.metrics.perEvent.Observe(took / float64(len(r.Events)))
	case r.Created || r.Canceled || r.CancelReason != "":
		sw.metrics.control.Observe(took)
	}
	return nil
}

func (sw *serverWatchStream) sendResponse(r mvcc.WatchResponse) error {
	resp := &pb.WatchResponse{
		Header:          sw.header(r.Revision),
		WatchId:         int64(r.WatchID),
		Created:         r.Created,
		Canceled:        r.Canceled || r.CompactRevision != 0,
		CompactRevision: r.CompactRevision,
		CancelReason:    r.CancelReason,
		Events:          r.Events,
	}
	fragment := false
	sw.mu.Lock()
	if f, ok := sw.flags[r.WatchID]; ok {
		fragment = f.fragment
		if len(r.Events) > 0 {
			f.sentEvents = true
		}
	}
	sw.mu.Unlock()
	if !fragment {
		return sw.grpc.Send(resp)
	}
	for _, part := range fragments(resp, sw.s.Config().MaxRequestBytes) {
		if err := sw.grpc.Send(part); err != nil {
			return err
		}
	}
	return nil
}

// header is a watch response's header at rev. Unlike other responses',
// a zero revision stays zero, as in etcd's compacted-watch response.
func (sw *serverWatchStream) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: sw.s.ClusterID(), MemberId: sw.s.ID(), Revision: rev, RaftTerm: sw.s.Term()}
}

// fragments splits a response too large for one message (limit bytes)
// into responses of whole events, each under limit unless one event alone
// is not, all but the last marked Fragment, as etcd does for watchers
// created with fragment set. A response under limit, or of one event, is
// sent whole.
func fragments(resp *pb.WatchResponse, limit int) []*pb.WatchResponse {
	if proto.Size(resp) < limit || len(resp.Events) < 2 {
		return []*pb.WatchResponse{resp}
	}
	empty := func() *pb.WatchResponse {
		return &pb.WatchResponse{Header: resp.Header, WatchId: resp.WatchId, Created: resp.Created,
			Canceled: resp.Canceled, CompactRevision: resp.CompactRevision, CancelReason: resp.CancelReason, Fragment: true}
	}
	var out []*pb.WatchResponse
	cur := empty()
	overhead := proto.Size(cur)
	size := overhead
	for _, ev := range resp.Events {
		// The event as it is framed in the message: tag, length, bytes.
		evSize := proto.Size(&pb.WatchResponse{Events: []*mvccpb.Event{ev}})
		if len(cur.Events) > 0 && size+evSize >= limit {
			out = append(out, cur)
			cur, size = empty(), overhead
		}
		cur.Events = append(cur.Events, ev)
		size += evSize
	}
	cur.Fragment = false
	return append(out, cur)
}

// watchAuthReason is the cancel reason of a watch auth refuses, etcd's.
func watchAuthReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrInvalidAuthToken):
		return rpctypes.ErrGRPCInvalidAuthToken.Error()
	case errors.Is(err, auth.ErrAuthOldRevision):
		return rpctypes.ErrGRPCAuthOldRevision.Error()
	case errors.Is(err, auth.ErrUserEmpty):
		return rpctypes.ErrGRPCUserEmpty.Error()
	}
	return rpctypes.ErrGRPCPermissionDenied.Error()
}

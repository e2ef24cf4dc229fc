package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/raftnode"
)

const (
	// expiryCheckEvery is how often the leader looks for expired leases
	// (a heap: nothing is scanned when none expired).
	expiryCheckEvery = 100 * time.Millisecond
	// maxRevokesPerCheck bounds the expired leases revoked per check
	// (1000 a second, etcd's rate), so a mass expiry does not flood raft.
	maxRevokesPerCheck = 100
	// revokeRetry is how long an expired lease waits before its revoke is
	// proposed again, should the first proposal come to nothing.
	revokeRetry = 3 * time.Second
	// maxCheckpointsPerEntry bounds one checkpoint entry (etcd's batch).
	maxCheckpointsPerEntry = 1000
	// leaseDutyWorkers propose the lease loop's decisions. Proposals in
	// flight together share raft's batches, so a few workers keep up with
	// maxRevokesPerCheck a check at a commit latency of a few ms; a
	// slower raft makes duties wait, never more goroutines.
	leaseDutyWorkers = 8
	// leaseDutyQueueLen bounds the duties waiting for a worker: one full
	// check of revokes. Beyond it a duty is dropped (see leaseLoop).
	leaseDutyQueueLen = maxRevokesPerCheck

	callRenew      = "lease-renew"
	callTimeToLive = "lease-ttl"
)

// errNotLeader is answered to a forwarded lease call that reached a
// member no longer leading: the sender tries again.
var errNotLeader = status.Error(codes.FailedPrecondition, "cairn: not the leader")

// LeaseGrant grants a lease, with the ID asked for or, if 0, one the
// member generates.
func (s *Server) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if _, err := s.RequireAuthInfo(ctx); err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, req); err != nil {
		return nil, err
	}
	if req.TTL > lease.MaxTTL {
		return nil, lease.ErrTTLTooLarge
	}
	r := proto.CloneOf(req)
	if r.ID == 0 {
		// As etcd: from the request ID generator, positive.
		r.ID = int64(s.reqIDs.next() & (1<<63 - 1))
	}
	res, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseGrant: r})
	if err != nil {
		return nil, err
	}
	return response[*pb.LeaseGrantResponse](res)
}

// LeaseRevoke revokes a lease, deleting its keys in one revision.
func (s *Server) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	// The permissions are checked when applied (write on every key).
	if _, err := s.RequireAuthInfo(ctx); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: req})
	if err != nil {
		return nil, err
	}
	return response[*pb.LeaseRevokeResponse](res)
}

// LeaseRenew renews a lease on the leader (forwarding to it from a
// follower) and returns its TTL; lease.ErrNotFound if it is gone.
func (s *Server) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	// etcd's: write permission on every key of the lease.
	rev, err := s.checkLeaseKeys(ctx, []int64{id}, true)
	if err != nil {
		return 0, err
	}
	if s.Auth().Enabled() && rev != s.Auth().Revision() {
		return 0, auth.ErrAuthOldRevision
	}
	resp, err := s.toLeader(ctx, callRenew, &pb.LeaseKeepAliveRequest{ID: id}, func() (marshaler, error) {
		return s.renewAnswer(ctx, id)
	}, &pb.LeaseKeepAliveResponse{})
	if err != nil {
		return 0, err
	}
	if ttl := resp.(*pb.LeaseKeepAliveResponse).TTL; ttl >= 0 {
		return ttl, nil
	}
	return 0, lease.ErrNotFound
}

// LeaseTimeToLive reports a lease's granted and remaining TTL (from the
// leader, which alone keeps time) and, if asked, its keys.
func (s *Server) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if _, err := s.RequireAuthInfo(ctx); err != nil {
		return nil, err
	}
	var rev uint64
	if req.Keys {
		// Listing the keys needs read permission on each (etcd's fix of
		// CVE-2023-32082): refused otherwise.
		var err error
		if rev, err = s.checkLeaseKeys(ctx, []int64{req.ID}, false); err != nil {
			return nil, err
		}
	}
	resp, err := s.toLeader(ctx, callTimeToLive, req, func() (marshaler, error) {
		return s.timeToLiveLocal(ctx, req)
	}, &pb.LeaseTimeToLiveResponse{})
	if err != nil {
		return nil, err
	}
	if req.Keys && s.Auth().Enabled() && rev != s.Auth().Revision() {
		return nil, auth.ErrAuthOldRevision
	}
	return resp.(*pb.LeaseTimeToLiveResponse), nil
}

// LeaseLeases lists the leases, as of a linearizable read.
func (s *Server) LeaseLeases(ctx context.Context) (*pb.LeaseLeasesResponse, error) {
	if err := s.linearizableReadWait(ctx); err != nil {
		return nil, err
	}
	ids := s.applier.Lessor().Leases()
	// etcd's: read permission on every key of every lease, or nothing.
	rev, err := s.checkLeaseKeys(ctx, ids, false)
	if err != nil {
		return nil, err
	}
	if as := s.Auth(); as.Enabled() && rev != as.Revision() {
		return nil, auth.ErrAuthOldRevision
	}
	resp := &pb.LeaseLeasesResponse{}
	for _, id := range ids {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
	}
	return resp, nil
}

func (s *Server) isLeader() bool { return s.rn.Lead() == s.ID() }

// readyToLead waits until this member, as leader, has applied everything
// committed and its lessor keeps time. It reports false if it is not (or
// no longer) the leader.
func (s *Server) readyToLead(ctx context.Context) (bool, error) {
	if !s.isLeader() {
		return false, nil
	}
	if err := s.waitApplied(ctx, s.rn.CommitIndex()); err != nil {
		return false, err
	}
	for !s.applier.Lessor().Primary() {
		if !s.isLeader() {
			return false, nil
		}
		// Promotion comes when the leader's first entry of its term is
		// applied: a heartbeat or so away.
		select {
		case <-time.After(s.cfg.HeartbeatInterval):
		case <-ctx.Done():
			return false, ctxError(ctx.Err())
		case <-s.stopping:
			return false, ErrStopped
		}
	}
	return true, nil
}

func (s *Server) renewLocal(id int64) (int64, error) {
	ttl, checkpointed, err := s.applier.Lessor().Renew(id)
	if err != nil {
		return 0, err
	}
	if checkpointed {
		// The lease is back to its full TTL: the lease loop drops its
		// checkpoint, or a new leader would start it from the old
		// remaining TTL. If the queue is full, the next renewal asks
		// again.
		select {
		case s.leaseClears <- id:
		default:
		}
	}
	return ttl, nil
}

// renewAnswer renews lease id here, the leader, and answers as a keep-alive
// response: TTL -1 if the lease is gone.
func (s *Server) renewAnswer(ctx context.Context, id int64) (marshaler, error) {
	var ttl int64
	err := s.leaseSettled(ctx, func() (err error) {
		ttl, err = s.renewLocal(id)
		return err
	})
	if errors.Is(err, lease.ErrNotFound) {
		return &pb.LeaseKeepAliveResponse{ID: id, TTL: -1}, nil
	}
	return &pb.LeaseKeepAliveResponse{ID: id, TTL: ttl}, err
}

func (s *Server) timeToLiveLocal(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var granted, remaining int64
	var keys []string
	err := s.leaseSettled(ctx, func() (err error) {
		granted, remaining, keys, err = s.applier.Lessor().TimeToLive(req.ID, req.Keys)
		return err
	})
	if errors.Is(err, lease.ErrNotFound) {
		// As etcd: not an error, a TTL of -1.
		return &pb.LeaseTimeToLiveResponse{ID: req.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{ID: req.ID, TTL: remaining, GrantedTTL: granted}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, []byte(k))
	}
	return resp, nil
}

// leaseSettled runs lookup on the leader; if it does not find the lease,
// the lease may have been granted by an entry committed but not applied
// here yet: a follower that applied it answered its client, whose
// keep-alive or TTL query then came here, between the leader sending the
// commit and recording it (CommitIndex, which readyToLead waited for, is
// the commit last persisted). It looks again after a read index round,
// which waits for everything committed. Not found then, it is gone.
func (s *Server) leaseSettled(ctx context.Context, lookup func() error) error {
	err := lookup()
	if errors.Is(err, lease.ErrNotFound) {
		if werr := s.linearizableReadWait(ctx); werr != nil {
			return werr
		}
		err = lookup()
	}
	return err
}

type marshaler = proto.Message

// toLeader runs local on the leader, or forwards req to the leader as
// method and decodes its answer into resp; across leader changes it tries
// again until ctx ends.
func (s *Server) toLeader(ctx context.Context, method string, req marshaler, local func() (marshaler, error),
	resp marshaler) (marshaler, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	for {
		ok, err := s.readyToLead(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			out, err := local()
			if !errors.Is(err, lease.ErrNotPrimary) {
				return out, err
			}
			// Stepped down meanwhile: ask the new leader.
		}
		if lead := s.rn.Lead(); lead != 0 && lead != s.ID() {
			// One try may not take the whole budget: a leader cut off
			// is replaced within an election or two.
			callCtx, callCancel := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout)
			out, err := s.tr.Call(callCtx, lead, method, data)
			callCancel()
			if err == nil {
				return resp, proto.Unmarshal(out, resp)
			}
			s.logger.Debug("forwarding to the leader failed; retrying", zap.String("call", method), zap.Error(err))
		}
		select {
		case <-time.After(s.cfg.HeartbeatInterval):
		case <-ctx.Done():
			if lead := s.rn.Lead(); lead == 0 {
				return nil, ErrNoLeader
			}
			return nil, ctxError(ctx.Err())
		case <-s.stopping:
			return nil, ErrStopped
		}
	}
}

// HandleCall serves what a follower forwards: this member must be the
// leader, else errNotLeader and the follower tries again. Hash requests
// (the corruption checks') are answered by any member.
func (s *Server) HandleCall(ctx context.Context, method string, data []byte) ([]byte, error) {
	var local func() (marshaler, error)
	switch method {
	case callChange:
		return s.handleChange(ctx, data)
	case callHashKV:
		return s.handleHashKV(data)
	case callRenew:
		req := &pb.LeaseKeepAliveRequest{}
		if err := proto.Unmarshal(data, req); err != nil {
			return nil, err
		}
		local = func() (marshaler, error) { return s.renewAnswer(ctx, req.ID) }
	case callTimeToLive:
		req := &pb.LeaseTimeToLiveRequest{}
		if err := proto.Unmarshal(data, req); err != nil {
			return nil, err
		}
		local = func() (marshaler, error) { return s.timeToLiveLocal(ctx, req) }
	default:
		return nil, fmt.Errorf("unknown call %q", method)
	}
	if ok, err := s.readyToLead(ctx); err != nil || !ok {
		return nil, errNotLeader
	}
	out, err := local()
	if errors.Is(err, lease.ErrNotPrimary) {
		return nil, errNotLeader
	}
	if err != nil {
		return nil, err
	}
	return proto.Marshal(out)
}

// leaderDuty is a proposal only the leader of term may make.
type leaderDuty struct {
	req  *pb.InternalRaftRequest
	term uint64
}

// leaseLoop is the leader's lease duty: revoke what expired, checkpoint
// remaining TTLs every checkpoint interval, and clear the checkpoints of
// renewed leases. On other members it finds nothing to do (the lessor is
// not primary). Each decision is proposed with the term it was taken in,
// by one of leaseDutyWorkers goroutines, which it starts and Stop waits
// for (goAttached; they end when the server stops).
//
// A decision that finds the workers' queue full is dropped, not waited
// for, so that the loop keeps its ticks: each comes again. An expired
// lease is returned by Expired again after revokeRetry; a checkpoint is
// recomputed at the next interval; a renewed lease whose checkpoint was
// not cleared still reports it checkpointed, so its next renewal asks
// again. A proposal that fails is retried the same way.
func (s *Server) leaseLoop() {
	// Buffered: the queue that lets a tick hand over a full check's work
	// without waiting for raft (leaseDutyQueueLen).
	duties := make(chan leaderDuty, leaseDutyQueueLen)
	for range leaseDutyWorkers {
		s.goAttached(func() {
			for {
				select {
				case <-s.stopping:
					return
				case d := <-duties:
					s.proposeLeaderDuty(d.req, d.term)
				}
			}
		})
	}
	propose := func(req *pb.InternalRaftRequest, term uint64) {
		select {
		case duties <- leaderDuty{req: req, term: term}:
		default:
			s.logger.Debug("lease duties queue full; dropped, to be decided again")
		}
	}
	expiry := time.NewTicker(expiryCheckEvery)
	defer expiry.Stop()
	checkpoint := time.NewTicker(s.cfg.LeaseCheckpointInterval)
	defer checkpoint.Stop()
	le := s.applier.Lessor()
	for {
		select {
		case <-s.stopping:
			return
		case <-expiry.C:
			term := s.rn.Term()
			if !s.isLeader() {
				continue
			}
			for _, id := range le.Expired(maxRevokesPerCheck, revokeRetry) {
				propose(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}, term)
			}
		case <-checkpoint.C:
			term := s.rn.Term()
			if !s.isLeader() {
				continue
			}
			recs := le.Remaining()
			for len(recs) > 0 {
				n := min(len(recs), maxCheckpointsPerEntry)
				req := &pb.LeaseCheckpointRequest{}
				for _, r := range recs[:n] {
					req.Checkpoints = append(req.Checkpoints, &pb.LeaseCheckpoint{ID: r.ID, Remaining_TTL: r.RemainingTTL})
				}
				recs = recs[n:]
				propose(&pb.InternalRaftRequest{LeaseCheckpoint: req}, term)
			}
		case id := <-s.leaseClears:
			term := s.rn.Term()
			req := &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: id}}}
			for len(req.Checkpoints) < maxCheckpointsPerEntry && len(s.leaseClears) > 0 {
				req.Checkpoints = append(req.Checkpoints, &pb.LeaseCheckpoint{ID: <-s.leaseClears})
			}
			if s.isLeader() {
				propose(&pb.InternalRaftRequest{LeaseCheckpoint: req}, term)
			}
		}
	}
}

// proposeLeaderDuty proposes what only the leader may decide (revoking an
// expired lease, checkpointing): if this member does not lead in term
// when raft takes it, it is dropped, never forwarded to another leader.
func (s *Server) proposeLeaderDuty(req *pb.InternalRaftRequest, term uint64) {
	// As root: the member's own decision, not a user's (etcd's WithRoot).
	_, err := s.proposeAs(withRoot(context.Background()), req, term)
	if err == nil && req.LeaseRevoke != nil {
		// Only an expired lease's revoke is a leader duty.
		s.metrics.leasesExpired.Inc()
	}
	switch {
	case err == nil, errors.Is(err, lease.ErrNotFound), errors.Is(err, ErrStopped),
		errors.Is(err, raftnode.ErrNotLeader):
	default:
		s.logger.Warn("a lease proposal failed; it is tried again if still due", zap.Error(err))
	}
}

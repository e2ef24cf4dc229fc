package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
)

// The corruption checks are etcd's (etcdserver/corrupt.go), with its log
// lines and its rules; peers answer over the transport's calls (callHashKV)
// instead of etcd's peer HTTP /members/hashkv.
//
//   - The initial check (InitialCorruptCheck), on a restart, before raft
//     runs: this member's HashKV at its current revision against each
//     peer's at that revision. A peer with the same compaction revision
//     and another hash fails the start.
//   - The periodic check (CorruptCheckTime), by the leader: its HashKV
//     against the peers' at its revision. A peer ahead of the leader, or
//     at the same compaction with another hash, gets a CORRUPT alarm; so
//     does the leader if its own hash changed under it.
//   - The compaction hash check (CompactHashCheck, every
//     CompactHashCheckTime), by the leader: the hashes its compactions
//     stored (mvcc.Store.HashByRev), newest first, against the peers' at
//     the same revision; the members outside the majority's hash get a
//     CORRUPT alarm (all, member 0, if there is no majority).
//
// A CORRUPT alarm, applied, makes every member refuse writes with
// "etcdserver: corrupt cluster".

// callHashKV asks a peer for its HashKV (a pb.HashKVRequest; the answer is
// a pb.HashKVResponse).
const callHashKV = "hashkv"

// handleHashKV answers a peer's callHashKV. Any member answers, leader or
// not. An error's text crosses as the call's status message.
func (s *Server) handleHashKV(data []byte) ([]byte, error) {
	var req pb.HashKVRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		return nil, err
	}
	h, current, err := s.HashKV(req.Revision)
	if err != nil {
		s.logger.Warn("failed to get hashKV", zap.Int64("requested-revision", req.Revision), zap.Error(err))
		return nil, err
	}
	resp := &pb.HashKVResponse{
		Header: &pb.ResponseHeader{ClusterId: s.ClusterID(), MemberId: s.ID(), Revision: current},
		Hash:   h.Hash, CompactRevision: h.CompactRevision, HashRevision: h.Revision,
	}
	return proto.Marshal(resp)
}

// peerHash is one peer's answer to callHashKV: resp, or err.
type peerHash struct {
	id   uint64
	urls []string
	resp *pb.HashKVResponse
	err  error
}

// peerHashes asks every other member for its HashKV at rev, one after
// the other, each within the request timeout or until ctx ends (etcd's
// getPeerHashKVs).
func (s *Server) peerHashes(ctx context.Context, rev int64) []peerHash {
	req, _ := proto.Marshal(&pb.HashKVRequest{Revision: rev})
	var out []peerHash
	for _, m := range *s.members.Load() {
		if m.ID == s.ID() || len(m.PeerURLs) == 0 {
			continue
		}
		ph := peerHash{id: m.ID, urls: m.PeerURLs}
		callCtx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		data, err := s.tr.Call(callCtx, m.ID, callHashKV, req)
		cancel()
		if err == nil {
			resp := &pb.HashKVResponse{}
			if err = proto.Unmarshal(data, resp); err == nil {
				ph.resp = resp
			}
		}
		if err != nil {
			ph.err = peerHashError(err)
			s.logger.Warn("failed hash kv request", zap.String("local-member-id", membership.IDString(s.ID())),
				zap.Int64("requested-revision", rev), zap.String("remote-peer-endpoint", m.PeerURLs[0]), zap.Error(err))
		}
		out = append(out, ph)
	}
	return out
}

// peerHashError maps a peer's refusal onto etcd's errors, by its text, as
// etcd's HashByRev does with its HTTP answers.
func peerHashError(err error) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, mvcc.ErrCompacted.Error()):
		return rpctypes.ErrCompacted
	case strings.Contains(msg, mvcc.ErrFutureRev.Error()):
		return rpctypes.ErrFutureRev
	case strings.Contains(msg, "cluster ID mismatch"):
		return rpctypes.ErrClusterIDMismatch
	}
	return err
}

// errDataInconsistency is the initial check's refusal: etcd's words.
func errDataInconsistency(id uint64) error {
	return fmt.Errorf("%s found data inconsistency with peers", membership.IDString(id))
}

// initialCorruptCheck is etcd's InitialCheck: this member's hash against
// its peers' at the same revision, before it serves (the transport must
// be set up; raft need not run). Only a peer at the same compaction
// revision with another hash is a mismatch; peers that cannot answer are
// logged and passed over.
func (s *Server) initialCorruptCheck() error {
	local := membership.IDString(s.ID())
	s.logger.Info("starting initial corruption check", zap.String("local-member-id", local),
		zap.Duration("timeout", s.cfg.RequestTimeout))
	h, _, err := s.HashKV(0)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", local, err)
	}
	localFields := []zap.Field{
		zap.String("local-member-id", local), zap.Int64("local-member-revision", h.Revision),
		zap.Int64("local-member-compact-revision", h.CompactRevision), zap.Uint32("local-member-hash", h.Hash),
	}
	mismatch := 0
	for _, p := range s.peerHashes(context.Background(), h.Revision) {
		if p.resp != nil {
			fields := append(slices.Clone(localFields),
				zap.String("remote-peer-id", membership.IDString(p.resp.Header.MemberId)),
				zap.Strings("remote-peer-endpoints", p.urls),
				zap.Int64("remote-peer-revision", p.resp.Header.Revision),
				zap.Int64("remote-peer-compact-revision", p.resp.CompactRevision),
				zap.Uint32("remote-peer-hash", p.resp.Hash))
			switch {
			case h.Hash == p.resp.Hash:
			case h.CompactRevision == p.resp.CompactRevision:
				s.logger.Warn("found different hash values from remote peer", fields...)
				mismatch++
			default:
				s.logger.Warn("found different compact revision values from remote peer", fields...)
			}
			continue
		}
		fields := append(slices.Clone(localFields), zap.String("remote-peer-id", membership.IDString(p.id)),
			zap.Strings("remote-peer-endpoints", p.urls), zap.Error(p.err))
		switch {
		case errors.Is(p.err, rpctypes.ErrFutureRev):
			s.logger.Warn("cannot fetch hash from slow remote peer", fields...)
		case errors.Is(p.err, rpctypes.ErrCompacted):
			s.logger.Warn("cannot fetch hash from remote peer; local member is behind", fields...)
		case errors.Is(p.err, rpctypes.ErrClusterIDMismatch):
			s.logger.Warn("cluster ID mismatch", fields...)
		}
	}
	if mismatch > 0 {
		return errDataInconsistency(s.ID())
	}
	s.logger.Info("initial corruption checking passed; no corruption", zap.String("local-member-id", local))
	return nil
}

// corruptChecker is the leader's periodic checks' state.
type corruptChecker struct {
	mu sync.Mutex
	// latestRevisionChecked is the newest compaction hash the whole
	// cluster was found to agree on: the compaction hash check starts
	// above it.
	latestRevisionChecked int64
}

// corruptCheckLoop runs the periodic and the compaction hash checks
// (whichever the configuration enables) while this member leads, until
// the server stops. Stop waits for it (goAttached); a check in progress
// then ends at its next peer call.
func (s *Server) corruptCheckLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.goAttached(func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	})
	var periodic, compact <-chan time.Time
	if t := s.cfg.CorruptCheckTime; t > 0 {
		ticker := time.NewTicker(t)
		defer ticker.Stop()
		periodic = ticker.C
		s.logger.Info("enabled corruption checking", zap.String("local-member-id", membership.IDString(s.ID())),
			zap.Duration("interval", t))
	}
	if s.cfg.CompactHashCheck {
		ticker := time.NewTicker(s.cfg.CompactHashCheckTime)
		defer ticker.Stop()
		compact = ticker.C
	}
	for {
		select {
		case <-s.stopping:
			if periodic != nil {
				s.logger.Info("server has stopped; stopping kv hash's monitor")
			}
			if compact != nil {
				s.logger.Info("server has stopped; stopping compact hash's monitor")
			}
			return
		case <-periodic:
			if s.isLeader() {
				if err := s.periodicCorruptCheck(ctx); err != nil {
					s.logger.Warn("failed to check hash KV", zap.Error(err))
				}
			}
		case <-compact:
			if s.isLeader() {
				s.compactHashCheck(ctx)
			}
		}
	}
}

// periodicCorruptCheck is etcd's PeriodicCheck, on the leader.
func (s *Server) periodicCorruptCheck(ctx context.Context) error {
	h, _, err := s.HashKV(0)
	if err != nil {
		return err
	}
	peers := s.peerHashes(ctx, h.Revision)
	readCtx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	err = s.linearizableReadWait(readCtx)
	cancel()
	if err != nil {
		return err
	}
	h2, rev2, err := s.HashKV(0)
	if err != nil {
		return err
	}
	alarmed := false
	mismatch := func(id uint64) {
		if !alarmed {
			alarmed = true
			s.triggerCorruptAlarm(id)
		}
	}
	if h2.Hash != h.Hash && h2.Revision == h.Revision && h.CompactRevision == h2.CompactRevision {
		s.logger.Warn("found hash mismatch", zap.Int64("revision-1", h.Revision),
			zap.Int64("compact-revision-1", h.CompactRevision), zap.Uint32("hash-1", h.Hash),
			zap.Int64("revision-2", h2.Revision), zap.Int64("compact-revision-2", h2.CompactRevision),
			zap.Uint32("hash-2", h2.Hash))
		mismatch(s.ID())
	}
	checked := 0
	for _, p := range peers {
		if p.resp == nil {
			continue
		}
		checked++
		peer := membership.IDString(p.id)
		if p.resp.Header.Revision > rev2 {
			s.logger.Warn("revision from follower must be less than or equal to leader's",
				zap.Int64("leader-revision", rev2), zap.Int64("follower-revision", p.resp.Header.Revision),
				zap.String("follower-peer-id", peer))
			mismatch(p.id)
		}
		if p.resp.CompactRevision > h2.CompactRevision {
			s.logger.Warn("compact revision from follower must be less than or equal to leader's",
				zap.Int64("leader-compact-revision", h2.CompactRevision),
				zap.Int64("follower-compact-revision", p.resp.CompactRevision), zap.String("follower-peer-id", peer))
			mismatch(p.id)
		}
		if p.resp.CompactRevision == h.CompactRevision && p.resp.Hash != h.Hash {
			s.logger.Warn("same compact revision then hashes must match",
				zap.Int64("leader-compact-revision", h2.CompactRevision), zap.Uint32("leader-hash", h.Hash),
				zap.Int64("follower-compact-revision", p.resp.CompactRevision), zap.Uint32("follower-hash", p.resp.Hash),
				zap.String("follower-peer-id", peer))
			mismatch(p.id)
		}
	}
	s.logger.Info("finished peer corruption check", zap.Int("number-of-peers-checked", checked))
	return nil
}

// compactHashCheck is etcd's CompactHashCheck, on the leader: the hashes
// its compactions stored that the whole cluster has not yet been found to
// agree on, newest first, until one is checked on every peer (or raised
// an alarm).
func (s *Server) compactHashCheck(ctx context.Context) {
	s.logger.Info("starting compact hash check", zap.String("local-member-id", membership.IDString(s.ID())),
		zap.Duration("timeout", s.cfg.RequestTimeout))
	hashes := s.uncheckedCompactionHashes()
	for i, h := range hashes {
		peers := s.peerHashes(ctx, h.Revision)
		if len(peers) == 0 {
			continue
		}
		if s.checkPeerHashes(h, peers) {
			s.logger.Info("finished compaction hash check", zap.Int("number-of-hashes-checked", i+1))
			return
		}
	}
	s.logger.Info("finished compaction hash check", zap.Int("number-of-hashes-checked", len(hashes)))
}

// uncheckedCompactionHashes are the stored compaction hashes above the
// newest the cluster agreed on, newest first.
func (s *Server) uncheckedCompactionHashes() []mvcc.KeyValueHash {
	s.corrupt.mu.Lock()
	checked := s.corrupt.latestRevisionChecked
	s.corrupt.mu.Unlock()
	var hashes []mvcc.KeyValueHash
	s.applier.View(func(st *mvcc.Store) error {
		hashes = st.CompactionHashes()
		return nil
	})
	slices.Reverse(hashes)
	for i, h := range hashes {
		if h.Revision <= checked {
			return hashes[:i]
		}
	}
	return hashes
}

// checkPeerHashes compares the leader's hash with the peers' and raises
// CORRUPT alarms for the members outside the majority. It reports whether
// the check is over (every peer checked, or an alarm raised); if not, the
// next older hash is tried.
func (s *Server) checkPeerHashes(leaderHash mvcc.KeyValueHash, peers []peerHash) bool {
	v := compareCompactionHashes(s.logger, s.ID(), leaderHash, peers)
	for _, id := range v.alarms {
		s.triggerCorruptAlarm(id)
	}
	if v.agreed {
		s.corrupt.mu.Lock()
		s.corrupt.latestRevisionChecked = max(s.corrupt.latestRevisionChecked, leaderHash.Revision)
		s.corrupt.mu.Unlock()
	}
	return v.over
}

// compactionVerdict is what comparing a compaction's hashes decided.
type compactionVerdict struct {
	// alarms are the members to raise CORRUPT for (0: the cluster).
	alarms []uint64
	// agreed: every member answered, with the same hash.
	agreed bool
	// over: no older hash need be checked (agreed, or alarms raised).
	over bool
}

// compareCompactionHashes is etcd's checkPeerHashes, without effects
// other than its log lines: the peers at the leader's compaction revision
// are grouped by hash; if they do not all agree, the members outside a
// majority group are corrupt, and without a majority the whole cluster
// (member 0) is. Peers that did not answer, or answered for another
// compaction revision, are passed over.
func compareCompactionHashes(logger *zap.Logger, leaderID uint64, leaderHash mvcc.KeyValueHash, peers []peerHash) compactionVerdict {
	leader := membership.IDString(leaderID)
	byHash := map[uint32][]uint64{leaderHash.Hash: {leaderID}}
	checked := 0
	for _, p := range peers {
		reason := ""
		switch {
		case p.resp == nil:
			reason = "no response"
		case p.resp.CompactRevision != leaderHash.CompactRevision:
			reason = fmt.Sprintf("the peer's CompactRevision %d doesn't match leader's CompactRevision %d",
				p.resp.CompactRevision, leaderHash.CompactRevision)
		}
		if reason != "" {
			logger.Warn("Skipped peer's hash", zap.Int("number-of-peers", len(peers)),
				zap.String("leader-id", leader), zap.String("peer-id", membership.IDString(p.id)),
				zap.String("reason", reason))
			continue
		}
		checked++
		byHash[p.resp.Hash] = append(byHash[p.resp.Hash], p.id)
	}
	if len(byHash) == 1 {
		if checked == len(peers) {
			logger.Info("successfully checked hash on whole cluster", zap.Int("number-of-peers-checked", checked),
				zap.Int64("revision", leaderHash.Revision), zap.Int64("compactRevision", leaderHash.CompactRevision))
			return compactionVerdict{agreed: true, over: true}
		}
		logger.Warn("skipped revision in compaction hash check; was not able to check all peers",
			zap.Int("number-of-peers-checked", checked), zap.Int("number-of-peers", len(peers)),
			zap.Int64("revision", leaderHash.Revision), zap.Int64("compactRevision", leaderHash.CompactRevision))
		return compactionVerdict{}
	}
	var v compactionVerdict
	quorum := (len(peers)+1)/2 + 1
	quorumExists := false
	for h, ids := range byHash {
		if len(ids) >= quorum {
			quorumExists = true
			delete(byHash, h) // the majority's: the others are corrupt
			break
		}
	}
	if !quorumExists {
		logger.Error("Detected compaction hash mismatch but cannot identify the corrupted members, so intentionally set the memberID as 0",
			zap.String("leader-id", leader), zap.Int64("leader-revision", leaderHash.Revision),
			zap.Int64("leader-compact-revision", leaderHash.CompactRevision), zap.Uint32("leader-hash", leaderHash.Hash))
		v.alarms = append(v.alarms, 0)
	}
	for h, ids := range byHash {
		if quorumExists {
			v.alarms = append(v.alarms, ids...)
		}
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = membership.IDString(id)
		}
		logger.Error("Detected compaction hash mismatch", zap.String("leader-id", leader),
			zap.Int64("leader-revision", leaderHash.Revision), zap.Int64("leader-compact-revision", leaderHash.CompactRevision),
			zap.Uint32("leader-hash", leaderHash.Hash), zap.Uint32("peer-hash", h),
			zap.String("peer-ids", strings.Join(names, ",")), zap.Bool("quorum-exist", quorumExists))
	}
	v.over = true
	return v
}

// triggerCorruptAlarm raises the CORRUPT alarm of member id (0: the whole
// cluster) through raft, in a goroutine the server owns, as etcd does:
// the check goes on meanwhile. The proposal ends when applied, after the
// request timeout, or when the server stops.
func (s *Server) triggerCorruptAlarm(id uint64) {
	s.goAttached(func() {
		if err := s.activateAlarm(context.Background(), id, pb.AlarmType_CORRUPT); err != nil {
			s.logger.Warn("raising the CORRUPT alarm", zap.String("member-id", membership.IDString(id)), zap.Error(err))
		}
	})
}

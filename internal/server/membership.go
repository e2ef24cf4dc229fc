package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
)

// Membership changes (etcd's Cluster service and MoveLeader).
//
// A change is decided on the leader, one at a time (reconfigMu): it waits
// until it has applied everything committed, checks the change against
// that membership (membership.Validate, and --strict-reconfig-check's
// rules), and proposes it as leader of its term, so that the check and
// the change see the same membership. A follower forwards the change to
// the leader over the peer transport and then waits to have applied it
// itself, so that its answer (the members after the change) and a
// MemberList that follows agree.
//
// A voter is added as a raft learner: it does not count in quorums until
// the leader's promotion duty (promoteLoop) sees it caught up and proposes
// its promotion. Its member record says voter from the start, as etcd's
// does. So a one-member cluster can grow (its addition of a second voter
// could not commit otherwise, see package raft), and a member added and not
// yet started never costs the cluster its fault tolerance.

// HealthInterval is how long a peer must have been connected to count as
// healthy for --strict-reconfig-check (etcd's HealthInterval).
const HealthInterval = 5 * time.Second

// changeErrors names the errors a leader can answer a forwarded change
// with, so the follower returns the same error value.
var changeErrors = []error{
	membership.ErrIDRemoved, membership.ErrIDExists, membership.ErrIDNotFound, membership.ErrPeerURLExists,
	membership.ErrMemberNotLearner, membership.ErrTooManyLearners,
	ErrNotEnoughStartedMembers, ErrUnhealthy, ErrLearnerNotReady, ErrNotLeader, ErrTimeout, ErrStopped, ErrNoLeader,
	ErrTooManyRequests, ErrCanceled,
}

const callChange = "member-change"

// changeRequest is a change forwarded to the leader; changeAnswer its
// answer: the index of the applied change, or one of changeErrors by text.
type changeRequest struct {
	Kind   membership.ChangeKind `json:"kind"`
	Member membership.Member     `json:"member"`
}

type changeAnswer struct {
	Index uint64 `json:"index,omitempty"`
	Err   string `json:"err,omitempty"`
	// Members are the leader's, after the change: the answer of a member
	// that asked for its own removal, which it never applies.
	Members []membership.Member `json:"members,omitempty"`
}

// AddMember adds a member with peerURLs, a learner if isLearner, and
// returns it (with the ID the cluster gave it) and the members after.
func (s *Server) AddMember(ctx context.Context, peerURLs []string, isLearner bool) (membership.Member, []membership.Member, error) {
	urls := sorted(peerURLs)
	// etcd's derivation for a member added at run time: the cluster
	// token plays no part, the time does.
	m := membership.Member{ID: membership.ComputeMemberID(urls, "", time.Now().Unix()), PeerURLs: urls, IsLearner: isLearner}
	members, err := s.changeMembers(ctx, membership.Change{Kind: membership.Add, Member: m})
	return m, members, err
}

// RemoveMember removes member id and returns the members after.
func (s *Server) RemoveMember(ctx context.Context, id uint64) ([]membership.Member, error) {
	return s.changeMembers(ctx, membership.Change{Kind: membership.Remove, Member: membership.Member{ID: id}})
}

// UpdateMember sets member id's peer URLs and returns the members after.
func (s *Server) UpdateMember(ctx context.Context, id uint64, peerURLs []string) ([]membership.Member, error) {
	return s.changeMembers(ctx, membership.Change{Kind: membership.Update, Member: membership.Member{ID: id, PeerURLs: sorted(peerURLs)}})
}

// PromoteMember makes the learner id a voter and returns the members after.
func (s *Server) PromoteMember(ctx context.Context, id uint64) ([]membership.Member, error) {
	members, err := s.changeMembers(ctx, membership.Change{Kind: membership.Promote, Member: membership.Member{ID: id}})
	if err != nil {
		s.metrics.promoteFailed.WithLabelValues(err.Error()).Inc()
		return nil, err
	}
	s.metrics.promoted.Inc()
	return members, nil
}

// changeMembers carries out change on the leader, here or forwarded, and
// returns the members once this member has applied it.
func (s *Server) changeMembers(ctx context.Context, change membership.Change) ([]membership.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var index uint64
	var err error
	if lead := s.rn.Lead(); lead == s.ID() {
		index, err = s.changeAsLeader(ctx, change)
	} else if lead == 0 {
		err = ErrNoLeader
	} else {
		var members []membership.Member
		index, members, err = s.forwardChange(ctx, lead, change)
		if err == nil && change.Kind == membership.Remove && change.Member.ID == s.ID() {
			// A follower removed by its own request: the leader stops
			// replicating to it when it appends the removal, so it
			// never applies it (its peers will refuse it, and it stops).
			return members, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.waitApplied(ctx, index); err != nil {
		return nil, ctxError(err)
	}
	return s.applier.Members(), nil
}

func (s *Server) forwardChange(ctx context.Context, lead uint64, change membership.Change) (uint64, []membership.Member, error) {
	data, err := json.Marshal(changeRequest{Kind: change.Kind, Member: change.Member})
	if err != nil {
		return 0, nil, err
	}
	out, err := s.tr.Call(ctx, lead, callChange, data)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctxError(ctx.Err())
		}
		// The removal of the leader itself: applying it here drops the
		// connection its answer was to come on. It is made.
		if change.Kind == membership.Remove && change.Member.ID == lead && s.applier.IsRemoved(lead) {
			return s.AppliedIndex(), s.applier.Members(), nil
		}
		// The leader unreachable or stepped down: etcd's client retries
		// on this one.
		s.logger.Warn("forwarding a membership change to the leader failed", zap.String("leader", membership.IDString(lead)), zap.Error(err))
		return 0, nil, ErrNoLeader
	}
	var ans changeAnswer
	if err := json.Unmarshal(out, &ans); err != nil {
		return 0, nil, fmt.Errorf("the leader's answer to a membership change: %w", err)
	}
	if ans.Err != "" {
		for _, e := range changeErrors {
			if e.Error() == ans.Err {
				return 0, nil, e
			}
		}
		return 0, nil, errors.New(ans.Err)
	}
	return ans.Index, ans.Members, nil
}

// handleChange serves a change a follower forwarded.
func (s *Server) handleChange(ctx context.Context, data []byte) ([]byte, error) {
	var req changeRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, err
	}
	var ans changeAnswer
	if !s.isLeader() {
		ans.Err = ErrNoLeader.Error()
	} else if index, err := s.changeAsLeader(ctx, membership.Change{Kind: req.Kind, Member: req.Member}); err != nil {
		ans.Err = err.Error()
	} else {
		ans.Index, ans.Members = index, s.applier.Members()
	}
	return json.Marshal(ans)
}

// changeAsLeader checks and proposes change on the leader and returns the
// index at which it was applied.
func (s *Server) changeAsLeader(ctx context.Context, change membership.Change) (uint64, error) {
	s.reconfigMu.Lock()
	defer s.reconfigMu.Unlock()
	term := s.rn.Term()
	if err := s.linearizableReadWait(ctx); err != nil {
		return 0, err
	}
	members := s.applier.Members()
	if change.Kind == membership.Promote {
		// As etcd, readiness first: promoting a voter that is behind
		// answers "not in sync", one that is not in raft "not found".
		if err := s.learnerReady(ctx, change.Member.ID); err != nil {
			return 0, err
		}
	}
	if err := membership.Validate(members, s.applier.Removed(), change, s.cfg.MaxLearners); err != nil {
		return 0, err
	}
	if err := s.mayChange(ctx, members, change); err != nil {
		return 0, err
	}
	cc := raftpb.ConfChange{NodeID: change.Member.ID}
	ctxm := membership.ChangeContext{}
	switch change.Kind {
	case membership.Add:
		// A voter too starts as a raft learner (see above): its
		// record says voter.
		cc.Type = raftpb.ConfChangeAddLearner
		ctxm.Member = change.Member
	case membership.Remove:
		cc.Type = raftpb.ConfChangeRemoveNode
	case membership.Update:
		cc.Type = raftpb.ConfChangeUpdateNode
		ctxm.Member = membership.Member{ID: change.Member.ID, PeerURLs: change.Member.PeerURLs}
	case membership.Promote:
		cc.Type = raftpb.ConfChangeAddVoter
	}
	res, err := s.proposeConfChange(ctx, cc, ctxm, term)
	if err != nil {
		return 0, err
	}
	s.logger.Info("membership change applied", zap.Stringer("change", change.Kind),
		zap.String("member-id", membership.IDString(change.Member.ID)), zap.Strings("peer-urls", change.Member.PeerURLs),
		zap.Bool("is-learner", change.Member.IsLearner), zap.Uint64("index", res.Index))
	return res.Index, res.Err
}

// mayChange applies --strict-reconfig-check's rules (etcd's mayAddMember,
// mayRemoveMember, mayPromoteMember), and, for a promotion, requires the
// learner to have caught up with the leader.
func (s *Server) mayChange(ctx context.Context, members []membership.Member, change membership.Change) error {
	fields := []zap.Field{zap.String("local-member-id", membership.IDString(s.ID())),
		zap.String("member-id", membership.IDString(change.Member.ID))}
	voters := slices.DeleteFunc(slices.Clone(members), func(m membership.Member) bool { return m.IsLearner })
	since := time.Now().Add(-HealthInterval)
	switch change.Kind {
	case membership.Promote:
		if s.cfg.StrictReconfigCheck && !membership.ReadyToPromote(members) {
			s.logger.Warn("rejecting member promote request; not enough healthy members", fields...)
			return ErrNotEnoughStartedMembers
		}
	case membership.Add:
		if !s.cfg.StrictReconfigCheck {
			return nil
		}
		// A learner does not count towards the quorum, but etcd still
		// refuses to add one while this member is cut off from a quorum.
		if !change.Member.IsLearner && !membership.ReadyToAddVoter(members) {
			s.logger.Warn("rejecting member add request; not enough healthy members", fields...)
			return ErrNotEnoughStartedMembers
		}
		// The new member counts as down.
		if len(voters) > 1 && s.connectedSince(since, voters) < (len(voters)+1)/2+1 {
			s.logger.Warn("rejecting member add request; local member has not been connected to majority peers, "+
				"reconfigure breaks active quorum", fields...)
			return ErrUnhealthy
		}
	case membership.Remove:
		if !s.cfg.StrictReconfigCheck {
			return nil
		}
		if i := slices.IndexFunc(members, func(m membership.Member) bool { return m.ID == change.Member.ID }); i >= 0 && members[i].IsLearner {
			return nil
		}
		if !membership.ReadyToRemoveVoter(members, change.Member.ID) {
			s.logger.Warn("rejecting member remove request; not enough healthy members", fields...)
			return ErrNotEnoughStartedMembers
		}
		if change.Member.ID != s.ID() && s.tr.ActiveSince(change.Member.ID).IsZero() {
			return nil // a member down is not part of the active quorum
		}
		if active := s.connectedSince(since, voters); active-1 < 1+(len(voters)-1)/2 {
			s.logger.Warn("rejecting member remove request; local member has not been connected to all peers, "+
				"reconfigure breaks active quorum", append(fields, zap.Int("active-peers", active))...)
			return ErrUnhealthy
		}
	}
	return nil
}

// learnerReady is etcd's isLearnerReady, on the leader: member id must be
// in raft's progress and caught up with the leader's log.
func (s *Server) learnerReady(ctx context.Context, id uint64) error {
	st, err := s.rn.Status(ctx)
	if err != nil {
		return ctxError(err)
	}
	if st.Progress == nil {
		return ErrNotLeader
	}
	if _, ok := st.Progress[id]; !ok {
		return membership.ErrIDNotFound
	}
	if !member.CaughtUp(st, id) {
		s.logger.Warn("rejecting promote learner: learner is not ready", zap.String("local-member-id", membership.IDString(s.ID())),
			zap.String("member-id", membership.IDString(id)))
		return ErrLearnerNotReady
	}
	return nil
}

// connectedSince counts the members this one has been connected to since
// t, itself included (etcd's numConnectedSince).
func (s *Server) connectedSince(t time.Time, members []membership.Member) int {
	n := 0
	for _, m := range members {
		if m.ID == s.ID() {
			n++
			continue
		}
		if at := s.tr.ActiveSince(m.ID); !at.IsZero() && at.Before(t) {
			n++
		}
	}
	return n
}

// proposeConfChange proposes cc (with ctxm as its context, given a request
// ID) as the leader of term and waits for it to be applied.
func (s *Server) proposeConfChange(ctx context.Context, cc raftpb.ConfChange, ctxm membership.ChangeContext, term uint64) (apply.Result, error) {
	id := s.reqIDs.next()
	ctxm.RequestID = id
	cc.Context = ctxm.Marshal()
	ch := s.wait.register(id, nil, 0)
	if err := s.rn.ProposeConfChangeAsLeader(ctx, cc, term); err != nil {
		s.wait.cancel(id)
		if errors.Is(err, raftnode.ErrNotLeader) {
			return apply.Result{}, ErrNoLeader
		}
		return apply.Result{}, s.proposalError(err)
	}
	return s.awaitApplied(ctx, nil, id, ch)
}

// promoteLoop is the leader's promotion duty: a member added as a voter
// is a raft learner until it has caught up; then the leader proposes its
// promotion. It looks every few heartbeats; on other members it finds
// nothing to do.
func (s *Server) promoteLoop() {
	every := max(s.cfg.HeartbeatInterval*5, 50*time.Millisecond)
	for {
		select {
		case <-s.stopping:
			return
		case <-time.After(every):
		}
		if !s.isLeader() {
			continue
		}
		s.promoteDue()
	}
}

func (s *Server) promoteDue() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.rn.Status(ctx)
	if err != nil || st.Progress == nil {
		return
	}
	due := member.PromotionsDue(s.applier.Members(), st.Conf, st)
	if len(due) == 0 {
		return
	}
	s.reconfigMu.Lock()
	defer s.reconfigMu.Unlock()
	id := due[0]
	_, err = s.proposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: id}, membership.ChangeContext{}, st.Term)
	if err != nil {
		s.logger.Info("promoting a caught-up member to voter failed; will retry", zap.String("member-id", membership.IDString(id)), zap.Error(err))
		return
	}
	s.logger.Info("promoted a member added as a voter, now caught up", zap.String("member-id", membership.IDString(id)))
}

// MoveLeader hands leadership to member target and waits until it leads
// (etcd's MoveLeader; only the leader may).
func (s *Server) MoveLeader(ctx context.Context, target uint64) error {
	lead := s.rn.Lead()
	if lead != s.ID() {
		return ErrNotLeader
	}
	m, ok := s.applier.Member(target)
	if !ok || m.IsLearner || !s.applier.ConfState().IsVoter(target) {
		return ErrBadLeaderTransferee
	}
	start := time.Now()
	s.logger.Info("leadership transfer starting", zap.String("local-member-id", membership.IDString(s.ID())),
		zap.String("current-leader-member-id", membership.IDString(lead)),
		zap.String("transferee-member-id", membership.IDString(target)))
	s.rn.TransferLeadership(target)
	for s.rn.Lead() != target {
		select {
		case <-ctx.Done():
			return ErrTimeoutLeaderTransfer
		case <-s.rn.Done():
			return ErrStopped
		case <-time.After(s.cfg.HeartbeatInterval):
		}
		// Raft abandons a transfer that has not finished within an
		// election timeout; then so does this wait.
		if st, err := s.rn.Status(ctx); err == nil && st.Lead == s.ID() && st.LeadTransferee == 0 && s.rn.Lead() != target {
			return ErrTimeoutLeaderTransfer
		}
	}
	s.logger.Info("leadership transfer finished", zap.String("local-member-id", membership.IDString(s.ID())),
		zap.String("old-leader-member-id", membership.IDString(lead)),
		zap.String("new-leader-member-id", membership.IDString(target)), zap.Duration("took", time.Since(start)))
	return nil
}

// transferOnStop hands leadership, if this member has it, to the voter it
// has been connected to longest, before the member stops (etcd's
// TryTransferLeadershipOnShutdown): a rolling restart then never waits an
// election timeout.
func (s *Server) transferOnStop() {
	lead := s.rn.Lead()
	fields := []zap.Field{zap.String("local-member-id", membership.IDString(s.ID())), zap.String("current-leader-member-id", membership.IDString(lead))}
	if lead != s.ID() {
		s.logger.Info("skipped leadership transfer; local server is not leader", fields...)
		return
	}
	cs := s.applier.ConfState()
	if len(cs.Voters) <= 1 {
		s.logger.Info("skipped leadership transfer for single voting member cluster", fields...)
		return
	}
	// Candidates: the voters whose stream is open, connected longest
	// first (etcd's longestConnected). A stream can look open a moment
	// after its member stopped, so a candidate that has not taken over
	// within transferTry is given up for the next: raft would only
	// abandon it after an election timeout.
	type candidate struct {
		id    uint64
		since time.Time
	}
	var cands []candidate
	for _, id := range cs.Voters {
		if at := s.tr.ActiveSince(id); id != s.ID() && !at.IsZero() {
			cands = append(cands, candidate{id, at})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int { return a.since.Compare(b.since) })
	err := ErrUnhealthy
	deadline := time.Now().Add(s.cfg.RequestTimeout)
	try := 10 * s.cfg.HeartbeatInterval
	for _, c := range cands {
		end := time.Now().Add(try)
		if end.After(deadline) {
			end = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		err = s.MoveLeader(ctx, c.id)
		cancel()
		if err == nil || !errors.Is(err, ErrTimeoutLeaderTransfer) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		s.logger.Warn("leadership transfer failed", zap.String("local-member-id", membership.IDString(s.ID())), zap.Error(err))
	}
}

// checkRemoved stops the member once it has applied its own removal, as
// etcd does, after a pause that lets it tell the others the commit (it
// may be the leader that proposed it).
func (s *Server) checkRemoved() {
	if !s.applier.IsRemoved(s.ID()) || !s.removedOnce.CompareAndSwap(false, true) {
		return
	}
	s.goAttached(func() {
		select {
		case <-time.After(10 * s.cfg.HeartbeatInterval):
		case <-s.stopping:
		}
		s.removedStop()
	})
}

// removedStop stops a member that is no longer in the cluster, in etcd's
// words.
func (s *Server) removedStop() {
	s.logger.Warn("server error", zap.Error(ErrMemberRemoved))
	s.logger.Warn("data-dir used by this member must be removed", zap.String("data-dir", s.cfg.DataDir))
	err := ErrMemberRemoved
	s.fatal.CompareAndSwap(nil, &err)
	s.stopOnce.Do(func() { close(s.stopping) })
}

package membersim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// Membership changes, as the server makes them: the leader validates a
// change against its applied membership (once it has applied what it
// committed) and proposes it only in its term. A voter is added as a raft
// learner whose record says voter (a pending voter), and the leader
// promotes it once it has caught up (member.PromotionsDue); a learner is
// promoted on request, once caught up ("learner not ready" otherwise).
//
// Members added here are started (or not) as an operator would, after
// `member add` has returned: empty, in join mode, some steps later,
// sometimes only after a long while, sometimes never (the pending voter
// then stays a raft learner for good).
const (
	// maxMembers bounds the cluster: no add beyond it.
	maxMembers = 7
	// maxLearners is etcd's default --max-learners.
	maxLearners = 1
)

var (
	// errJoinRemoved: a member added, then removed before it first
	// started; the cluster refuses it (it never starts).
	errJoinRemoved = errors.New("membersim: the cluster says this member was removed")
	// errJoinUnknown: no running member knows the joiner yet (or those
	// that do are down); the operator tries again later.
	errJoinUnknown = errors.New("membersim: no running member knows this member")
)

type confKind int

const (
	confAddVoter confKind = iota
	confAddLearner
	confPromote // a client's promote of a learner
	confPromoteDue
	confRemove
	confUpdate
)

func (k confKind) String() string {
	return [...]string{"add-voter", "add-learner", "promote", "promote-due", "remove", "update"}[k]
}

// confOp is a membership change proposed by a leader.
type confOp struct {
	kind     confKind
	reqID    uint64
	member   membership.Member
	proposer *simMember
	// incarnation is the proposer's at the proposal: only that process
	// can answer the client.
	incarnation uint64
	// applied: some member applied it (the first apply decides, for
	// every member, what it did).
	applied  bool
	answered bool
}

// membershipState is what the simulator knows of the changes made.
type membershipState struct {
	// rng draws everything about membership changes, apart from the
	// scheduler's: a seed whose mix has no changes runs as it did before
	// changes existed.
	rng *rand.Rand
	ops map[uint64]*confOp // by request ID
	// everRemoved are the IDs any member applied as removed.
	everRemoved map[uint64]bool
	// wantURLs[id] are the peer URLs of id's latest applied update.
	wantURLs map[uint64][]string
	// added counts the members added (for names).
	added int
}

func (ms *membershipState) init(seed uint64) {
	ms.rng = rand.New(rand.NewPCG(seed, 0x6d656d63))
	ms.ops = map[uint64]*confOp{}
	ms.everRemoved = map[uint64]bool{}
	ms.wantURLs = map[uint64][]string{}
}

// startable reports whether m may be (re)started: it was not stopped for
// good, and its operator means to start it.
func (m *simMember) startable() bool { return !m.removed && !m.never }

// readyLeader returns the leader, if it serves and has applied what it
// committed (the server validates a change only then).
func (s *Sim) readyLeader() *simMember {
	for _, m := range s.up() {
		if m.isLeader() && m.serving() && m.applied >= m.d.Raft().BasicStatus().Commit {
			return m
		}
	}
	return nil
}

// reconfigStep makes one membership change from the leader, if there is
// a leader ready and the change is valid.
func (s *Sim) reconfigStep() {
	lead := s.readyLeader()
	if lead == nil {
		return
	}
	rng := s.ms.rng
	a := lead.st.Applier
	members, removed, cs := a.Members(), a.Removed(), a.ConfState()
	var change membership.Change
	var co confOp
	// Of the changes tried: 35% add a voter, 15% a learner, 15% promote
	// a learner, 20% remove a member, 15% update one.
	switch r := rng.IntN(100); {
	case r < 50:
		if len(members) >= maxMembers {
			return
		}
		learner := r >= 35
		s.ms.added++
		name := fmt.Sprintf("n%d", s.ms.added)
		id := rng.Uint64()
		for id == 0 || s.byID[id] != nil || slices.Contains(removed, id) {
			id = rng.Uint64()
		}
		mem := membership.Member{ID: id, PeerURLs: []string{fmt.Sprintf("http://%s.sim:2380", name)}, IsLearner: learner}
		change = membership.Change{Kind: membership.Add, Member: mem}
		co = confOp{kind: confAddVoter, member: mem}
		if learner {
			co.kind = confAddLearner
		}
	case r < 65:
		var learners []membership.Member
		for _, m := range members {
			if m.IsLearner {
				learners = append(learners, m)
			}
		}
		if len(learners) == 0 {
			return
		}
		mem := learners[rng.IntN(len(learners))]
		change = membership.Change{Kind: membership.Promote, Member: membership.Member{ID: mem.ID}}
		co = confOp{kind: confPromote, member: change.Member}
	case r < 85:
		mem := members[rng.IntN(len(members))]
		if rng.IntN(4) == 0 {
			mem, _ = a.Member(lead.id)
		}
		if cs.IsVoter(mem.ID) && len(cs.Voters) <= 1 {
			return // never below one voter
		}
		change = membership.Change{Kind: membership.Remove, Member: membership.Member{ID: mem.ID}}
		co = confOp{kind: confRemove, member: change.Member}
	default:
		mem := members[rng.IntN(len(members))]
		url := fmt.Sprintf("http://u%d-%x.sim:2380", rng.IntN(1000), mem.ID&0xffff)
		change = membership.Change{Kind: membership.Update, Member: membership.Member{ID: mem.ID, PeerURLs: []string{url}}}
		co = confOp{kind: confUpdate, member: change.Member}
	}
	if err := membership.Validate(members, removed, change, maxLearners); err != nil {
		s.tracef("%s refuses %v of %x: %v", lead.name, co.kind, co.member.ID, err)
		s.stats.ConfRefused++
		return
	}
	if co.kind == confPromote && !member.CaughtUp(lead.d.Raft().Status(), co.member.ID) {
		s.tracef("%s refuses promote of %x: learner not ready", lead.name, co.member.ID)
		s.stats.ConfRefused++
		return
	}
	s.proposeConf(lead, co)
}

// promotionDuty is the leader's: it promotes a pending voter that has
// caught up, one at a time.
func (s *Sim) promotionDuty(lead *simMember) {
	if !lead.isLeader() || !lead.serving() || lead.applied < lead.d.Raft().BasicStatus().Commit {
		return
	}
	a := lead.st.Applier
	due := member.PromotionsDue(a.Members(), a.ConfState(), lead.d.Raft().Status())
	if len(due) == 0 {
		return
	}
	s.proposeConf(lead, confOp{kind: confPromoteDue, member: membership.Member{ID: due[0]}})
}

// proposeConf proposes co as the server would, with its request ID in
// the change's context.
func (s *Sim) proposeConf(lead *simMember, co confOp) {
	s.clients.nextReq++
	co.reqID = s.clients.nextReq
	co.proposer, co.incarnation = lead, lead.incarnation
	ctx := membership.ChangeContext{Member: co.member, RequestID: co.reqID}
	cc := raftpb.ConfChange{NodeID: co.member.ID}
	switch co.kind {
	case confAddVoter:
		cc.Type = raftpb.ConfChangeAddLearner
		ctx.IsLearner = false
	case confAddLearner:
		cc.Type = raftpb.ConfChangeAddLearner
		ctx.IsLearner = true
	case confPromote, confPromoteDue:
		cc.Type = raftpb.ConfChangeAddVoter
	case confRemove:
		cc.Type = raftpb.ConfChangeRemoveNode
	case confUpdate:
		cc.Type = raftpb.ConfChangeUpdateNode
	}
	cc.Context = ctx.Marshal()
	term := lead.d.Raft().BasicStatus().Term
	if err := lead.d.ProposeConfChangeAsLeader(cc, term); err != nil {
		s.tracef("%s: %v of %x not proposed: %v", lead.name, co.kind, co.member.ID, err)
		s.stats.ConfRefused++
		return
	}
	s.stats.ConfProposed++
	s.tracef("%s proposes %v of %x (request %x)", lead.name, co.kind, co.member.ID, co.reqID)
	s.ms.ops[co.reqID] = &co
	s.handleReady(lead)
}

// confApplied is called when m applies a membership change the
// simulator proposed.
func (s *Sim) confApplied(m *simMember, co *confOp, res apply.Result) {
	if res.Err != nil {
		// The leader validated it against a membership that raft's
		// configuration mirrors: raft must not find it invalid.
		s.failf("%s: %v of %x, validated by the leader, was ignored: %v", m.name, co.kind, co.member.ID, res.Err)
		return
	}
	if !co.applied {
		co.applied = true
		switch co.kind {
		case confAddVoter, confAddLearner:
			if s.ms.everRemoved[co.member.ID] {
				s.failf("%s: removed ID %x added again", m.name, co.member.ID)
			}
			s.stats.Added++
		case confPromote, confPromoteDue:
			s.stats.Promoted++
		case confRemove:
			s.stats.Removed++
			s.ms.everRemoved[co.member.ID] = true
			delete(s.ms.wantURLs, co.member.ID)
		case confUpdate:
			s.stats.Updated++
			s.ms.wantURLs[co.member.ID] = co.member.PeerURLs
		}
	}
	if m != co.proposer || m.incarnation != co.incarnation || co.answered {
		return
	}
	co.answered = true
	if co.kind != confAddVoter && co.kind != confAddLearner {
		return
	}
	// `member add` returned: the operator starts the new member, soon,
	// after a long while, or never.
	n := &simMember{id: co.member.ID, name: fmt.Sprintf("m%d", len(s.members)+1), fs: vfs.NewMem(),
		dbfs: pebblevfs.NewCrashableMem(), joiner: true}
	s.members = append(s.members, n)
	s.byID[n.id] = n
	switch r := s.ms.rng.IntN(10); {
	case r == 0:
		n.never = true
		s.tracef("%s (%x) added; never started", n.name, n.id)
	case r < 3:
		s.restartAt[n] = s.now + 10*electionTicks + s.ms.rng.Uint64N(40*electionTicks)
	default:
		s.restartAt[n] = s.now + 1 + s.ms.rng.Uint64N(5*electionTicks)
	}
}

// joinInfo is what a joining member learns from a running member, as
// etcd's joining member asks its peers for the cluster's members.
func (s *Sim) joinInfo(m *simMember) (member.JoinInfo, error) {
	for _, p := range s.up() {
		if p == m || p.removed {
			continue
		}
		if p.st.Applier.IsRemoved(m.id) {
			return member.JoinInfo{}, errJoinRemoved
		}
		if _, ok := p.st.Applier.Member(m.id); ok {
			return member.JoinInfo{ClusterID: p.st.ClusterID, MemberID: m.id, Members: p.st.Applier.Members()}, nil
		}
	}
	return member.JoinInfo{}, errJoinUnknown
}

// stopRemoved stops m for good: it applied its own removal, or a peer
// refused its traffic because it was removed (etcd's transport answers a
// removed member 410 Gone, and it exits: "the member has been
// permanently removed from the cluster"). Its disks are left as they are;
// it never starts from them again.
func (s *Sim) stopRemoved(m *simMember, why string) {
	if !m.up {
		return
	}
	s.tracef("%s (%x) stops for good: %s", m.name, m.id, why)
	s.stats.RemovedStopped++
	st := m.st
	s.memberGone(m) // before the close: watch streams drain what they sent
	if err := st.Close(); err != nil {
		s.failf("%s: closing: %v", m.name, err)
	}
	delete(s.restartAt, m)
	m.removed = true
}

// checkSelfRemoved stops m if it has applied its own removal.
func (s *Sim) checkSelfRemoved(m *simMember) {
	if m.up && m.st.Applier.IsRemoved(m.id) {
		s.stopRemoved(m, "it applied its own removal")
	}
}

// peersRefuseRemoved stops the members a reachable peer knows as
// removed: their streams to it are refused.
func (s *Sim) peersRefuseRemoved() {
	for _, m := range s.up() {
		for _, p := range s.up() {
			if p == m || s.net.blocked[[2]uint64{p.id, m.id}] {
				continue
			}
			if p.st.Applier.IsRemoved(m.id) {
				s.stopRemoved(m, fmt.Sprintf("%s says it was removed", p.name))
				break
			}
		}
	}
}

// pendingPromotion returns a member that is running and that raft still
// counts as a learner though its record says voter: the leader must
// promote it before the cluster counts as converged.
func (s *Sim) pendingPromotion(lead *simMember) *simMember {
	cs := lead.st.Applier.ConfState()
	for _, rec := range lead.st.Applier.Members() {
		if !rec.IsLearner && cs.IsLearner(rec.ID) {
			if m := s.byID[rec.ID]; m != nil && m.up {
				return m
			}
		}
	}
	return nil
}

// membershipChecks run on the converged cluster: every live member
// applied the same membership; member records and raft's configuration
// agree; the removed IDs are remembered everywhere and never return; the
// updated peer URLs are everywhere.
func (s *Sim) membershipChecks(live []*simMember) {
	first := live[0]
	members, cs, removed := first.st.Applier.Members(), first.st.Applier.ConfState(), first.st.Applier.Removed()
	for _, m := range live {
		a := m.st.Applier
		if got := a.Members(); !slices.EqualFunc(got, members, equalMember) {
			s.failf("members differ: %s has %+v; %s has %+v", first.name, members, m.name, got)
			return
		}
		if got := a.ConfState(); !got.Equal(cs) {
			s.failf("configurations differ: %s applied %v; %s applied %v", first.name, cs, m.name, got)
			return
		}
		if got := m.d.Raft().Status().Conf; !got.Equal(cs) {
			s.failf("%s: raft's configuration %v is not the applied one %v", m.name, got, cs)
			return
		}
		if got := a.Removed(); !slices.Equal(got, removed) {
			s.failf("removed IDs differ: %s has %x; %s has %x", first.name, removed, m.name, got)
			return
		}
		if !slices.ContainsFunc(members, func(r membership.Member) bool { return r.ID == m.id }) {
			s.failf("%s (%x) runs but is no member: %+v", m.name, m.id, members)
			return
		}
	}
	for id := range s.ms.everRemoved {
		if !slices.Contains(removed, id) {
			s.failf("%x was removed, but the members forgot it (removed: %x)", id, removed)
			return
		}
	}
	for _, id := range removed {
		if cs.IsVoter(id) || cs.IsLearner(id) || slices.ContainsFunc(members, func(r membership.Member) bool { return r.ID == id }) {
			s.failf("removed ID %x is back: members %+v, configuration %v", id, members, cs)
			return
		}
	}
	for _, rec := range members {
		switch {
		case rec.IsLearner && !cs.IsLearner(rec.ID):
			s.failf("member %x is a learner, but raft's configuration %v does not have it as one", rec.ID, cs)
		case !rec.IsLearner && cs.IsLearner(rec.ID):
			// A pending voter: only while its member does not run.
			if m := s.byID[rec.ID]; m != nil && m.up {
				s.failf("member %x (%s) runs, was added as a voter and is still a raft learner", rec.ID, m.name)
			}
		case !rec.IsLearner && !cs.IsVoter(rec.ID):
			s.failf("member %x is a voter, but raft's configuration %v does not have it", rec.ID, cs)
		}
		if want, ok := s.ms.wantURLs[rec.ID]; ok && !slices.Equal(rec.PeerURLs, want) {
			s.failf("member %x has peer URLs %v; its last update set %v", rec.ID, rec.PeerURLs, want)
		}
	}
	for _, id := range slices.Concat(cs.Voters, cs.Learners) {
		if !slices.ContainsFunc(members, func(r membership.Member) bool { return r.ID == id }) {
			s.failf("raft's configuration %v has %x, which has no member record", cs, id)
		}
	}
}

func equalMember(a, b membership.Member) bool {
	return a.ID == b.ID && a.Name == b.Name && a.IsLearner == b.IsLearner &&
		slices.Equal(a.PeerURLs, b.PeerURLs) && slices.Equal(a.ClientURLs, b.ClientURLs)
}

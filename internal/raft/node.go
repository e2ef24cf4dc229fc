package raft

import (
	"errors"
	"fmt"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// SoftState is volatile state worth reporting: who leads, and our role.
type SoftState struct {
	Lead      uint64
	RaftState StateType
}

// Ready is everything the core asks of its caller at one moment. The caller
// handles it in this order, then calls Advance:
//
//  1. Persist Snapshot (if not empty), HardState (if not empty) and Entries,
//     in one durable write when MustSync. HardState and Entries MUST BE
//     SAVED TO STABLE STORAGE BEFORE Messages ARE SENT: a vote or an
//     append acknowledgement is a promise about what is on disk.
//     (Exception, §10.2.1 of the dissertation: a leader may send its
//     MsgApp and MsgHeartbeat messages while its own write is in progress;
//     its own entries count toward a quorum only after Advance.)
//  2. Send Messages.
//  3. Apply Snapshot to the state machine, then CommittedEntries, in order,
//     each exactly once. Configuration-change entries are applied with
//     ApplyConfChange to the application's own membership.
//  4. Serve ReadStates once the applied index reaches their Index.
//  5. Call Advance.
type Ready struct {
	// SoftState is nil if unchanged since the last Ready.
	SoftState *SoftState
	// HardState is empty if unchanged since the last Ready.
	HardState raftpb.HardState
	// ReadStates answer ReadIndex requests.
	ReadStates []ReadState
	// Entries are to be appended to stable storage, replacing any stored
	// entries from Entries[0].Index on. PERSIST BEFORE SENDING Messages.
	Entries []raftpb.Entry
	// Snapshot, if not empty, is to be persisted and applied: it replaces
	// the state machine and the whole log up to its index.
	Snapshot raftpb.Snapshot
	// CommittedEntries are to be applied. They may include entries from
	// Entries of this same Ready: persist first.
	CommittedEntries []raftpb.Entry
	// Messages are to be sent after the persistence above.
	Messages []raftpb.Message
	// ConfState, if not nil, is the configuration now in force, changed
	// since the last Ready. Configurations take effect when APPENDED, so this
	// can come before the change commits, and Messages may already be
	// addressed to a member it adds: the transport must learn new members
	// here (or from the proposed ConfChange's Context), not when the entry
	// is applied, or a cluster growing from one voter waits forever for an
	// answer from a member it cannot reach.
	ConfState *raftpb.ConfState
	// MustSync: the write of step 1 must be fsynced (entries, term or vote
	// changed; a commit index alone need not be).
	MustSync bool
}

// readyMarks records what the outstanding Ready handed out, so that Advance
// acknowledges exactly that.
type readyMarks struct {
	// entries are the entries handed out to persist.
	entries      []raftpb.Entry
	snapIndex    uint64
	appliedIndex uint64
	appliedCost  uint64
}

// Node is one member's raft core: a deterministic state machine driven by
// Tick, Step and the proposal methods, whose output is collected with Ready
// and acknowledged with Advance. It is not safe for concurrent use: one
// driver loop owns it.
type Node struct {
	r        *raft
	prevSoft SoftState
	prevHard raftpb.HardState
	prevConf raftpb.ConfState
	// outstanding is the Ready handed out and not yet advanced, or nil.
	outstanding *readyMarks
}

// NewNode returns a member's core, restored from c.Storage.
func NewNode(c Config) (*Node, error) {
	r, err := newRaft(&c)
	if err != nil {
		return nil, err
	}
	return &Node{r: r, prevSoft: r.softState(), prevHard: r.hardState(), prevConf: r.conf().Clone()}, nil
}

// Bootstrap writes the initial configuration into an empty storage: one
// committed AddVoter entry per member, in term 1. Every founding member
// bootstraps with the same list, so their logs start identical; members
// that join later get these entries (or a snapshot) from the leader.
func Bootstrap(s *MemoryStorage, voters []uint64) error {
	ccs := make([]raftpb.ConfChange, len(voters))
	for i, id := range voters {
		ccs[i] = raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: id}
	}
	return BootstrapConfChanges(s, ccs)
}

// BootstrapConfChanges is Bootstrap with the application's own conf
// changes (AddVoter, with a Context such as the member's URLs), so that
// applying the founding entries tells the application who its members are.
func BootstrapConfChanges(s *MemoryStorage, ccs []raftpb.ConfChange) error {
	if last, _ := s.LastIndex(); last != 0 || !s.HardState().IsEmpty() {
		return errors.New("raft: bootstrap: storage is not empty")
	}
	if len(ccs) == 0 {
		return errors.New("raft: bootstrap: no voters")
	}
	ents := make([]raftpb.Entry, len(ccs))
	for i, cc := range ccs {
		if cc.Type != raftpb.ConfChangeAddVoter || cc.NodeID == None {
			return fmt.Errorf("raft: bootstrap: %v is not an AddVoter", cc)
		}
		ents[i] = raftpb.Entry{Term: 1, Index: uint64(i + 1), Type: raftpb.EntryConfChange, Data: cc.Marshal()}
	}
	if err := s.Append(ents); err != nil {
		return err
	}
	s.SetHardState(raftpb.HardState{Term: 1, Commit: uint64(len(ccs))})
	return nil
}

// Tick advances the logical clock by one tick.
func (n *Node) Tick() {
	n.r.tick()
	n.r.checkInvariants()
}

// Campaign starts an election now (with a pre-vote round if configured).
func (n *Node) Campaign() {
	n.r.hup(campaignPreElection)
	n.r.checkInvariants()
}

// Step hands the core a message from a peer.
func (n *Node) Step(m raftpb.Message) error {
	if m.To != n.r.id {
		return fmt.Errorf("%w: %s for %d delivered to %d", ErrBadMessage, m.Type, m.To, n.r.id)
	}
	if m.Type < raftpb.MsgApp || m.Type > raftpb.MsgReadIndexResp {
		return fmt.Errorf("%w: unknown type %d", ErrBadMessage, m.Type)
	}
	defer n.r.checkInvariants()
	return n.r.Step(m)
}

// Propose proposes data to be appended to the log. On a follower it is
// forwarded to the leader; an error means it was certainly not accepted.
// No error does not mean it will commit: the caller waits for it to be
// applied, with a timeout.
func (n *Node) Propose(data []byte) error {
	return n.propose(raftpb.Entry{Type: raftpb.EntryNormal, Data: data})
}

// ProposeConfChange proposes a single-server membership change. Only one
// may be pending (appended and not committed) at a time.
func (n *Node) ProposeConfChange(cc raftpb.ConfChange) error {
	return n.propose(raftpb.Entry{Type: raftpb.EntryConfChange, Data: cc.Marshal()})
}

func (n *Node) propose(e raftpb.Entry) error {
	r := n.r
	defer r.checkInvariants()
	switch {
	case r.state == StateLeader:
		return r.propose([]raftpb.Entry{e})
	case r.state == StateFollower && r.lead != None:
		r.send(raftpb.Message{Type: raftpb.MsgProp, To: r.lead, Entries: []raftpb.Entry{e}})
		return nil
	}
	return ErrNoLeader
}

// ReadIndex requests a linearizable read point; the answer is a ReadState
// with the same ctx in a later Ready. The caller makes ctx unique.
// Requests may be dropped (leader change, overload): the caller retries.
func (n *Node) ReadIndex(ctx []byte) error {
	r := n.r
	switch {
	case r.state == StateLeader:
		r.handleReadIndex(r.id, ctx)
		return nil
	case r.state == StateFollower && r.lead != None:
		r.send(raftpb.Message{Type: raftpb.MsgReadIndex, To: r.lead, Context: ctx})
		return nil
	}
	return ErrNoLeader
}

// TransferLeadership asks the leader to hand leadership to transferee.
func (n *Node) TransferLeadership(transferee uint64) {
	r := n.r
	switch {
	case r.state == StateLeader:
		r.transferLeader(transferee)
	case r.lead != None:
		r.send(raftpb.Message{Type: raftpb.MsgTransferLeader, To: r.lead, Index: transferee})
	}
}

// ReportUnreachable tells the leader that a message to id was not delivered.
func (n *Node) ReportUnreachable(id uint64) {
	if n.r.state != StateLeader {
		return
	}
	if pr := n.r.trk.progress[id]; pr != nil && pr.State == StateReplicate {
		pr.becomeProbe()
	}
}

// ReportSnapshot tells the leader how sending a snapshot to id ended. The
// transport MUST report every MsgSnap it was given, success or failure:
// until it does, the leader sends that member nothing else.
func (n *Node) ReportSnapshot(id uint64, ok bool) {
	if n.r.state != StateLeader {
		return
	}
	pr := n.r.trk.progress[id]
	if pr == nil || pr.State != StateSnapshot {
		return
	}
	if !ok {
		pr.PendingSnapshot = 0
	}
	// Wait for the follower to answer a heartbeat before probing again.
	pr.becomeProbe()
	pr.ProbeSent = true
}

// flush does the work deferred to Ready time, so that it is batched: one
// MsgApp per follower for all proposals since the last Ready, and one
// heartbeat round for all read requests since the last one.
func (n *Node) flush() {
	r := n.r
	if r.state != StateLeader {
		return
	}
	if r.appendPending {
		r.appendPending = false
		r.bcastAppend()
	}
	if r.reads.needRound {
		r.bcastHeartbeat()
	}
}

// HasReady reports whether Ready would return anything. It is false while
// a Ready is outstanding (handed out, not yet advanced).
func (n *Node) HasReady() bool {
	r := n.r
	if n.outstanding != nil {
		return false
	}
	if r.softState() != n.prevSoft || !r.conf().Equal(n.prevConf) {
		return true
	}
	if hs := r.hardState(); !hs.IsEmpty() && hs != n.prevHard {
		return true
	}
	return r.raftLog.unstable.snapshot != nil ||
		len(r.raftLog.unstable.entries) > 0 ||
		len(r.msgs) > 0 ||
		len(r.readStates) > 0 ||
		r.raftLog.hasNextCommittedEnts() ||
		(r.state == StateLeader && (r.reads.needRound || r.appendPending))
}

// Ready returns what the caller must do now. Call Advance after handling
// it, before the next Ready. Tick, Step and the proposal methods may be
// called while it is outstanding (a driver persisting asynchronously):
// Advance acknowledges exactly what this Ready handed out, and entries
// replaced in the meantime are not taken as durable.
func (n *Node) Ready() Ready {
	if n.outstanding != nil {
		panic("raft: Ready called before Advance")
	}
	n.flush()
	r := n.r
	rd := Ready{
		Entries:          r.raftLog.unstableEntries(),
		CommittedEntries: r.raftLog.nextCommittedEnts(),
		Messages:         r.msgs,
		ReadStates:       r.readStates,
	}
	rd.Entries = rd.Entries[:len(rd.Entries):len(rd.Entries)]
	if soft := r.softState(); soft != n.prevSoft {
		rd.SoftState = &soft
		n.prevSoft = soft
	}
	if cs := r.conf(); !cs.Equal(n.prevConf) {
		n.prevConf = cs.Clone()
		handed := cs.Clone()
		rd.ConfState = &handed
	}
	if hs := r.hardState(); hs != n.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != n.prevHard.Term || hs.Vote != n.prevHard.Vote
		n.prevHard = hs
	}
	rd.MustSync = rd.MustSync || len(rd.Entries) > 0
	marks := &readyMarks{}
	if s := r.raftLog.unstable.snapshot; s != nil {
		rd.Snapshot = *s
		marks.snapIndex = s.Metadata.Index
		rd.MustSync = true
	}
	marks.entries = rd.Entries
	if k := len(rd.CommittedEntries); k > 0 {
		marks.appliedIndex = rd.CommittedEntries[k-1].Index
		marks.appliedCost = uncommittedCost(rd.CommittedEntries)
	}
	r.msgs = nil
	r.readStates = nil
	n.outstanding = marks
	return rd
}

// Advance tells the core the last Ready was handled: its entries and
// snapshot are durable, its committed entries applied.
func (n *Node) Advance() {
	marks := n.outstanding
	if marks == nil {
		panic("raft: Advance without Ready")
	}
	n.outstanding = nil
	r := n.r
	defer r.checkInvariants()
	if marks.snapIndex > 0 {
		r.raftLog.unstable.stableSnapTo(marks.snapIndex)
		r.raftLog.appliedTo(marks.snapIndex)
	}
	if stable, ok := r.raftLog.unstable.stableToHandedOut(marks.entries); ok && r.state == StateLeader {
		if pr := r.trk.progress[r.id]; pr != nil && pr.maybeUpdate(stable) {
			r.commitAndBroadcast()
		}
	}
	if marks.appliedIndex > 0 {
		r.raftLog.appliedTo(max(marks.appliedIndex, r.raftLog.applied))
		if r.state == StateLeader {
			r.uncommittedSize -= min(r.uncommittedSize, marks.appliedCost)
		}
	}
	r.foldCompactedConf()
}

// Status is a snapshot of a member's state, for observability and tests.
type Status struct {
	ID uint64
	raftpb.HardState
	SoftState
	Applied        uint64
	LastIndex      uint64
	Conf           raftpb.ConfState
	LeadTransferee uint64
	// Progress is the leader's view of each member (nil on followers).
	Progress map[uint64]Progress
}

// Status returns the member's current state.
func (n *Node) Status() Status {
	r := n.r
	s := Status{
		ID:             r.id,
		HardState:      r.hardState(),
		SoftState:      r.softState(),
		Applied:        r.raftLog.applied,
		LastIndex:      r.raftLog.lastIndex(),
		Conf:           r.conf().Clone(),
		LeadTransferee: r.leadTransferee,
	}
	if r.state == StateLeader {
		s.Progress = make(map[uint64]Progress, len(r.trk.progress))
		for id, pr := range r.trk.progress {
			p := *pr
			p.Inflights = nil
			s.Progress[id] = p
		}
	}
	return s
}

// BasicStatus is the allocation-free part of Status.
type BasicStatus struct {
	ID uint64
	raftpb.HardState
	SoftState
	Applied uint64
}

// BasicStatus returns the member's role, term and indexes without copying
// its configuration or progress.
func (n *Node) BasicStatus() BasicStatus {
	return BasicStatus{ID: n.r.id, HardState: n.r.hardState(), SoftState: n.r.softState(), Applied: n.r.raftLog.applied}
}

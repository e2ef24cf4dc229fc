package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// None is the placeholder member id: no leader, no vote.
const None uint64 = 0

// maxTerm bounds terms. No real cluster holds 2^63 elections; a larger term
// can only come from a broken or hostile peer (or storage), and believing
// it would let campaigns overflow the term back to zero.
const maxTerm uint64 = 1 << 63

// StateType is a member's role.
type StateType uint8

const (
	StateFollower StateType = iota
	StatePreCandidate
	StateCandidate
	StateLeader
)

func (s StateType) String() string {
	return [...]string{"StateFollower", "StatePreCandidate", "StateCandidate", "StateLeader"}[s]
}

// Proposal errors. Each wraps ErrProposalDropped, so a caller can test for
// "not accepted" once and map the reason to etcd's errors (ErrNoLeader ->
// "etcdserver: no leader", ErrTooManyRequests -> "etcdserver: too many
// requests", ErrTransferInProgress -> "etcdserver: leader changed").
var (
	ErrProposalDropped    = errors.New("raft: proposal dropped")
	ErrNoLeader           = fmt.Errorf("%w: no leader", ErrProposalDropped)
	ErrTooManyRequests    = fmt.Errorf("%w: too many requests (uncommitted log over its limit)", ErrProposalDropped)
	ErrTransferInProgress = fmt.Errorf("%w: leadership transfer in progress", ErrProposalDropped)
	ErrConfChangePending  = fmt.Errorf("%w: a configuration change is already pending", ErrProposalDropped)
	// ErrNotLeader: a request forwarded to a member that is not the leader.
	ErrNotLeader = fmt.Errorf("%w: not the leader", ErrProposalDropped)
	// ErrStepPeerNotFound: a response from a member the leader has no
	// progress for (removed, or never a member).
	ErrStepPeerNotFound = errors.New("raft: message from an unknown member")
	// ErrBadMessage: a message that no correct peer sends (a term-less
	// message of a type that must carry a term).
	ErrBadMessage = errors.New("raft: malformed message")
)

// campaignTransfer marks the votes of a campaign started by MsgTimeoutNow:
// voters must not ignore them on account of a leader lease.
var campaignTransfer = []byte("CampaignTransfer")

type campaignType uint8

const (
	campaignPreElection campaignType = iota
	campaignElection
	campaignTransferLeader
)

// confPoint is a configuration change at a log index.
type confPoint struct {
	index uint64
	conf  raftpb.ConfState
}

// raft is the consensus state machine of one member. It has no goroutines,
// no clock and no I/O: it changes only through tick, Step and the Node
// methods, and its output accumulates in msgs and readStates until the Node
// hands them out in a Ready.
type raft struct {
	id uint64

	term uint64
	vote uint64

	raftLog *raftLog
	trk     tracker

	// Membership follows §4.1 of Ongaro's dissertation: a member uses the
	// latest configuration in its log, committed or not. baseConf is the
	// configuration as of the log's start (the snapshot); confLog the
	// configuration changes in the log after it, oldest first. Truncating
	// the log drops the points it removes, reverting the configuration.
	baseConf raftpb.ConfState
	confLog  []confPoint

	state StateType
	// lead is the leader of the current term, as far as this member knows.
	lead uint64
	// leadTransferee is the member leadership is being handed to, or None.
	leadTransferee uint64
	// transferElapsed counts ticks since the transfer started; at an
	// election timeout it is abandoned. (Its own counter: reusing the
	// check-quorum timer let transfer requests postpone check-quorum.)
	transferElapsed int
	// termStartIndex is the index of the empty entry this member appended on
	// becoming leader. Until it is committed, the leader refuses
	// configuration changes (the dissertation's fix for single-server
	// changes across leader changes) and holds ReadIndex requests.
	termStartIndex uint64

	// uncommittedSize is the payload the leader has appended in its term and
	// not yet seen applied; proposals beyond maxUncommittedSize are refused.
	uncommittedSize    uint64
	maxUncommittedSize uint64
	maxMsgSize         uint64
	maxInflightMsgs    int
	maxInflightBytes   uint64

	reads readOnly
	// appendPending: the leader appended proposals not yet broadcast.
	appendPending bool

	msgs       []raftpb.Message
	readStates []ReadState

	// electionElapsed counts ticks since the last valid message from a
	// leader (followers), since the election started (candidates), or since
	// the last check-quorum round (leader).
	electionElapsed  int
	heartbeatElapsed int

	checkQuorum bool
	preVote     bool

	logger Logger

	heartbeatTimeout int
	electionTimeout  int
	// randomizedElectionTimeout is in [electionTimeout, 2*electionTimeout),
	// redrawn whenever the member resets its term state.
	randomizedElectionTimeout int
	rand                      Rand

	tick func()
	step func(r *raft, m raftpb.Message) error
}

func newRaft(c *Config) (*raft, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	raftLog, err := newLog(c.Storage, c.MaxCommittedSizePerReady)
	if err != nil {
		return nil, err
	}
	hs, cs, err := c.Storage.InitialState()
	if err != nil {
		return nil, err
	}
	r := &raft{
		id:                 c.ID,
		raftLog:            raftLog,
		maxMsgSize:         c.MaxSizePerMsg,
		maxUncommittedSize: c.MaxUncommittedEntriesSize,
		maxInflightMsgs:    c.MaxInflightMsgs,
		maxInflightBytes:   c.MaxInflightBytes,
		checkQuorum:        c.CheckQuorum,
		preVote:            c.PreVote,
		heartbeatTimeout:   c.HeartbeatTicks,
		electionTimeout:    c.ElectionTicks,
		rand:               c.Rand,
		logger:             c.Logger,
		trk:                tracker{progress: map[uint64]*Progress{}, votes: map[uint64]bool{}},
		reads:              readOnly{maxPending: c.MaxPendingReads},
	}
	if err := r.loadConf(cs); err != nil {
		return nil, err
	}
	// The commit index is the largest index known committed: the saved one
	// (a commit-only HardState need not be synced, so it may lag), the
	// snapshot's (raftLog.committed starts there) and the applied index
	// (only committed entries are applied). The log must hold them all.
	last := raftLog.lastIndex()
	if hs.Term >= maxTerm {
		return nil, fmt.Errorf("raft: saved term %d is past the largest term %d", hs.Term, maxTerm-1)
	}
	if hs.Commit > last {
		return nil, fmt.Errorf("raft: saved commit index %d is past the last index %d: the log lost committed entries", hs.Commit, last)
	}
	if c.Applied > last {
		return nil, fmt.Errorf("raft: applied index %d is past the last index %d: the log lost applied entries", c.Applied, last)
	}
	raftLog.committed = max(raftLog.committed, hs.Commit, c.Applied)
	r.term, r.vote = hs.Term, hs.Vote
	if c.Applied > raftLog.applied {
		raftLog.appliedTo(c.Applied)
	}
	r.becomeFollower(r.term, None)
	var peers []string
	for _, id := range r.trk.conf.Voters {
		peers = append(peers, fmt.Sprintf("%x", id))
	}
	r.logger.Infof("newRaft %x [peers: [%s], term: %d, commit: %d, applied: %d, lastindex: %d, lastterm: %d]",
		r.id, strings.Join(peers, ","), r.term, raftLog.committed, raftLog.applied, last, raftLog.lastTerm())
	return r, nil
}

// loadConf rebuilds the configuration on start: the snapshot's, then every
// configuration change in the log after it.
func (r *raft) loadConf(snapConf raftpb.ConfState) error {
	r.baseConf = snapConf.Clone()
	snap, err := r.raftLog.storage.Snapshot()
	if err != nil {
		return err
	}
	first := r.raftLog.firstIndex()
	if first > snap.Metadata.Index+1 {
		return fmt.Errorf("raft: storage holds no entries between snapshot %d and first index %d", snap.Metadata.Index, first)
	}
	lo, hi := snap.Metadata.Index+1, r.raftLog.lastIndex()+1
	for lo < hi {
		ents, err := r.raftLog.slice(lo, hi, 16<<20)
		if err != nil {
			return err
		}
		r.noteAppended(ents)
		lo += uint64(len(ents))
	}
	r.applyConf()
	return nil
}

// foldCompactedConf folds the configuration points the caller has
// compacted out of the log into baseConf, so confLog holds only points of
// the log that still exists. Compacted entries are applied, so committed:
// no truncation can revert them.
func (r *raft) foldCompactedConf() {
	if len(r.confLog) == 0 {
		return // the common case: no need to ask storage anything
	}
	first := r.raftLog.firstIndex()
	n := 0
	for n < len(r.confLog) && r.confLog[n].index < first {
		r.baseConf = r.confLog[n].conf
		n++
	}
	if n > 0 {
		r.confLog = append([]confPoint(nil), r.confLog[n:]...)
	}
}

func (r *raft) conf() raftpb.ConfState {
	if n := len(r.confLog); n > 0 {
		return r.confLog[n-1].conf
	}
	return r.baseConf
}

// latestConfIndex is the index of the last configuration change in the
// log, or 0 if there is none after the snapshot.
func (r *raft) latestConfIndex() uint64 {
	if n := len(r.confLog); n > 0 {
		return r.confLog[n-1].index
	}
	return 0
}

// noteAppended records the configuration changes among entries that were
// just written to the log at ents[0].Index on. Configuration points at or
// after that index belonged to a suffix the write replaced.
// It does not update the tracker; call applyConf after.
func (r *raft) noteAppended(ents []raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	from := ents[0].Index
	for n := len(r.confLog); n > 0 && r.confLog[n-1].index >= from; n-- {
		r.confLog = r.confLog[:n-1]
	}
	for i := range ents {
		if ents[i].Type != raftpb.EntryConfChange {
			continue
		}
		next, err := ApplyConfChange(r.conf(), confChangeOf(&ents[i]))
		if err != nil {
			continue // an invalid change is a no-op everywhere
		}
		r.confLog = append(r.confLog, confPoint{index: ents[i].Index, conf: next})
	}
}

// applyConf makes the tracker follow r.conf(): progress for new members,
// none for removed ones.
func (r *raft) applyConf() {
	cs := r.conf()
	if r.trk.conf.Equal(cs) && len(r.trk.ids) == len(cs.Voters)+len(cs.Learners) {
		return
	}
	r.trk.conf = cs.Clone()
	members := map[uint64]bool{}
	for _, id := range cs.Voters {
		members[id] = false
	}
	for _, id := range cs.Learners {
		members[id] = true
	}
	for id := range r.trk.progress {
		if _, ok := members[id]; !ok {
			delete(r.trk.progress, id)
		}
	}
	r.trk.ids = r.trk.ids[:0]
	r.logger.Infof("%x switched to configuration %s", r.id, describeConf(cs))
	for id, learner := range members {
		pr := r.trk.progress[id]
		if pr == nil {
			// A new member is presumed active, so that adding it does not
			// make the leader fail its next check-quorum round.
			pr = &Progress{
				Next:         r.raftLog.lastIndex() + 1,
				Inflights:    newInflights(r.maxInflightMsgs, r.maxInflightBytes),
				RecentActive: true,
			}
			if id == r.id {
				pr.Match = r.raftLog.stableLastIndex()
			}
			r.trk.progress[id] = pr
		}
		pr.IsLearner = learner
		r.trk.ids = append(r.trk.ids, id)
	}
	slices.Sort(r.trk.ids)

	if r.state != StateLeader {
		return
	}
	if r.leadTransferee != None && !cs.IsVoter(r.leadTransferee) {
		r.abortLeaderTransfer()
	}
	// A smaller quorum may already have stored more.
	r.commitAndBroadcast()
}

// promotable reports whether this member may campaign. Voters of the
// latest configuration may. So may a member that the latest configuration
// removes (or demotes) while that configuration is uncommitted: it may
// still be needed to elect anyone (§4.2.2, Figure 4.6); it campaigns for
// the new configuration's votes and does not count its own.
func (r *raft) promotable() bool {
	if r.trk.conf.IsVoter(r.id) {
		return true
	}
	n := len(r.confLog)
	if n == 0 || r.confLog[n-1].index <= r.raftLog.committed {
		return false
	}
	prev := r.baseConf
	if n > 1 {
		prev = r.confLog[n-2].conf
	}
	return prev.IsVoter(r.id)
}

func (r *raft) softState() SoftState { return SoftState{Lead: r.lead, RaftState: r.state} }

func (r *raft) hardState() raftpb.HardState {
	return raftpb.HardState{Term: r.term, Vote: r.vote, Commit: r.raftLog.committed}
}

// send queues m for the caller to deliver, stamping the sender and, for
// everything but pre-vote traffic (which names a future term), our term.
func (r *raft) send(m raftpb.Message) {
	m.From = r.id
	switch m.Type {
	case raftpb.MsgVote, raftpb.MsgVoteResp, raftpb.MsgPreVote, raftpb.MsgPreVoteResp:
		if m.Term == 0 {
			panic(fmt.Sprintf("raft: %s must carry its term", m.Type))
		}
	default:
		if m.Term != 0 {
			panic(fmt.Sprintf("raft: %s term set by sender (%d)", m.Type, m.Term))
		}
		// A forwarded proposal carries no term: it is valid in any term.
		if m.Type != raftpb.MsgProp && m.Type != raftpb.MsgReadIndex && m.Type != raftpb.MsgTransferLeader {
			m.Term = r.term
		}
	}
	r.msgs = append(r.msgs, m)
}

// sendAppend sends to a member the entries it lacks, or a snapshot.
func (r *raft) sendAppend(to uint64) { r.maybeSendAppend(to, true) }

// maybeSendAppend sends one MsgApp (or MsgSnap) to `to` unless its progress
// is paused. With sendIfEmpty false, it sends nothing when there are no new
// entries. It reports whether it sent.
func (r *raft) maybeSendAppend(to uint64, sendIfEmpty bool) bool {
	pr := r.trk.progress[to]
	if pr.isPaused() {
		return false
	}
	prevIndex := pr.Next - 1
	prevTerm, errTerm := r.raftLog.term(prevIndex)
	var ents []raftpb.Entry
	var errEnts error
	if pr.State != StateReplicate || !pr.Inflights.full() {
		ents, errEnts = r.raftLog.entries(pr.Next, r.maxMsgSize)
	}
	if len(ents) == 0 && !sendIfEmpty {
		return false
	}
	if errTerm != nil || errEnts != nil {
		return r.maybeSendSnapshot(to, pr)
	}
	// An append that only carries the commit index to a follower known
	// to hold every entry wants no answer: its acknowledgement would
	// change nothing here, and with one write at a time it is half the
	// messages a follower sends (liveness, for CheckQuorum, is the
	// heartbeats' to show).
	caughtUp := len(ents) == 0 && pr.State == StateReplicate && pr.Match == prevIndex && prevIndex == r.raftLog.lastIndex()
	r.send(raftpb.Message{
		Type: raftpb.MsgApp, To: to,
		Index: prevIndex, LogTerm: prevTerm,
		Entries: ents, Commit: r.raftLog.committed, Reject: caughtUp,
	})
	switch pr.State {
	case StateReplicate:
		if n := len(ents); n > 0 {
			last := ents[n-1].Index
			pr.Next = last + 1
			pr.Inflights.add(last, payloadSize(ents))
		}
	case StateProbe:
		pr.ProbeSent = true
	}
	return true
}

// maybeSendSnapshot sends the latest snapshot to a member whose next entry
// is compacted away.
func (r *raft) maybeSendSnapshot(to uint64, pr *Progress) bool {
	if !pr.RecentActive {
		// Don't ship a snapshot to a member that may be down.
		return false
	}
	snap, err := r.raftLog.snapshot()
	if errors.Is(err, ErrSnapshotTemporarilyUnavailable) {
		return false
	} else if err != nil {
		panic(err)
	}
	if snap.IsEmpty() {
		panic("raft: need a non-empty snapshot for a compacted log")
	}
	pr.becomeSnapshot(snap.Metadata.Index)
	r.send(raftpb.Message{Type: raftpb.MsgSnap, To: to, Snapshot: &snap})
	return true
}

// sendHeartbeat tells a member the commit index it can safely use (never
// past what it is known to hold) and the current read round.
func (r *raft) sendHeartbeat(to uint64) {
	pr := r.trk.progress[to]
	r.send(raftpb.Message{
		Type:    raftpb.MsgHeartbeat,
		To:      to,
		Commit:  min(pr.Match, r.raftLog.committed),
		Context: r.reads.roundContext(),
	})
}

func (r *raft) bcastAppend() {
	for _, id := range r.trk.ids {
		if id != r.id {
			r.sendAppend(id)
		}
	}
}

func (r *raft) bcastHeartbeat() {
	r.reads.sentRound()
	if pr := r.trk.progress[r.id]; pr != nil {
		pr.ReadAck = r.reads.round
	}
	for _, id := range r.trk.ids {
		if id != r.id {
			r.sendHeartbeat(id)
		}
	}
	r.releaseReads()
}

// maybeCommit advances the commit index to what a quorum stores, and reacts
// to it. It reports whether the commit index moved.
func (r *raft) maybeCommit() bool {
	if !r.raftLog.maybeCommit(r.trk.committed(), r.term) {
		return false
	}
	if r.reads.hasWaiting() && r.committedInTerm() {
		r.reads.admitWaiting(r.raftLog.committed)
		r.releaseReads()
	}
	return true
}

// commitAndBroadcast advances the commit index if a quorum allows it, tells
// every member, and steps down if that committed our own removal. It
// reports whether the commit index moved.
func (r *raft) commitAndBroadcast() bool {
	if !r.maybeCommit() {
		return false
	}
	r.bcastAppend()
	r.maybeStepDownRemoved()
	return true
}

// committedInTerm reports whether this leader has committed an entry of its
// own term, the point from which its commit index covers every entry
// committed by earlier leaders.
func (r *raft) committedInTerm() bool {
	return r.raftLog.committed >= r.termStartIndex
}

func (r *raft) reset(term uint64) {
	if r.term != term {
		r.term = term
		r.vote = None
	}
	r.lead = None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.resetRandomizedElectionTimeout()
	r.abortLeaderTransfer()
	clear(r.trk.votes)
	stable := r.raftLog.stableLastIndex()
	for id, pr := range r.trk.progress {
		*pr = Progress{
			Next:      r.raftLog.lastIndex() + 1,
			Inflights: pr.Inflights,
			IsLearner: pr.IsLearner,
		}
		pr.Inflights.reset()
		if id == r.id {
			pr.Match = stable
		}
	}
	r.uncommittedSize = 0
	r.appendPending = false
	r.reads.reset()
}

func (r *raft) resetRandomizedElectionTimeout() {
	r.randomizedElectionTimeout = r.electionTimeout + r.rand.IntN(r.electionTimeout)
}

func (r *raft) abortLeaderTransfer() {
	r.leadTransferee = None
	r.transferElapsed = 0
}

func (r *raft) becomeFollower(term, lead uint64) {
	r.step = stepFollower
	r.reset(term)
	r.tick = r.tickElection
	r.lead = lead
	r.state = StateFollower
	r.logger.Infof("%x became follower at term %d", r.id, r.term)
}

func (r *raft) becomeCandidate() {
	if r.state == StateLeader {
		panic("raft: invalid transition [leader -> candidate]")
	}
	r.step = stepCandidate
	r.reset(r.term + 1)
	r.tick = r.tickElection
	r.vote = r.id
	r.state = StateCandidate
	r.logger.Infof("%x became candidate at term %d", r.id, r.term)
}

func (r *raft) becomePreCandidate() {
	if r.state == StateLeader {
		panic("raft: invalid transition [leader -> pre-candidate]")
	}
	// A pre-candidate changes neither its term nor its vote.
	r.step = stepCandidate
	clear(r.trk.votes)
	r.tick = r.tickElection
	r.lead = None
	r.state = StatePreCandidate
	r.logger.Infof("%x became pre-candidate at term %d", r.id, r.term)
}

func (r *raft) becomeLeader() {
	if r.state == StateFollower {
		panic("raft: invalid transition [follower -> leader]")
	}
	r.step = stepLeader
	r.reset(r.term)
	r.tick = r.tickHeartbeat
	r.lead = r.id
	r.state = StateLeader
	r.logger.Infof("%x became leader at term %d", r.id, r.term)
	// Followers' logs are unknown; our own is known to match itself.
	if pr := r.trk.progress[r.id]; pr != nil {
		pr.becomeReplicate()
		pr.RecentActive = true
	}
	// §5.4.2 / §6.4: an empty entry of our term, committed as soon as
	// possible, commits everything before it and lets reads proceed.
	r.termStartIndex = r.raftLog.lastIndex() + 1
	r.appendEntries([]raftpb.Entry{{}})
}

// appendEntries appends the leader's new entries, stamping term and index.
func (r *raft) appendEntries(ents []raftpb.Entry) {
	last := r.raftLog.lastIndex()
	for i := range ents {
		ents[i].Term = r.term
		ents[i].Index = last + 1 + uint64(i)
	}
	r.raftLog.append(ents...)
	r.noteAppended(ents)
	r.applyConf()
	// The leader's own Match moves when the caller reports the entries
	// durable (Node.Advance): only then do they count toward a quorum.
}

func (r *raft) tickElection() {
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.hup(campaignPreElection)
	}
}

func (r *raft) tickHeartbeat() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.electionElapsed = 0
		if r.checkQuorum {
			if !r.trk.quorumActive() {
				// We cannot hear from a quorum: a newer leader may exist.
				r.logger.Warnf("%x stepped down to follower since quorum is not active", r.id)
				r.becomeFollower(r.term, None)
				return
			}
			for id, pr := range r.trk.progress {
				pr.RecentActive = id == r.id
			}
		}
	}
	if r.leadTransferee != None {
		r.transferElapsed++
		if r.transferElapsed >= r.electionTimeout {
			// A transfer that did not finish within an election timeout
			// failed.
			r.abortLeaderTransfer()
		}
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
	}
}

// hup starts an election, with a pre-vote round first if configured.
func (r *raft) hup(t campaignType) {
	if r.state == StateLeader || !r.promotable() || r.term+1 >= maxTerm {
		return
	}
	if t == campaignPreElection && !r.preVote {
		t = campaignElection
	}
	r.logger.Infof("%x is starting a new election at term %d", r.id, r.term)
	r.campaign(t)
}

func (r *raft) campaign(t campaignType) {
	var term uint64
	var voteMsg raftpb.MessageType
	if t == campaignPreElection {
		r.becomePreCandidate()
		voteMsg = raftpb.MsgPreVote
		term = r.term + 1 // the term we would campaign in
	} else {
		r.becomeCandidate()
		voteMsg = raftpb.MsgVote
		term = r.term
	}
	r.trk.votes[r.id] = true
	if r.pollVote(r.id, voteRespType(voteMsg), true) == voteWon {
		// A single-voter cluster: we won already.
		if t == campaignPreElection {
			r.campaign(campaignElection)
		} else {
			r.becomeLeader()
		}
		return
	}
	var ctx []byte
	if t == campaignTransferLeader {
		ctx = campaignTransfer
	}
	for _, id := range r.trk.conf.Voters {
		if id == r.id {
			continue
		}
		r.send(raftpb.Message{
			Type: voteMsg, To: id, Term: term,
			Index: r.raftLog.lastIndex(), LogTerm: r.raftLog.lastTerm(),
			Context: ctx,
		})
		r.logger.Infof("%x [logterm: %d, index: %d] sent %s request to %x at term %d",
			r.id, r.raftLog.lastTerm(), r.raftLog.lastIndex(), voteMsg, id, r.term)
	}
}

// pollVote records from's answer to our vote request (the first answer
// counts) and tallies the votes.
func (r *raft) pollVote(from uint64, t raftpb.MessageType, granted bool) voteResult {
	if granted {
		r.logger.Infof("%x received %s from %x at term %d", r.id, t, from, r.term)
	} else {
		r.logger.Infof("%x received %s rejection from %x at term %d", r.id, t, from, r.term)
	}
	if _, ok := r.trk.votes[from]; !ok {
		r.trk.votes[from] = granted
	}
	yes, no, res := r.trk.tallyVotes()
	r.logger.Infof("%x has received %d %s votes and %d vote rejections", r.id, yes, t, no)
	return res
}

// voteRespType is the answer to a vote request of type t.
func voteRespType(t raftpb.MessageType) raftpb.MessageType {
	if t == raftpb.MsgPreVote {
		return raftpb.MsgPreVoteResp
	}
	return raftpb.MsgVoteResp
}

// describeConf is a configuration as etcd raft prints it:
// "voters=(1 2 3)", with " learners=(4)" when there are learners.
func describeConf(cs raftpb.ConfState) string {
	ids := func(list []uint64) string {
		s := make([]string, len(list))
		for i, id := range list {
			s[i] = fmt.Sprintf("%x", id)
		}
		return strings.Join(s, " ")
	}
	d := "voters=(" + ids(cs.Voters) + ")"
	if len(cs.Learners) > 0 {
		d += " learners=(" + ids(cs.Learners) + ")"
	}
	return d
}

// validateMessage rejects messages no correct peer sends and that would
// corrupt our log or state if believed: their shape alone gives them away.
// Claims that contradict our own log (a heartbeat committing past it, an
// append replacing a committed entry) are refused where they are handled.
func validateMessage(m *raftpb.Message) error {
	if m.Term >= maxTerm {
		return fmt.Errorf("%w: term %d is past the largest term %d", ErrBadMessage, m.Term, maxTerm-1)
	}
	if m.Type == raftpb.MsgSnap && m.Snapshot != nil {
		return validateSnapshot(m)
	}
	if m.Type != raftpb.MsgApp {
		return nil
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.Index+1+uint64(i) {
			return fmt.Errorf("%w: MsgApp after %d carries entry %d at position %d", ErrBadMessage, m.Index, e.Index, i)
		}
		if e.Term < prevTerm || e.Term > m.Term {
			return fmt.Errorf("%w: MsgApp of term %d carries entry %d/%d after term %d", ErrBadMessage, m.Term, e.Term, e.Index, prevTerm)
		}
		prevTerm = e.Term
		if e.Type == raftpb.EntryConfChange {
			var cc raftpb.ConfChange
			if err := cc.Unmarshal(e.Data); err != nil {
				return fmt.Errorf("%w: conf change entry %d: %v", ErrBadMessage, e.Index, err)
			}
		}
	}
	return nil
}

// validateSnapshot rejects a snapshot no correct leader sends: one from a
// later term than its message, or whose configuration is not a sorted,
// duplicate-free pair of disjoint member lists.
func validateSnapshot(m *raftpb.Message) error {
	md := &m.Snapshot.Metadata
	if md.Term > m.Term || (md.Index > 0 && md.Term == 0) {
		return fmt.Errorf("%w: snapshot %d/%d in a message of term %d", ErrBadMessage, md.Term, md.Index, m.Term)
	}
	cs := &md.ConfState
	strictlySorted := func(ids []uint64) bool {
		for i, id := range ids {
			if id == None || (i > 0 && ids[i-1] >= id) {
				return false
			}
		}
		return true
	}
	if !strictlySorted(cs.Voters) || !strictlySorted(cs.Learners) {
		return fmt.Errorf("%w: snapshot configuration %s", ErrBadMessage, cs)
	}
	for _, id := range cs.Learners {
		if _, found := slices.BinarySearch(cs.Voters, id); found {
			return fmt.Errorf("%w: snapshot configuration %s has %d as voter and learner", ErrBadMessage, cs, id)
		}
	}
	return nil
}

// Step advances the state machine by one message from a peer.
func (r *raft) Step(m raftpb.Message) error {
	if err := validateMessage(&m); err != nil {
		return err
	}
	switch {
	case m.Term == 0:
		// Only forwarded requests carry no term.
		if m.Type != raftpb.MsgProp && m.Type != raftpb.MsgReadIndex && m.Type != raftpb.MsgTransferLeader {
			return fmt.Errorf("%w: %s without a term", ErrBadMessage, m.Type)
		}
	case m.Term > r.term:
		if m.Type == raftpb.MsgVote || m.Type == raftpb.MsgPreVote {
			// The lease (§4.2.3) applies to real votes only with
			// check-quorum, which guarantees a leader that loses its quorum
			// steps down; to pre-votes always, as refusing one changes no
			// state (§9.6: a member hearing from its leader does not help
			// anyone depose it).
			force := bytes.Equal(m.Context, campaignTransfer)
			inLease := (r.checkQuorum || m.Type == raftpb.MsgPreVote) && r.lead != None && r.electionElapsed < r.electionTimeout
			if !force && inLease {
				// We heard from a leader within the election timeout: this
				// candidate would only disrupt it (§4.2.3). Say nothing.
				r.logger.Infof("%x [logterm: %d, index: %d, vote: %x] ignored %s from %x [logterm: %d, index: %d] at term %d: lease is not expired (remaining ticks: %d)",
					r.id, r.raftLog.lastTerm(), r.raftLog.lastIndex(), r.vote, m.Type, m.From, m.LogTerm, m.Index, r.term, r.electionTimeout-r.electionElapsed)
				return nil
			}
		}
		if m.Type != raftpb.MsgPreVote && (m.Type != raftpb.MsgPreVoteResp || m.Reject) {
			r.logger.Infof("%x [term: %d] received a %s message with higher term from %x [term: %d]",
				r.id, r.term, m.Type, m.From, m.Term)
		}
		switch {
		case m.Type == raftpb.MsgPreVote:
			// Pre-votes change no state.
		case m.Type == raftpb.MsgPreVoteResp && !m.Reject:
			// A granted pre-vote names the term we would campaign in.
		case m.Type == raftpb.MsgApp || m.Type == raftpb.MsgHeartbeat || m.Type == raftpb.MsgSnap:
			r.becomeFollower(m.Term, m.From)
		default:
			r.becomeFollower(m.Term, None)
		}
	case m.Term < r.term:
		switch {
		case (r.checkQuorum || r.preVote) && (m.Type == raftpb.MsgHeartbeat || m.Type == raftpb.MsgApp):
			// A stale leader, perhaps back from a partition. With pre-vote
			// or check-quorum our term did not disrupt it, so tell it the
			// term or it would never step down.
			r.send(raftpb.Message{Type: raftpb.MsgAppResp, To: m.From})
		case m.Type == raftpb.MsgPreVote:
			r.send(raftpb.Message{Type: raftpb.MsgPreVoteResp, To: m.From, Term: r.term, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case raftpb.MsgVote, raftpb.MsgPreVote:
		r.handleVote(m)
		return nil
	}
	return r.step(r, m)
}

func (r *raft) handleVote(m raftpb.Message) {
	canVote := r.vote == m.From ||
		(r.vote == None && r.lead == None) ||
		(m.Type == raftpb.MsgPreVote && m.Term > r.term)
	respType := raftpb.MsgVoteResp
	if m.Type == raftpb.MsgPreVote {
		respType = raftpb.MsgPreVoteResp
	}
	if canVote && r.raftLog.isUpToDate(m.Index, m.LogTerm) {
		r.logger.Infof("%x [logterm: %d, index: %d, vote: %x] cast %s for %x [logterm: %d, index: %d] at term %d",
			r.id, r.raftLog.lastTerm(), r.raftLog.lastIndex(), r.vote, m.Type, m.From, m.LogTerm, m.Index, r.term)
		// A granted vote names the candidate's term (for a pre-vote, the
		// future term the candidate will campaign in).
		r.send(raftpb.Message{Type: respType, To: m.From, Term: m.Term})
		if m.Type == raftpb.MsgVote {
			r.electionElapsed = 0
			r.vote = m.From
		}
		return
	}
	r.logger.Infof("%x [logterm: %d, index: %d, vote: %x] rejected %s from %x [logterm: %d, index: %d] at term %d",
		r.id, r.raftLog.lastTerm(), r.raftLog.lastIndex(), r.vote, m.Type, m.From, m.LogTerm, m.Index, r.term)
	r.send(raftpb.Message{Type: respType, To: m.From, Term: r.term, Reject: true})
}

func stepLeader(r *raft, m raftpb.Message) error {
	switch m.Type {
	case raftpb.MsgProp:
		// A forwarded proposal that cannot be taken is dropped; its
		// proposer times out and retries, as with a lost message.
		_ = r.propose(m.Entries)
		return nil
	case raftpb.MsgReadIndex:
		r.handleReadIndex(m.From, m.Context)
		return nil
	case raftpb.MsgTransferLeader:
		r.transferLeader(m.Index)
		return nil
	}

	pr := r.trk.progress[m.From]
	if pr == nil {
		return ErrStepPeerNotFound
	}
	switch m.Type {
	case raftpb.MsgAppResp:
		r.handleAppendResponse(m, pr)
	case raftpb.MsgHeartbeatResp:
		pr.RecentActive = true
		pr.ProbeSent = false
		if pr.State == StateReplicate && pr.Inflights.full() {
			// The follower is alive but nothing it was sent has been
			// acknowledged: the appends may be lost. Free one slot so one
			// more goes out; it is acknowledged, or rejected, which drops
			// back to probing from Match.
			pr.Inflights.freeFirst()
		}
		if ack, ok := decodeRound(m.Context); ok && ack > pr.ReadAck {
			pr.ReadAck = ack
			r.releaseReads()
		}
		if pr.Match < r.raftLog.lastIndex() {
			r.sendAppend(m.From)
		}
	}
	return nil
}

func (r *raft) handleAppendResponse(m raftpb.Message, pr *Progress) {
	pr.RecentActive = true
	if m.Reject {
		// The follower's log does not match at m.Index. Its hint
		// (RejectHint, LogTerm) says where it might: probe there.
		next := m.RejectHint
		if m.LogTerm > 0 {
			next, _ = r.raftLog.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, next) {
			if pr.State == StateReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From)
		}
		return
	}
	if m.Index > r.raftLog.lastIndex() {
		// No correct follower acknowledges entries we never had.
		return
	}
	wasPaused := pr.isPaused()
	if !pr.maybeUpdate(m.Index) && !(pr.State == StateProbe && pr.Match == m.Index) {
		return // stale
	}
	switch pr.State {
	case StateProbe:
		pr.becomeReplicate()
	case StateSnapshot:
		if pr.Match+1 >= r.raftLog.firstIndex() {
			// The follower caught up (through the snapshot or otherwise).
			pr.becomeProbe()
			pr.becomeReplicate()
		}
	case StateReplicate:
		pr.Inflights.freeLE(m.Index)
	}
	if r.commitAndBroadcast() {
		if r.state != StateLeader {
			return
		}
	} else if wasPaused {
		// A commit broadcast may have skipped this member while it was
		// paused: send it the commit index now, even with no entries.
		r.sendAppend(m.From)
	}
	for r.maybeSendAppend(m.From, false) {
	}
	if m.From == r.leadTransferee && pr.Match == r.raftLog.lastIndex() {
		r.send(raftpb.Message{Type: raftpb.MsgTimeoutNow, To: m.From})
	}
}

// maybeStepDownRemoved steps a leader down once the configuration that
// removed it is committed (§4.2.2); until then it manages the cluster
// without counting itself. It hands leadership to the most caught-up voter
// so the cluster does not wait an election timeout.
func (r *raft) maybeStepDownRemoved() bool {
	if r.trk.conf.IsVoter(r.id) || r.latestConfIndex() > r.raftLog.committed {
		return false
	}
	var best uint64
	for _, id := range r.trk.conf.Voters {
		if pr := r.trk.progress[id]; pr != nil && pr.Match == r.raftLog.lastIndex() {
			best = id
			break
		}
	}
	if best != None {
		r.send(raftpb.Message{Type: raftpb.MsgTimeoutNow, To: best})
	}
	r.becomeFollower(r.term, None)
	return true
}

func stepCandidate(r *raft, m raftpb.Message) error {
	myVoteResp := raftpb.MsgVoteResp
	if r.state == StatePreCandidate {
		myVoteResp = raftpb.MsgPreVoteResp
	}
	switch m.Type {
	case raftpb.MsgProp, raftpb.MsgReadIndex, raftpb.MsgTransferLeader:
		return ErrNoLeader
	case raftpb.MsgApp:
		r.becomeFollower(m.Term, m.From)
		return r.handleAppend(m)
	case raftpb.MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		return r.handleHeartbeat(m)
	case raftpb.MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case myVoteResp:
		switch r.pollVote(m.From, myVoteResp, !m.Reject) {
		case voteWon:
			if r.state == StatePreCandidate {
				r.campaign(campaignElection)
			} else {
				r.becomeLeader()
				r.bcastAppend()
			}
		case voteLost:
			r.becomeFollower(r.term, None)
		}
	}
	return nil
}

func stepFollower(r *raft, m raftpb.Message) error {
	switch m.Type {
	case raftpb.MsgReadIndex:
		// A read forwarded to us by a member that took us for the leader.
		// Forwarding it again would make us its requester (From is always
		// the sender) and deliver the answer here: drop it; the requester
		// times out and asks the real leader.
		return ErrNotLeader
	case raftpb.MsgProp, raftpb.MsgTransferLeader:
		if r.lead == None {
			return ErrNoLeader
		}
		m.To = r.lead
		m.Term = 0
		r.send(m)
	case raftpb.MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		return r.handleAppend(m)
	case raftpb.MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		return r.handleHeartbeat(m)
	case raftpb.MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case raftpb.MsgTimeoutNow:
		// The leader hands us leadership: campaign at once, without a
		// pre-vote and past the voters' leases.
		r.hup(campaignTransferLeader)
	case raftpb.MsgReadIndexResp:
		r.readStates = append(r.readStates, ReadState{Index: m.Index, RequestCtx: m.Context})
	}
	return nil
}

func (r *raft) handleAppend(m raftpb.Message) error {
	if m.Index < r.raftLog.committed {
		r.send(raftpb.Message{Type: raftpb.MsgAppResp, To: m.From, Index: r.raftLog.committed})
		return nil
	}
	lastNew, from, ok, err := r.raftLog.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries)
	if err != nil {
		return fmt.Errorf("%w: append from %d in term %d: %v", ErrBadMessage, m.From, m.Term, err)
	}
	if ok {
		if from != 0 {
			r.noteAppended(m.Entries[from-m.Index-1:])
			r.applyConf()
		}
		if !m.Reject || len(m.Entries) > 0 {
			r.send(raftpb.Message{Type: raftpb.MsgAppResp, To: m.From, Index: lastNew})
		}
		return nil
	}
	hintIndex := min(m.Index, r.raftLog.lastIndex())
	hintIndex, hintTerm := r.raftLog.findConflictByTerm(hintIndex, m.LogTerm)
	r.send(raftpb.Message{
		Type: raftpb.MsgAppResp, To: m.From,
		Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm,
	})
	return nil
}

func (r *raft) handleHeartbeat(m raftpb.Message) error {
	if last := r.raftLog.lastIndex(); m.Commit > last {
		// A correct leader never sends more than it knows we hold. Either
		// the peer is broken or we lost entries we had acknowledged; both
		// need an operator, and neither is fixed by crashing on every
		// heartbeat.
		return fmt.Errorf("%w: heartbeat from %d commits %d past our last index %d (lost data?)", ErrBadMessage, m.From, m.Commit, last)
	}
	r.raftLog.commitTo(m.Commit)
	r.send(raftpb.Message{Type: raftpb.MsgHeartbeatResp, To: m.From, Context: m.Context})
	return nil
}

func (r *raft) handleSnapshot(m raftpb.Message) {
	if m.Snapshot == nil {
		return
	}
	if r.restore(*m.Snapshot) {
		r.send(raftpb.Message{Type: raftpb.MsgAppResp, To: m.From, Index: r.raftLog.lastIndex()})
		return
	}
	r.send(raftpb.Message{Type: raftpb.MsgAppResp, To: m.From, Index: r.raftLog.committed})
}

// restore installs a snapshot if it carries something we lack.
func (r *raft) restore(s raftpb.Snapshot) bool {
	if s.Metadata.Index <= r.raftLog.committed {
		return false
	}
	if r.raftLog.matchTerm(s.Metadata.Index, s.Metadata.Term) {
		// We have the snapshot's last entry: just learn it is committed.
		r.raftLog.commitTo(s.Metadata.Index)
		return false
	}
	r.logger.Infof("%x [commit: %d, lastindex: %d, lastterm: %d] restored snapshot [index: %d, term: %d]",
		r.id, r.raftLog.committed, r.raftLog.lastIndex(), r.raftLog.lastTerm(), s.Metadata.Index, s.Metadata.Term)
	r.raftLog.restore(s)
	r.baseConf = s.Metadata.ConfState.Clone()
	r.confLog = nil
	r.applyConf()
	return true
}

// propose appends a leader's proposal, local or forwarded.
func (r *raft) propose(ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	if r.leadTransferee != None {
		return ErrTransferInProgress
	}
	for i := range ents {
		if ents[i].Type != raftpb.EntryConfChange {
			continue
		}
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(ents[i].Data); err != nil {
			return fmt.Errorf("%w: conf change does not decode: %v", ErrInvalidConfChange, err)
		}
		if r.latestConfIndex() > r.raftLog.committed || !r.committedInTerm() {
			return ErrConfChangePending
		}
		if _, err := ApplyConfChange(r.conf(), cc); err != nil {
			return err
		}
		for j := i + 1; j < len(ents); j++ {
			if ents[j].Type == raftpb.EntryConfChange {
				return ErrConfChangePending
			}
		}
	}
	size := uncommittedCost(ents)
	if r.uncommittedSize > 0 && r.uncommittedSize+size > r.maxUncommittedSize {
		return ErrTooManyRequests
	}
	r.uncommittedSize += size
	r.appendEntries(ents)
	// Broadcast at Ready time (Node.flush): every proposal until then
	// shares one MsgApp per follower.
	r.appendPending = true
	return nil
}

// transferLeader starts handing leadership to transferee (§3.10).
func (r *raft) transferLeader(transferee uint64) {
	pr := r.trk.progress[transferee]
	if pr == nil || pr.IsLearner || transferee == r.id || transferee == r.leadTransferee {
		return
	}
	r.abortLeaderTransfer()
	// The transfer must finish within an election timeout (tickHeartbeat).
	r.transferElapsed = 0
	r.leadTransferee = transferee
	r.logger.Infof("%x [term %d] starts to transfer leadership to %x", r.id, r.term, transferee)
	if pr.Match == r.raftLog.lastIndex() {
		r.send(raftpb.Message{Type: raftpb.MsgTimeoutNow, To: transferee})
	} else {
		r.sendAppend(transferee)
	}
}

// handleReadIndex answers a read request (§6.4): its read index is the
// commit index now, valid once a quorum confirms we are still the leader in
// a heartbeat round that starts after this moment.
func (r *raft) handleReadIndex(from uint64, ctx []byte) {
	if len(r.trk.conf.Voters) == 1 && r.trk.conf.IsVoter(r.id) && r.committedInTerm() {
		// No one else could have been elected: answer at once.
		r.answerRead(readRequest{index: r.raftLog.committed, from: from, ctx: ctx})
		return
	}
	// Over the pending-read bound the request is dropped; the requester
	// times out and retries. The heartbeat round that confirms it goes out
	// with the next Ready, shared by every request that arrived before.
	r.reads.add(readRequest{from: from, ctx: ctx}, r.committedInTerm(), r.raftLog.committed)
}

func (r *raft) answerRead(req readRequest) {
	if req.from == r.id || req.from == None {
		r.readStates = append(r.readStates, ReadState{Index: req.index, RequestCtx: req.ctx})
		return
	}
	r.send(raftpb.Message{Type: raftpb.MsgReadIndexResp, To: req.from, Index: req.index, Context: req.ctx})
}

// releaseReads answers the read requests whose round a quorum has acked.
func (r *raft) releaseReads() {
	if !r.reads.hasConfirmable() {
		return
	}
	acked := r.trk.quorumIndex(func(id uint64) uint64 {
		if pr := r.trk.progress[id]; pr != nil {
			return pr.ReadAck
		}
		return 0
	})
	for _, req := range r.reads.release(acked) {
		r.answerRead(req)
	}
}

// entryOverheadBytes is what an entry costs the leader beyond its payload
// (the Entry struct in memory), so that empty proposals are bounded too.
const entryOverheadBytes = 48

// uncommittedCost is what ents count against MaxUncommittedEntriesSize.
func uncommittedCost(ents []raftpb.Entry) uint64 {
	return payloadSize(ents) + uint64(len(ents))*entryOverheadBytes
}

func decodeRound(ctx []byte) (uint64, bool) {
	if len(ctx) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(ctx), true
}

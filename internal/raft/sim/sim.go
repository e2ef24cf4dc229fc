package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/wal"
)

// Config is one simulated run. Everything it does follows from Seed.
type Config struct {
	Seed uint64
	// Members is the founding cluster size (3 or 5).
	Members int
	// Steps is the number of scheduler steps of the chaotic phase.
	Steps int
	// StabilizeEvery starts a stabilization phase (faults off, liveness
	// asserted) after this many steps; 0 means only at the end.
	StabilizeEvery int
	// Trace, if not nil, receives a line per step and per event.
	Trace io.Writer
}

const (
	electionTicks  = 10
	heartbeatTicks = 1
	// progressTicks bounds how long a healed, fault-free cluster may take
	// to elect a leader and commit a write everywhere. Elections can be
	// split a few times; 40 election timeouts is generous.
	progressTicks = 40 * electionTicks
	maxVoters     = 7
)

// member is one simulated server: a raft core, its durable storage (which
// survives crashes) and its state machine (which, like Cairn's backend,
// durably records what it applied).
type member struct {
	id uint64
	// d runs the core as production does (raftnode.Driver); node is its
	// core. Both are nil while crashed.
	d       *raftnode.Driver
	node    *raft.Node
	storage *raft.MemoryStorage
	// appliedIndex and conf are the state machine: the last applied index and
	// the configuration as of it.
	appliedIndex uint64
	conf         raftpb.ConfState
	// removed: this member applied its own removal and shut down for good.
	removed bool
	// newLeader: it became leader in the Ready being handled.
	newLeader bool
}

type envelope struct {
	m         raftpb.Message
	deliverAt uint64
}

type readRequest struct {
	member uint64
	// minIndex is the highest acknowledged write when the read started: the
	// read index must cover it.
	minIndex uint64
}

// Sim is a deterministic cluster: a seeded scheduler interleaves ticks,
// message deliveries, Ready handling, client requests and faults, and
// checks the safety invariants after every step.
type Sim struct {
	cfg  Config
	rng  *rand.Rand
	now  uint64 // ticks
	step int

	members map[uint64]*member
	ids     []uint64 // every member ever created, in creation order
	nextID  uint64

	inflight []envelope
	// blocked[from][to]: the network drops messages from -> to.
	blocked map[[2]uint64]bool
	// healAt is the tick at which the network heals by itself (0: none
	// scheduled); partitions last a random while.
	healAt   uint64
	dropRate float64
	dupRate  float64
	maxDelay uint64
	faults   bool
	// mix is this seed's profile (swarm testing): how often each kind of
	// action happens. Seeds differ widely, so that some are quiet and some
	// churn leaders constantly.
	mix mix

	// Checker state.
	//
	// log is every committed entry any member has revealed (through its
	// commit index or by applying), indexed from 1: log[i-1] is entry i.
	// Invariant: no member ever reveals a different entry at a committed
	// index, and log never shrinks.
	log []raftpb.Entry
	// commitTerm[i-1] bounds from above the term in which entry i was
	// committed: the lowest term of a member that revealed it. (A member
	// learns of a commit from a leader of its own term or earlier, so the
	// bound never understates; using it can miss, never invent, a
	// violation.)
	commitTerm []uint64
	// leaders maps a term to the member that led it.
	leaders map[uint64]uint64
	// proposals maps a write's payload to the member it was proposed to;
	// acked is the highest index of a write acknowledged to its client
	// (applied at that member).
	proposals map[string]uint64
	acked     uint64
	reads     map[string]readRequest
	nextReq   uint64

	stats Stats
}

// Stats summarize a run, for the test log and to prove the run did work.
type Stats struct {
	Steps, Ticks                        int
	Elections, Proposed, Committed      int
	ReadsServed, Crashes, Restarts      int
	ConfChanges, Transfers, Snapshots   int
	SnapshotsSent, Stabilizations       int
	MessagesSent, Dropped, Duplicated   int
	MaxTerm, MaxInflight, MembersJoined uint64
}

// mix weighs the scheduler's choices for one seed.
type mix struct {
	// per-mille of steps that are client writes, reads, and faults
	writes, reads, faults int
	// raft settings: the small ones split batches and fill windows.
	checkQuorum, preVote bool
	maxSizePerMsg        uint64
	maxInflightMsgs      int
	// relative weights of the fault kinds, in faultKinds order
	weights [numFaultKinds]int
}

const numFaultKinds = 9

var faultKinds = [numFaultKinds]struct {
	name string
	do   func(*Sim)
}{
	{"crash", (*Sim).crash},
	{"crash-leader", (*Sim).crashLeader},
	{"restart", (*Sim).restartOne},
	{"partition", (*Sim).partition},
	{"isolate-leader", (*Sim).isolateLeader},
	{"heal", (*Sim).heal},
	{"conf-change", (*Sim).confChange},
	{"transfer", (*Sim).transfer},
	{"snapshot", (*Sim).snapshot},
}

func (s *Sim) drawMix() {
	pickOne := func(options ...int) int { return options[s.rng.IntN(len(options))] }
	s.mix.writes = pickOne(20, 50, 100)
	s.mix.reads = pickOne(10, 30, 80)
	s.mix.faults = pickOne(10, 30, 80)
	for i := range s.mix.weights {
		s.mix.weights[i] = pickOne(0, 1, 3, 9)
	}
	// Something must bring members back (partitions heal on a schedule).
	s.mix.weights[2] = max(s.mix.weights[2], 3)
	s.mix.checkQuorum = s.rng.IntN(4) != 0
	s.mix.preVote = s.rng.IntN(4) != 0
	s.mix.maxSizePerMsg = uint64(pickOne(1, 16, 256, 1<<20))
	s.mix.maxInflightMsgs = pickOne(1, 4, 256)
	s.dropRate = []float64{0, 0.01, 0.05, 0.2}[s.rng.IntN(4)]
	s.dupRate = []float64{0, 0.02, 0.1}[s.rng.IntN(3)]
	s.maxDelay = uint64(pickOne(0, 1, 3, 10))
}

// New builds a cluster of cfg.Members founding voters.
func New(cfg Config) *Sim {
	s := &Sim{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		members:   map[uint64]*member{},
		blocked:   map[[2]uint64]bool{},
		leaders:   map[uint64]uint64{},
		proposals: map[string]uint64{},
		reads:     map[string]readRequest{},
		faults:    true,
	}
	s.drawMix()
	s.tracef("mix %+v drop=%v dup=%v delay<=%d", s.mix, s.dropRate, s.dupRate, s.maxDelay)
	voters := make([]uint64, cfg.Members)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	s.nextID = uint64(cfg.Members) + 1
	for _, id := range voters {
		m := &member{id: id, storage: raft.NewMemoryStorage()}
		if err := raft.Bootstrap(m.storage, voters); err != nil {
			panic(err)
		}
		s.members[id] = m
		s.ids = append(s.ids, id)
		s.start(m)
	}
	return s
}

func (s *Sim) tracef(format string, args ...any) {
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "[%d t=%d] %s\n", s.step, s.now, fmt.Sprintf(format, args...))
	}
}

// fail reports an invariant violation with enough context to replay.
func (s *Sim) fail(format string, args ...any) {
	panic(fmt.Sprintf("seed %d step %d tick %d: %s", s.cfg.Seed, s.step, s.now, fmt.Sprintf(format, args...)))
}

// start (re)creates a member's core from its durable storage.
func (s *Sim) start(m *member) {
	// A snapshot persisted but not applied before a crash is applied now,
	// as a restarting server restores its state machine from a snapshot
	// newer than its own applied index.
	if snap, _ := m.storage.Snapshot(); snap.Metadata.Index > m.appliedIndex {
		m.appliedIndex = snap.Metadata.Index
		m.conf = snap.Metadata.ConfState.Clone()
	}
	d, err := raftnode.NewDriver(raftnode.DriverConfig{
		ID:             m.id,
		ElectionTicks:  electionTicks,
		HeartbeatTicks: heartbeatTicks,
		Storage:        m.storage,
		Applied:        m.appliedIndex,
		Log:            simLog{s, m},
		Snaps:          simSnaps{s, m},
		Sender:         simSender{s},
		Applier:        simApplier{s, m},
		Hooks: raftnode.Hooks{
			LeaderChanged: func(lead uint64) { m.newLeader = lead == m.id },
			Persisted:     func() { s.persisted(m) },
		},
		Rand: rand.New(rand.NewPCG(s.rng.Uint64(), m.id)),
		TuneRaft: func(c *raft.Config) {
			// Small limits, so the simulation exercises them.
			c.MaxSizePerMsg = s.mix.maxSizePerMsg
			c.MaxInflightMsgs = s.mix.maxInflightMsgs
			c.MaxUncommittedEntriesSize = 4096
			c.MaxCommittedSizePerReady = 0
			c.MaxPendingReads = 64
			c.CheckQuorum = s.mix.checkQuorum
			c.PreVote = s.mix.preVote
		},
	})
	if err != nil {
		s.fail("restart %d: %v", m.id, err)
	}
	m.d, m.node = d, d.Raft()
	// A crash may have come between becoming leader and persisting.
	m.newLeader = false
}

// Run runs the chaotic phase, with periodic stabilizations, and a final
// stabilization. It panics on an invariant violation.
func (s *Sim) Run() Stats {
	for s.step = 1; s.step <= s.cfg.Steps; s.step++ {
		s.randomStep()
		s.checkLeaders()
		if s.cfg.StabilizeEvery > 0 && s.step%s.cfg.StabilizeEvery == 0 {
			s.stabilize()
		}
	}
	s.stabilize()
	s.stats.Steps = s.cfg.Steps
	s.stats.Ticks = int(s.now)
	s.stats.Committed = len(s.log)
	return s.stats
}

func (s *Sim) up() []*member {
	var out []*member
	for _, id := range s.ids {
		if m := s.members[id]; m.node != nil {
			out = append(out, m)
		}
	}
	return out
}

func (s *Sim) pick(ms []*member) *member {
	if len(ms) == 0 {
		return nil
	}
	return ms[s.rng.IntN(len(ms))]
}

// leader returns an up member that believes it leads the highest term.
func (s *Sim) leader() *member {
	var best *member
	var bestTerm uint64
	for _, m := range s.up() {
		st := m.node.BasicStatus()
		if st.RaftState == raft.StateLeader && st.Term >= bestTerm {
			best, bestTerm = m, st.Term
		}
	}
	return best
}

func (s *Sim) randomStep() {
	r := s.rng.IntN(1000)
	switch {
	case r < s.mix.faults:
		if s.faults {
			s.fault()
		}
	case r < s.mix.faults+s.mix.writes:
		s.propose()
	case r < s.mix.faults+s.mix.writes+s.mix.reads:
		s.read()
	default:
		// Keep the network drained: a member's tick makes up to one
		// heartbeat and response per peer, so deliveries come in batches.
		switch s.rng.IntN(10) {
		case 0:
			s.tickAll()
		case 1, 2, 3, 4, 5:
			s.deliverSome()
		default:
			s.readyOne()
		}
	}
}

func (s *Sim) fault() {
	total := 0
	for _, w := range s.mix.weights {
		total += w
	}
	r := s.rng.IntN(total)
	for i, w := range s.mix.weights {
		if r < w {
			faultKinds[i].do(s)
			return
		}
		r -= w
	}
}

func (s *Sim) tickAll() {
	s.now++
	if s.healAt != 0 && s.now >= s.healAt {
		s.heal()
	}
	for _, m := range s.up() {
		// Clock skew: a member occasionally misses a tick.
		if s.faults && s.rng.IntN(20) == 0 {
			continue
		}
		m.node.Tick()
	}
}

func (s *Sim) send(msgs []raftpb.Message) {
	for _, m := range msgs {
		s.stats.MessagesSent++
		// A snapshot is lost at delivery, where the transport reports it.
		if s.faults && m.Type != raftpb.MsgSnap && s.rng.Float64() < s.dropRate {
			s.stats.Dropped++
			s.tracef("drop %s", raft.DescribeMessage(m))
			continue
		}
		copies := 1
		if s.faults && s.rng.Float64() < s.dupRate {
			copies = 2
			s.stats.Duplicated++
		}
		for range copies {
			var delay uint64
			if s.maxDelay > 0 {
				delay = s.rng.Uint64N(s.maxDelay + 1)
			}
			s.inflight = append(s.inflight, envelope{m: m, deliverAt: s.now + delay})
		}
	}
	s.stats.MaxInflight = max(s.stats.MaxInflight, uint64(len(s.inflight)))
}

// deliverSome delivers a random number of due messages, in random order.
func (s *Sim) deliverSome() {
	for k := 1 + s.rng.IntN(8); k > 0; k-- {
		if !s.deliverOne() {
			return
		}
	}
}

// deliverOne delivers a random message that is due: any order among them.
func (s *Sim) deliverOne() bool {
	due := s.dueIndexes()
	if len(due) == 0 {
		return false
	}
	i := due[s.rng.IntN(len(due))]
	e := s.inflight[i]
	s.inflight = slices.Delete(s.inflight, i, i+1)
	s.deliver(e.m)
	return true
}

func (s *Sim) deliver(m raftpb.Message) {
	to := s.members[m.To]
	ok := to != nil && to.node != nil && !s.blocked[[2]uint64{m.From, m.To}]
	if m.Type == raftpb.MsgSnap {
		ok = ok && !(s.faults && s.rng.Float64() < s.dropRate)
		s.stats.SnapshotsSent++
		// The transport reports how a snapshot send ended.
		if from := s.members[m.From]; from != nil && from.node != nil {
			defer from.node.ReportSnapshot(m.To, ok)
		}
	}
	if !ok {
		s.tracef("lost %s", raft.DescribeMessage(m))
		return
	}
	s.tracef("deliver %s", raft.DescribeMessage(m))
	// Some refusals are normal in a faulty network (a stale proposal, an
	// unknown member's response), but correct peers never send a message
	// the core must reject as malformed or contradicting its log.
	if err := to.node.Step(m); errors.Is(err, raft.ErrBadMessage) {
		s.fail("member %d refused %s: %v", m.To, raft.DescribeMessage(m), err)
	}
}

func (s *Sim) readyOne() {
	var ready []*member
	for _, m := range s.up() {
		if m.node.HasReady() {
			ready = append(ready, m)
		}
	}
	if m := s.pick(ready); m != nil {
		s.handleReady(m)
	}
}

// errCrash is what the simulated storage returns when the member crashes
// in the middle of a Ready; errRemoved what its applier returns once it
// applied its own removal.
var (
	errCrash   = errors.New("sim: crash")
	errRemoved = errors.New("sim: removed")
)

// handleReady has the member's driver handle what its core has ready, as
// Cairn's raft loop does, and checks what it reveals (see simLog and
// persisted).
func (s *Sim) handleReady(m *member) {
	if s.cfg.Trace != nil && m.node.HasReady() {
		// Describing a Ready takes it: only tracing pays that.
		s.tracef("ready %d", m.id)
	}
	err := m.d.HandleReady()
	switch {
	case err == nil:
	case errors.Is(err, errCrash):
		s.stats.Crashes++
		m.node, m.d = nil, nil
	case errors.Is(err, errRemoved):
		m.node, m.d = nil, nil
	default:
		s.fail("member %d: %v", m.id, err)
	}
}

// simLog is a member's durable log: its raft storage itself, which
// survives crashes. The member may crash just before a write (after a
// leader sent its appends early, §10.2.1) or just after it (before the
// messages that depend on it).
type simLog struct {
	s *Sim
	m *member
}

func (l simLog) Save(hs raftpb.HardState, ents []raftpb.Entry, _ bool) error {
	s, m := l.s, l.m
	if s.faults && m.node.BasicStatus().RaftState == raft.StateLeader && s.rng.IntN(40) == 0 {
		s.tracef("crash leader %d after sending, before persisting", m.id)
		return errCrash
	}
	if len(ents) > 0 && ents[0].Index <= m.storage.HardState().Commit {
		s.fail("member %d overwrites committed entry %d (commit %d)", m.id, ents[0].Index, m.storage.HardState().Commit)
	}
	if err := m.storage.Append(ents); err != nil {
		s.fail("member %d: append: %v", m.id, err)
	}
	if !hs.IsEmpty() {
		m.storage.SetHardState(hs)
	}
	if s.faults && s.rng.IntN(200) == 0 {
		// The messages and the apply are lost, the write is not.
		s.tracef("crash %d after persisting, before sending", m.id)
		return errCrash
	}
	return nil
}

func (simLog) SaveSnapshot(wal.Snapshot) error    { return nil }
func (simLog) ResetToSnapshot(wal.Snapshot) error { return nil }
func (simLog) Release(uint64) (int, error)        { return 0, nil }

// simSnaps keeps an installed snapshot durably: in the raft storage.
type simSnaps struct {
	s *Sim
	m *member
}

func (sn simSnaps) Save(snap raftpb.Snapshot) error {
	if err := sn.m.storage.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		sn.s.fail("member %d: apply snapshot: %v", sn.m.id, err)
	}
	return nil
}

type simSender struct{ s *Sim }

func (ss simSender) Send(msgs []raftpb.Message) { ss.s.send(msgs) }

// simApplier applies at once what the driver hands over, and serves the
// reads.
type simApplier struct {
	s *Sim
	m *member
}

func (a simApplier) Apply(ta raftnode.ToApply) error {
	s, m := a.s, a.m
	if !ta.Snapshot.IsEmpty() {
		s.applySnapshot(m, ta.Snapshot)
	}
	for _, e := range ta.Entries {
		s.apply(m, e)
		if m.removed {
			return errRemoved
		}
	}
	for _, rs := range ta.ReadStates {
		s.readState(m, rs)
	}
	return nil
}

// persisted checks what a Ready revealed, once it is durable: the new
// commit index, and a new leader's whole log (including entries it
// accepted as a follower in this Ready).
func (s *Sim) persisted(m *member) {
	hs := m.storage.HardState()
	s.checkCommitted(m, hs.Commit, hs.Term)
	if m.newLeader {
		m.newLeader = false
		if m.node.BasicStatus().RaftState == raft.StateLeader {
			s.checkNewLeader(m)
		}
	}
}

// record notes that entry e is committed, or checks it against what is.
func (s *Sim) record(who uint64, term uint64, e raftpb.Entry) {
	switch i := e.Index; {
	case i == 0:
		s.fail("member %d revealed an entry with index 0", who)
	case i <= uint64(len(s.log)):
		g := s.log[i-1]
		if g.Term != e.Term || g.Type != e.Type || string(g.Data) != string(e.Data) {
			s.fail("member %d has %s at committed index %d, where %s was committed",
				who, raft.DescribeEntry(e), i, raft.DescribeEntry(g))
		}
		s.commitTerm[i-1] = min(s.commitTerm[i-1], term)
	case i == uint64(len(s.log))+1:
		s.log = append(s.log, raftpb.Entry{Term: e.Term, Index: e.Index, Type: e.Type, Data: slices.Clone(e.Data)})
		s.commitTerm = append(s.commitTerm, term)
	default:
		s.fail("member %d revealed committed entry %d but only %d are known", who, i, len(s.log))
	}
}

// checkCommitted checks a member's log up to its new commit index against
// the committed log, extending it.
func (s *Sim) checkCommitted(m *member, commit, term uint64) {
	first, _ := m.storage.FirstIndex()
	last, _ := m.storage.LastIndex()
	if commit > last {
		s.fail("member %d persisted commit %d past its last index %d", m.id, commit, last)
	}
	known := uint64(len(s.log))
	if first > known+1 {
		// Only a snapshot explains a log starting past the known committed
		// prefix, and the leader that made it applied (revealed) all of it.
		s.fail("member %d's log starts at %d but only %d entries are known committed", m.id, first, known)
	}
	lo := max(first, known+1)
	if lo > commit {
		// Nothing new: spot-check the commit point itself.
		if commit >= first {
			ents, _ := m.storage.Entries(commit, commit+1, 1<<30)
			s.record(m.id, term, ents[0])
		}
		return
	}
	ents, err := m.storage.Entries(lo, commit+1, 1<<30)
	if err != nil {
		s.fail("member %d: read committed entries: %v", m.id, err)
	}
	for _, e := range ents {
		s.record(m.id, term, e)
	}
}

// checkNewLeader checks Leader Completeness (§5.4.3): a new leader's log
// holds every entry committed in an earlier term. (A leader of a stale
// term, elected late by delayed votes, may lack entries committed in later
// terms; it cannot commit anything, as the quorum has moved on.)
func (s *Sim) checkNewLeader(m *member) {
	st := m.node.BasicStatus()
	s.stats.Elections++
	s.stats.MaxTerm = max(s.stats.MaxTerm, st.Term)
	first, _ := m.storage.FirstIndex()
	last, _ := m.storage.LastIndex()
	for i := max(first, 1); i <= uint64(len(s.log)); i++ {
		if s.commitTerm[i-1] >= st.Term {
			continue
		}
		if i > last {
			s.fail("leader %d (term %d) has last index %d, but entry %d was committed in term %d or earlier", m.id, st.Term, last, i, s.commitTerm[i-1])
		}
		t, err := m.storage.Term(i)
		if err != nil || t != s.log[i-1].Term {
			s.fail("leader %d (term %d) lacks committed entry %s (has term %d, %v)", m.id, st.Term, raft.DescribeEntry(s.log[i-1]), t, err)
		}
	}
}

// checkLeaders checks Election Safety: at most one leader per term.
func (s *Sim) checkLeaders() {
	for _, m := range s.up() {
		st := m.node.BasicStatus()
		if st.RaftState != raft.StateLeader {
			continue
		}
		if prev, ok := s.leaders[st.Term]; ok && prev != m.id {
			s.fail("two leaders in term %d: %d and %d", st.Term, prev, m.id)
		}
		s.leaders[st.Term] = m.id
	}
}

// apply applies a committed entry to a member's state machine: in order,
// exactly once, and equal to what every other member applied there.
func (s *Sim) apply(m *member, e raftpb.Entry) {
	if e.Index != m.appliedIndex+1 {
		s.fail("member %d applies %d after %d", m.id, e.Index, m.appliedIndex)
	}
	s.record(m.id, m.node.BasicStatus().Term, e)
	m.appliedIndex = e.Index
	switch e.Type {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			s.fail("member %d: conf change %d: %v", m.id, e.Index, err)
		}
		next, err := raft.ApplyConfChange(m.conf, cc)
		if err != nil {
			return // a no-op everywhere
		}
		m.conf = next
		if cc.Type == raftpb.ConfChangeRemoveNode && cc.NodeID == m.id {
			// Like etcd, a member that applies its own removal shuts down.
			s.tracef("member %d applied its removal and stops", m.id)
			m.removed = true
			m.node, m.d = nil, nil
		}
	case raftpb.EntryNormal:
		if proposer, ok := s.proposals[string(e.Data)]; ok && proposer == m.id {
			// The client that proposed it through m gets its answer now.
			delete(s.proposals, string(e.Data))
			s.acked = max(s.acked, e.Index)
		}
	}
}

func (s *Sim) applySnapshot(m *member, snap raftpb.Snapshot) {
	i := snap.Metadata.Index
	if i <= m.appliedIndex {
		s.fail("member %d installs snapshot %d at applied %d", m.id, i, m.appliedIndex)
	}
	if i > uint64(len(s.log)) || s.log[i-1].Term != snap.Metadata.Term {
		s.fail("member %d installs snapshot %d/%d that is not of the committed log", m.id, snap.Metadata.Term, i)
	}
	if binary.BigEndian.Uint64(snap.Data) != i {
		s.fail("member %d: snapshot data is not the state at %d", m.id, i)
	}
	m.appliedIndex = i
	m.conf = snap.Metadata.ConfState.Clone()
}

// clientTarget picks the member a client talks to: half the time one that
// believes it leads (a deposed leader included, which is where stale reads
// and lost writes would come from), otherwise any up member.
func (s *Sim) clientTarget() *member {
	if s.rng.IntN(2) == 0 {
		var leaders []*member
		for _, m := range s.up() {
			if m.node.BasicStatus().RaftState == raft.StateLeader {
				leaders = append(leaders, m)
			}
		}
		if m := s.pick(leaders); m != nil {
			return m
		}
	}
	return s.pick(s.up())
}

func (s *Sim) propose() {
	m := s.clientTarget()
	if m == nil {
		return
	}
	s.stats.Proposed++
	data := fmt.Sprintf("w%d", s.stats.Proposed)
	if err := m.node.Propose([]byte(data)); err == nil {
		s.proposals[data] = m.id
		s.tracef("propose %s at %d", data, m.id)
	}
}

func (s *Sim) read() {
	m := s.clientTarget()
	if m == nil {
		return
	}
	s.nextReq++
	ctx := fmt.Sprintf("r%d", s.nextReq)
	if err := m.node.ReadIndex([]byte(ctx)); err == nil {
		s.reads[ctx] = readRequest{member: m.id, minIndex: s.acked}
		s.tracef("read %s at %d (acked %d)", ctx, m.id, s.acked)
	}
}

// readState checks Linearizable reads (§6.4): the read index covers every
// write acknowledged before the read started.
func (s *Sim) readState(m *member, rs raft.ReadState) {
	req, ok := s.reads[string(rs.RequestCtx)]
	if !ok {
		return // answered twice (a duplicated request message): served once
	}
	delete(s.reads, string(rs.RequestCtx))
	if req.member != m.id {
		s.fail("read %s answered at %d, asked at %d", rs.RequestCtx, m.id, req.member)
	}
	if rs.Index < req.minIndex {
		s.fail("read %s at member %d got read index %d, below acknowledged write %d", rs.RequestCtx, m.id, rs.Index, req.minIndex)
	}
	s.stats.ReadsServed++
}

func (s *Sim) crash() {
	m := s.pick(s.up())
	if m == nil {
		return
	}
	s.tracef("crash %d", m.id)
	s.stats.Crashes++
	m.node, m.d = nil, nil
}

// crashLeader crashes the current leader: the fault that churns terms
// and leaves entries replicated on a minority.
func (s *Sim) crashLeader() {
	if l := s.leader(); l != nil {
		s.tracef("crash leader %d", l.id)
		s.stats.Crashes++
		l.node, l.d = nil, nil
	}
}

// isolateLeader cuts the leader off from everyone: it goes on believing it
// leads (until check-quorum) while the others elect a new leader.
func (s *Sim) isolateLeader() {
	l := s.leader()
	if l == nil {
		return
	}
	s.tracef("isolate leader %d", l.id)
	s.scheduleHeal()
	for _, id := range s.liveIDs() {
		if id != l.id {
			s.blocked[[2]uint64{l.id, id}] = true
			s.blocked[[2]uint64{id, l.id}] = true
		}
	}
}

func (s *Sim) restartOne() {
	var down []*member
	for _, id := range s.ids {
		if m := s.members[id]; m.node == nil && !m.removed {
			down = append(down, m)
		}
	}
	if m := s.pick(down); m != nil {
		s.restart(m)
	}
}

func (s *Sim) restart(m *member) {
	s.tracef("restart %d (applied %d)", m.id, m.appliedIndex)
	s.stats.Restarts++
	s.start(m)
}

// partition splits the members in two, or cuts one direction between two.
func (s *Sim) partition() {
	ids := s.liveIDs()
	if len(ids) < 2 {
		return
	}
	if s.rng.IntN(3) == 0 {
		a, b := ids[s.rng.IntN(len(ids))], ids[s.rng.IntN(len(ids))]
		if a != b {
			s.tracef("one-way partition %d -> %d", a, b)
			s.blocked[[2]uint64{a, b}] = true
			s.scheduleHeal()
		}
		return
	}
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	cut := 1 + s.rng.IntN(len(ids)-1)
	s.tracef("partition %v | %v", ids[:cut], ids[cut:])
	s.scheduleHeal()
	for _, a := range ids[:cut] {
		for _, b := range ids[cut:] {
			s.blocked[[2]uint64{a, b}] = true
			s.blocked[[2]uint64{b, a}] = true
		}
	}
}

func (s *Sim) heal() {
	s.tracef("heal")
	clear(s.blocked)
	s.healAt = 0
}

// scheduleHeal makes a new partition last 5 to 80 ticks (unless a heal
// fault comes first).
func (s *Sim) scheduleHeal() {
	if s.healAt == 0 {
		s.healAt = s.now + 5 + s.rng.Uint64N(76)
	}
}

func (s *Sim) liveIDs() []uint64 {
	var ids []uint64
	for _, id := range s.ids {
		if !s.members[id].removed {
			ids = append(ids, id)
		}
	}
	return ids
}

// confChange asks the leader to add a member (a learner or a voter),
// promote a learner, or remove a member.
func (s *Sim) confChange() {
	l := s.leader()
	if l == nil {
		return
	}
	conf := l.node.Status().Conf
	var cc raftpb.ConfChange
	switch r := s.rng.IntN(4); {
	case r == 0 && len(conf.Voters) < maxVoters, r == 1 && len(conf.Voters)+len(conf.Learners) < maxVoters:
		// A new member starts empty; the leader brings it up to date.
		id := s.nextID
		s.nextID++
		m := &member{id: id, storage: raft.NewMemoryStorage()}
		s.members[id] = m
		s.ids = append(s.ids, id)
		s.start(m)
		s.stats.MembersJoined++
		cc = raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: id}
		if r == 1 {
			cc.Type = raftpb.ConfChangeAddLearner
		}
	case r == 2 && len(conf.Learners) > 0:
		cc = raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: conf.Learners[s.rng.IntN(len(conf.Learners))]}
	case r == 3 && len(conf.Voters) > 2:
		all := append(slices.Clone(conf.Voters), conf.Learners...)
		cc = raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: all[s.rng.IntN(len(all))]}
	default:
		return
	}
	err := l.node.ProposeConfChange(cc)
	s.tracef("conf change %s at leader %d: %v", cc, l.id, err)
	if err == nil {
		s.stats.ConfChanges++
	}
}

func (s *Sim) transfer() {
	l := s.leader()
	if l == nil {
		return
	}
	voters := l.node.Status().Conf.Voters
	to := voters[s.rng.IntN(len(voters))]
	s.tracef("transfer leadership %d -> %d", l.id, to)
	s.stats.Transfers++
	l.node.TransferLeadership(to)
}

// snapshot makes a member snapshot its state machine and compact its log,
// keeping a few entries for slow followers.
func (s *Sim) snapshot() {
	m := s.pick(s.up())
	if m == nil {
		return
	}
	snap, _ := m.storage.Snapshot()
	if m.appliedIndex <= snap.Metadata.Index+2 {
		return
	}
	i := m.appliedIndex
	if _, err := m.storage.CreateSnapshot(i, m.conf, binary.BigEndian.AppendUint64(nil, i)); err != nil {
		s.fail("member %d: snapshot at %d: %v", m.id, i, err)
	}
	keep := uint64(s.rng.IntN(5))
	if i > keep {
		if first, _ := m.storage.FirstIndex(); i-keep >= first {
			if err := m.storage.Compact(i - keep); err != nil {
				s.fail("member %d: compact %d: %v", m.id, i-keep, err)
			}
		}
	}
	s.tracef("member %d snapshot at %d, compacted to %d", m.id, i, i-keep)
	s.stats.Snapshots++
}

// stabilize turns faults off, heals the network, restarts every crashed
// member (optionally leaving one voter down where every configuration in
// play tolerates it), and asserts that the cluster elects a leader and
// commits a new write on every up member within progressTicks.
func (s *Sim) stabilize() {
	s.stats.Stabilizations++
	s.tracef("stabilize")
	// A stable network: no loss, and delays well under the election
	// timeout (Raft's liveness needs broadcast time << election timeout).
	s.faults = false
	savedDelay := s.maxDelay
	s.maxDelay = min(s.maxDelay, 1)
	defer func() { s.faults, s.maxDelay = true, savedDelay }()
	s.heal()
	// Packets still in flight from the chaos are lost (delayed ones could
	// otherwise arrive many ticks into the stable phase).
	for _, e := range s.inflight {
		s.tracef("lost at stabilization %s", raft.DescribeMessage(e.m))
		if from := s.members[e.m.From]; e.m.Type == raftpb.MsgSnap && from.node != nil {
			from.node.ReportSnapshot(e.m.To, false)
		}
	}
	s.inflight = nil
	for _, id := range s.ids {
		if m := s.members[id]; m.node == nil && !m.removed {
			s.restart(m)
		}
	}
	if s.rng.IntN(2) == 0 {
		tolerant := true
		for _, m := range s.up() {
			if len(m.node.Status().Conf.Voters) < 3 {
				tolerant = false
			}
		}
		if tolerant {
			voters := s.up()[0].node.Status().Conf.Voters
			victim := s.members[voters[s.rng.IntN(len(voters))]]
			if victim.node != nil {
				s.tracef("stabilize with %d down", victim.id)
				victim.node, victim.d = nil, nil
			}
		}
	}

	s.stats.Proposed++
	sentinel := fmt.Sprintf("w%d-stable", s.stats.Proposed)
	deadline := s.now + progressTicks
	var at uint64 // index the sentinel committed at, once known
	lastTry := uint64(0)
	for {
		if s.now > deadline {
			s.fail("no progress: %d ticks after faults stopped, the sentinel write is %s", progressTicks, s.sentinelState(sentinel, at))
		}
		if at == 0 {
			for i := len(s.log); i > 0 && at == 0; i-- {
				if string(s.log[i-1].Data) == sentinel {
					at = uint64(i)
				}
			}
		}
		if at != 0 && s.appliedEverywhere(at) {
			s.tracef("stable: sentinel committed at %d", at)
			s.checkStable()
			return
		}
		// (Re)propose the sentinel to the leader every election timeout.
		if at == 0 && s.now >= lastTry+electionTicks {
			if l := s.leader(); l != nil {
				if l.node.Propose([]byte(sentinel)) == nil {
					lastTry = s.now
				}
			}
		}
		s.driveOneTick()
	}
}

// driveOneTick delivers everything due and handles every Ready until the
// cluster is quiet, then ticks.
func (s *Sim) driveOneTick() {
	for progressed := true; progressed; {
		progressed = false
		for s.deliverOne() {
			progressed = true
		}
		for _, m := range s.up() {
			if m.node != nil && m.node.HasReady() {
				s.handleReady(m)
				progressed = true
			}
		}
		s.checkLeaders()
	}
	s.tickAll()
	s.checkLeaders()
}

// checkStable asserts that a healthy cluster keeps its leader: on a good
// network with nothing failing, no member campaigns and no term changes
// for 10 election timeouts. Without pre-vote and check-quorum a removed
// member that never learned of its removal may legitimately disrupt the
// cluster (§4.2.3), so such seeds are not checked.
func (s *Sim) checkStable() {
	if !s.mix.preVote && !s.mix.checkQuorum {
		return
	}
	// A transfer requested during the chaos may still be under way: a
	// leader change it makes was asked for. Transfers end within an
	// election timeout.
	for range 2 * electionTicks {
		if l := s.leader(); l != nil && l.node.Status().LeadTransferee == raft.None {
			break
		}
		s.driveOneTick()
	}
	l := s.leader()
	if l == nil {
		s.fail("no leader after a transfer on a healthy network: %s", s.sentinelState("(stability)", 0))
	}
	term := l.node.BasicStatus().Term
	for range 10 * electionTicks {
		s.driveOneTick()
	}
	if now := s.leader(); now == nil || now.id != l.id || now.node.BasicStatus().Term != term {
		s.fail("unstable: leader %d in term %d on a healthy network, then %s", l.id, term, s.sentinelState("(stability)", 0))
	}
}

func (s *Sim) dueIndexes() []int {
	var due []int
	for i, e := range s.inflight {
		if e.deliverAt <= s.now {
			due = append(due, i)
		}
	}
	return due
}

// appliedEverywhere: a leader exists and every up member of its
// configuration has applied index i. Members outside it are ignored: never
// added, or removed without having learned it (in Cairn, peers refuse such a
// member's traffic and it stops; at the raft level it is harmless, since
// pre-vote keeps it from disrupting anyone).
func (s *Sim) appliedEverywhere(i uint64) bool {
	l := s.leader()
	if l == nil {
		return false
	}
	conf := l.node.Status().Conf
	for _, m := range s.up() {
		if !conf.IsVoter(m.id) && !conf.IsLearner(m.id) {
			continue
		}
		if m.appliedIndex < i {
			return false
		}
	}
	return true
}

func (s *Sim) sentinelState(sentinel string, at uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q committed at %d; members:", sentinel, at)
	for _, id := range s.ids {
		m := s.members[id]
		if m.node == nil {
			fmt.Fprintf(&b, "\n  %d: down (removed=%v)", id, m.removed)
			continue
		}
		st := m.node.Status()
		fmt.Fprintf(&b, "\n  %d: %s term=%d lead=%d commit=%d applied=%d last=%d conf=(%s)",
			id, st.RaftState, st.Term, st.Lead, st.Commit, m.appliedIndex, st.LastIndex, st.Conf)
		for pid, pr := range st.Progress {
			fmt.Fprintf(&b, "\n      %d: match=%d next=%d %s active=%v", pid, pr.Match, pr.Next, pr.State, pr.RecentActive)
		}
	}
	return b.String()
}

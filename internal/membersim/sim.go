package membersim

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/vfs"
)

// Config is one simulated run. Everything it does follows from Seed
// (pebble's own goroutines aside: see the package doc).
type Config struct {
	Seed uint64
	// Members is the cluster size (3 or 5).
	Members int
	// Steps is the number of scheduler steps of the chaotic phase.
	Steps int
	// Trace, if not nil, receives a line per event.
	Trace io.Writer
	// ReconfigPerMille, if not 0, replaces the seed's share of steps
	// that try a membership change (for soaks).
	ReconfigPerMille int
}

const (
	electionTicks  = 10
	heartbeatTicks = 1
	// snapshotCount and catchUpEntries are small, so that snapshots are
	// taken, and sent to lagging members, often.
	snapshotCount  = 20
	catchUpEntries = 4
	// progressTicks bounds how long a healed, fault-free cluster may take
	// to elect a leader and apply everything everywhere.
	progressTicks = 60 * electionTicks
	// opTimeoutTicks is how long a client waits for an answer before it
	// gives up (the outcome is then unknown).
	opTimeoutTicks = 8 * electionTicks
	// tickDuration is the time a tick stands for, on the lessors' clocks
	// (the heartbeat interval: 10 ticks make a 1 s election timeout).
	tickDuration = 100 * time.Millisecond
	// maxRevokesPerTick and revokeRetry are the lease duty's, as the
	// server's lease loop has them.
	maxRevokesPerTick = 100
	revokeRetry       = 3 * time.Second
)

// epoch is the simulated clock's start: time is epoch plus the ticks.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simMember is one member: its disks survive crashes; everything else is
// rebuilt from them at restart.
type simMember struct {
	id   uint64
	name string
	// fs holds the WAL and the snapshots; dbfs the backend. A crash keeps
	// only what each made durable (and, for fs, a random part of the
	// rest, as a disk may).
	fs   *vfs.MemFS
	dbfs *pebblevfs.MemFS

	// up: running. The fields below are nil while it is down.
	up       bool
	st       *member.Storage
	d        *raftnode.Driver
	pipe     *member.Pipeline
	images   *member.Images
	applyQ   []raftnode.ToApply
	applied  uint64
	recovery uint64 // the commit index at restart: clients are served from there on
	// incarnation counts restarts (it seeds the raft core's randomness).
	incarnation uint64
	// pending are the client requests proposed here, by request ID.
	pending map[uint64]*op
	// reads are linearizable reads waiting for their read state, by
	// request ID, then for the applied index to reach it.
	reads      map[uint64]*op
	readyReads []readyRead
	// lastRev is the store's revision after the last apply, to check
	// that it never goes backwards (within an incarnation).
	lastRev int64
	// cutNext: the power goes out at its next storage write (it just
	// sent a vote or an append acknowledgement: the write it promised
	// must have been made already).
	cutNext bool
	// joiner: added at run time; it starts empty, in join mode.
	joiner bool
	// never: added, but its operator never starts it.
	never bool
	// removed: stopped for good (see stopRemoved); never started again.
	removed bool
}

// outcome is what applying a request produced, at the first member that
// applied it.
type outcome struct {
	index uint64
	res   apply.Result
	// at is the client clock then: the request took effect before.
	at int64
}

type readyRead struct {
	index uint64
	o     *op
}

// Sim is a cluster of real members (raftnode.Driver, WAL, snap, the apply
// pipeline, mvcc on pebble) on in-memory disks and a simulated network,
// driven by a seeded scheduler, with the checks of the package doc.
type Sim struct {
	cfg Config
	rng *rand.Rand
	now uint64 // ticks
	// clock orders client calls and returns for the linearizability
	// check: it moves at every event.
	clock int64

	members []*simMember
	byID    map[uint64]*simMember
	initial string

	net network

	faults bool
	mix    mix
	// healAt is the tick the network heals at by itself (0: none);
	// restartAt[m] the tick a crashed member comes back at. Faults last
	// a random while, so that the cluster also spends time healthy.
	healAt    uint64
	restartAt map[*simMember]uint64

	clients clients
	watches watches
	ms      membershipState
	// results[index] is what the first member to apply entry index
	// computed; every other member must compute the same.
	results map[uint64]string
	// requests[id] is the entry that carried request id: each request
	// is applied once.
	requests map[uint64]outcome

	stats Stats
	err   error
}

// Stats summarize a run.
type Stats struct {
	Steps, Ticks                         int
	Ops, OpsAcked, OpsUnknown, OpsFailed int
	Reads, SerializableReads             int
	Crashes, Restarts, Partitions        int
	SnapshotsSent, SnapshotsInstalled    int
	Compactions, WatchEvents, WatchResum int
	Expiries                             int
	MaxRev                               int64
	Delivered, Dropped, Duplicated       int
	// Membership changes: proposed, refused (by validation, "learner
	// not ready", or raft), applied by kind, and members stopped for
	// good after their removal.
	ConfProposed, ConfRefused         int
	Added, Promoted, Removed, Updated int
	RemovedStopped                    int
	// Joins counts the starts of added members through the join path:
	// first starts, and restarts before the leader sent anything
	// (Rejoins).
	Joins, Rejoins int
}

type mix struct {
	// per-mille of steps: client operations, faults
	ops, faults int
	// weights of fault kinds
	crash, restart, partition, heal int
	// slowApply: per-mille chance that an apply step is skipped
	slowApply int
	// immediateApply: chance that a batch is applied the moment the
	// driver hands it over (the apply goroutine ran at once), when
	// nothing older waits.
	immediateApply float64
	// ioCrashRate: chance of a power cut before or after each storage
	// write of the driver, mid-Ready.
	ioCrashRate float64
	// promiseCutRate: chance that a member that sends a vote or an
	// append acknowledgement loses power at its next storage write.
	promiseCutRate float64
	// reconfig: per-mille of steps that try a membership change (drawn
	// from the membership changes' own generator).
	reconfig int
}

func (s *Sim) drawMix() {
	pick := func(options ...int) int { return options[s.rng.IntN(len(options))] }
	s.mix.ops = pick(100, 250, 400)
	s.mix.faults = pick(3, 8, 20)
	s.mix.crash = pick(1, 3, 6)
	s.mix.restart = pick(4, 8)
	s.mix.partition = pick(0, 2, 5)
	s.mix.heal = pick(2, 5)
	s.mix.slowApply = pick(0, 300, 700)
	s.mix.immediateApply = []float64{0, 0.3, 0.9}[s.rng.IntN(3)]
	s.mix.ioCrashRate = []float64{0, 0.002, 0.01}[s.rng.IntN(3)]
	s.mix.promiseCutRate = []float64{0, 0.02, 0.1}[s.rng.IntN(3)]
	s.net.dropRate = []float64{0, 0.01, 0.05, 0.15}[s.rng.IntN(4)]
	s.net.dupRate = []float64{0, 0.02, 0.08}[s.rng.IntN(3)]
	// Delays stay well under an election timeout, as on a LAN.
	s.net.maxDelay = uint64(pick(0, 1, 2, 4))
}

// New builds a cluster of cfg.Members founding members.
func New(cfg Config) (*Sim, error) {
	if cfg.Members < 1 {
		cfg.Members = 3
	}
	s := &Sim{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x6d656d62)),
		byID:      map[uint64]*simMember{},
		results:   map[uint64]string{},
		requests:  map[uint64]outcome{},
		restartAt: map[*simMember]uint64{},
		faults:    true,
	}
	s.net.init()
	s.clients.init()
	s.ms.init(cfg.Seed)
	s.drawMix()
	s.mix.reconfig = []int{0, 0, 10, 25, 50}[s.ms.rng.IntN(5)]
	if cfg.ReconfigPerMille != 0 {
		s.mix.reconfig = cfg.ReconfigPerMille
	}
	s.tracef("seed %d: %d members, mix %+v drop=%v dup=%v delay<=%d", cfg.Seed, cfg.Members, s.mix,
		s.net.dropRate, s.net.dupRate, s.net.maxDelay)
	var parts []string
	for i := range cfg.Members {
		name := fmt.Sprintf("m%d", i+1)
		parts = append(parts, fmt.Sprintf("%s=http://%s.sim:2380", name, name))
	}
	s.initial = strings.Join(parts, ",")
	for i := range cfg.Members {
		m := &simMember{name: fmt.Sprintf("m%d", i+1), fs: vfs.NewMem(), dbfs: pebblevfs.NewCrashableMem()}
		if err := s.start(m); err != nil {
			return nil, err
		}
		s.members = append(s.members, m)
		s.byID[m.id] = m
	}
	return s, nil
}

func (s *Sim) tracef(format string, args ...any) {
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "[%d t%d] %s\n", s.stats.Steps, s.now, fmt.Sprintf(format, args...))
	}
}

// failf records the first violation; the run stops at the next step.
func (s *Sim) failf(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("seed %d, step %d, tick %d: %s", s.cfg.Seed, s.stats.Steps, s.now, fmt.Sprintf(format, args...))
		s.tracef("VIOLATION: %v", s.err)
	}
}

// start opens m's storage (creating it on the first start) and starts its
// driver and pipeline: the code a cairn process runs at start-up.
func (s *Sim) start(m *simMember) error {
	state := "new"
	var join func() (member.JoinInfo, error)
	if m.joiner {
		state = "existing"
		join = func() (member.JoinInfo, error) { return s.joinInfo(m) }
	}
	st, err := member.Open(member.Config{
		Name: m.name, Dir: "/" + m.name,
		InitialCluster: s.initial, InitialClusterToken: "sim", InitialClusterState: state, Join: join,
		AdvertisePeerURLs: []string{fmt.Sprintf("http://%s.sim:2380", m.name)},
		MinLeaseTTL:       1,
		FS:                m.fs,
		WALSegmentBytes:   256 << 10,
		MaxWALs:           1, // release every segment no snapshot needs
		Backend:           backend.Options{FS: m.dbfs, CacheBytes: 1 << 20},
		Clock:             s.leaseClock,
	})
	if err != nil {
		return fmt.Errorf("member %s: open: %w", m.name, err)
	}
	if m.joiner && st.MemberID != m.id {
		st.Close()
		return fmt.Errorf("member %s: joined as %x, added as %x", m.name, st.MemberID, m.id)
	}
	if m.joiner && st.Raft.HardState().IsEmpty() {
		// member.Open asked the cluster (a first start, or a restart
		// whose WAL held nothing yet).
		s.stats.Joins++
		if m.incarnation > 0 {
			s.stats.Rejoins++
		}
	}
	m.id = st.MemberID
	m.st = st
	m.images = member.NewImages(st, nil)
	m.pending = map[uint64]*op{}
	m.reads = map[uint64]*op{}
	m.readyReads = nil
	m.applyQ = nil
	m.applied = st.Applier.ConsistentIndex()
	m.recovery = st.Raft.HardState().Commit
	m.lastRev = 0
	m.cutNext = false
	m.pipe = member.NewPipeline(st, member.PipelineConfig{
		SnapshotCount: snapshotCount,
		TakeSnapshot: func(index uint64, cs raftpb.ConfState) error {
			return m.d.TakeSnapshot(index, cs)
		},
		Applied: s.appliedHook(m),
	})
	d, err := raftnode.NewDriver(raftnode.DriverConfig{
		ID: m.id, ElectionTicks: electionTicks, HeartbeatTicks: heartbeatTicks,
		Storage: st.Raft, Applied: m.applied,
		Log:     crashingLog{cutter{s, m}, st.WAL},
		Snaps:   crashingSnaps{cutter{s, m}, st.Snap},
		Sender:  &sender{s: s, from: m},
		Applier: &queueApplier{s: s, m: m},
		Hooks: raftnode.Hooks{
			// As the server: a member that stops leading stops
			// keeping lease time at once.
			LeaderChanged: func(lead uint64) {
				if lead != m.id {
					m.st.Applier.Lessor().Demote()
				}
			},
		},
		Rand: rand.New(rand.NewPCG(s.cfg.Seed^m.id, m.incarnation)),
		Limits: raftnode.Limits{
			SnapshotCatchUpEntries: catchUpEntries,
			// Small, so that committed entries reach the applier in
			// several pieces.
			MaxCommittedSizePerReady: 1 << 10,
		},
	})
	if err != nil {
		st.Close()
		return fmt.Errorf("member %s: raft: %w", m.name, err)
	}
	m.d = d
	m.up = true
	m.incarnation++
	s.tracef("start %s (%x): applied %d, commit %d", m.name, m.id, m.applied, m.recovery)
	// It applied its own removal, and the power went before it stopped.
	s.checkSelfRemoved(m)
	return nil
}

// queueApplier is the driver's Applier: it queues what to apply, and the
// scheduler applies it later, as the server's apply goroutine does; or,
// now and then, at once, as that goroutine may before the raft loop goes
// on.
type queueApplier struct {
	s *Sim
	m *simMember
}

func (q *queueApplier) Apply(ta raftnode.ToApply) error {
	if len(q.m.applyQ) == 0 && q.s.faults && q.s.rng.Float64() < q.s.mix.immediateApply {
		return q.s.applyBatch(q.m, ta)
	}
	q.m.applyQ = append(q.m.applyQ, ta)
	return nil
}

// handleReady runs the driver after anything that may have given raft
// work; a storage error is a simulator failure (no I/O errors are
// injected).
func (s *Sim) handleReady(m *simMember) {
	if !m.up {
		return
	}
	if err := m.d.HandleReady(); err != nil {
		if errors.Is(err, errPowerCut) {
			s.powerCut(m)
			return
		}
		s.failf("member %s: %v", m.name, err)
		return
	}
	s.checkSelfRemoved(m)
}

// applyOne applies m's oldest queued batch, then lets the driver hand out
// what applying it produced (a snapshot taken).
func (s *Sim) applyOne(m *simMember) {
	if !m.up || len(m.applyQ) == 0 {
		return
	}
	ta := m.applyQ[0]
	m.applyQ = m.applyQ[1:]
	if err := s.applyBatch(m, ta); err != nil {
		if errors.Is(err, errPowerCut) {
			s.powerCut(m)
			return
		}
		s.failf("member %s: apply: %v", m.name, err)
		return
	}
	s.handleReady(m)
}

// applyBatch applies ta through m's pipeline and serves the reads it
// makes possible. A power cut (in a snapshot the pipeline takes) is
// returned; any other error is a violation.
func (s *Sim) applyBatch(m *simMember, ta raftnode.ToApply) error {
	if !ta.Snapshot.IsEmpty() {
		s.stats.SnapshotsInstalled++
		s.tracef("%s installs snapshot %d", m.name, ta.Snapshot.Metadata.Index)
	}
	applied, err := m.pipe.Apply(ta)
	if err != nil {
		return err
	}
	// A snapshot Apply started is taken now, its flush waited for, so
	// that a seed's run does not depend on when pebble's goroutines
	// finish the flush (the server takes it when the flush is done).
	if err := m.pipe.FinishSnapshot(true); err != nil {
		return err
	}
	if applied < m.applied {
		s.failf("member %s: applied index went back from %d to %d", m.name, m.applied, applied)
	}
	m.applied = applied
	var rev int64
	m.st.Applier.View(func(st *mvcc.Store) error { rev = st.Rev(); return nil })
	if rev < m.lastRev {
		s.failf("member %s: revision went back from %d to %d", m.name, m.lastRev, rev)
	}
	m.lastRev = rev
	s.stats.MaxRev = max(s.stats.MaxRev, rev)
	for _, rs := range ta.ReadStates {
		id := readID(rs.RequestCtx)
		if o, ok := m.reads[id]; ok {
			delete(m.reads, id)
			m.readyReads = append(m.readyReads, readyRead{index: rs.Index, o: o})
		}
	}
	s.serveReads(m)
	return nil
}

// crash cuts m's power: its disks keep what was durable (the WAL's disk
// also a random part of the rest), everything in memory is lost, and its
// clients' pending requests end with an unknown outcome.
func (s *Sim) crash(m *simMember) {
	if !m.up {
		return
	}
	s.stats.Crashes++
	s.tracef("crash %s", m.name)
	// The backend's disk keeps what was synced and, a third of the time
	// each, none of the rest (power loss), half of it, or all of it (the
	// process was killed: what pebble wrote to files survives).
	kept := []int{0, 50, 100}[s.rng.IntN(3)]
	crashed := m.dbfs.CrashClone(pebblevfs.CrashCloneCfg{UnsyncedDataPercent: kept, RNG: rand.New(rand.NewPCG(s.rng.Uint64(), 0))})
	m.fs.CrashRandom(s.rng)
	// Closing writes only to the abandoned disks (the WAL's handles are
	// stale after the crash, the backend's disk is replaced).
	_ = m.st.Applier.Close()
	m.dbfs = crashed
	s.memberGone(m)
}

// memberGone ends what clients and watchers had going on m, which stopped
// (crashed, or removed for good): its proposals' outcomes are unknown, its
// reads abandoned, its watchers moved.
func (s *Sim) memberGone(m *simMember) {
	for _, o := range m.pending {
		s.clients.unknown(o, s.tick())
	}
	for _, o := range m.reads {
		s.clients.abandon(o)
	}
	for _, r := range m.readyReads {
		s.clients.abandon(r.o)
	}
	s.watches.memberDown(s, m)
	m.up, m.st, m.d, m.pipe, m.images, m.applyQ, m.pending, m.reads, m.readyReads = false, nil, nil, nil, nil, nil, nil, nil, nil
}

// powerCut crashes m at a power cut its storage reported mid-Ready, and
// brings it back soon.
func (s *Sim) powerCut(m *simMember) {
	s.crash(m)
	s.restartAt[m] = s.now + 1 + s.rng.Uint64N(5*electionTicks)
}

func (s *Sim) restart(m *simMember) {
	if m.up || !m.startable() {
		return
	}
	delete(s.restartAt, m)
	s.stats.Restarts++
	switch err := s.start(m); {
	case err == nil:
	case errors.Is(err, errJoinRemoved):
		// Removed before it first started: the cluster refuses it.
		s.tracef("%s (%x) cannot join: %v", m.name, m.id, err)
		m.removed = true
	case errors.Is(err, errJoinUnknown):
		s.tracef("%s (%x) cannot join yet: %v", m.name, m.id, err)
		s.restartAt[m] = s.now + 1 + s.rng.Uint64N(2*electionTicks)
	default:
		s.failf("restart: %v", err)
	}
}

// leaseClock is the lessors' time: it follows the ticks.
func (s *Sim) leaseClock() time.Time { return epoch.Add(time.Duration(s.now) * tickDuration) }

// isLeader reports whether m is up and leads.
func (m *simMember) isLeader() bool {
	return m.up && m.d.Raft().BasicStatus().RaftState == raft.StateLeader
}

// leaseDuty is the leader's lease loop, as the server runs it: every
// expired lease is revoked through a proposal only this member's
// leadership in this term can append. Each revoke is recorded as an
// operation of its own (the model sees its keys go).
func (s *Sim) leaseDuty(m *simMember) {
	if !m.isLeader() || !m.serving() {
		return
	}
	term := m.d.Raft().BasicStatus().Term
	for _, id := range m.st.Applier.Lessor().Expired(maxRevokesPerTick, revokeRetry) {
		c := &s.clients
		c.nextID++
		c.nextReq++
		o := &op{id: c.nextID, member: m, reqID: c.nextReq, deadline: s.now + opTimeoutTicks,
			in: input{kind: opRevoke, lease: id}, expiry: true}
		data, err := proto.Marshal(request(o))
		if err != nil {
			s.failf("marshal: %v", err)
			return
		}
		o.call = s.tick()
		if err := m.d.ProposeAsLeader(data, term); err != nil {
			continue
		}
		s.stats.Expiries++
		s.tracef("%s revokes expired lease %d", m.name, id)
		m.pending[o.reqID] = o
		c.live[o.id] = o
	}
	s.handleReady(m)
}

// tick advances the logical clock of client operations.
func (s *Sim) tick() int64 {
	s.clock++
	return s.clock
}

func (s *Sim) up() []*simMember {
	var out []*simMember
	for _, m := range s.members {
		if m.up {
			out = append(out, m)
		}
	}
	return out
}

func (s *Sim) pick(ms []*simMember) *simMember {
	if len(ms) == 0 {
		return nil
	}
	return ms[s.rng.IntN(len(ms))]
}

// serving reports whether m answers clients: up, and caught up with what
// it had committed before it last started (as a cairn process serves only
// once it has replayed its WAL).
func (m *simMember) serving() bool { return m.up && m.applied >= m.recovery }

// Run runs the chaotic phase, then heals everything and checks that the
// cluster converges; it returns the first violation found.
func (s *Sim) Run() (Stats, error) {
	defer s.closeAll()
	for range s.cfg.Steps {
		if s.err != nil {
			break
		}
		s.stats.Steps++
		s.randomStep()
	}
	if s.err == nil {
		s.stabilize()
	}
	if s.err == nil {
		s.finalChecks()
	}
	return s.stats, s.err
}

func (s *Sim) randomStep() {
	if s.mix.reconfig > 0 && s.ms.rng.IntN(1000) < s.mix.reconfig {
		s.reconfigStep()
	}
	r := s.rng.IntN(1000)
	switch {
	case r < s.mix.faults:
		s.fault()
	case r < s.mix.faults+s.mix.ops:
		s.clientStep()
	default:
		switch s.rng.IntN(5) {
		case 0, 1:
			s.tickAll()
		case 2, 3:
			s.net.deliverSome(s)
		case 4:
			for _, m := range s.up() {
				if s.rng.IntN(1000) >= s.mix.slowApply {
					s.applyOne(m)
				}
			}
		}
	}
	s.watches.drain(s)
	s.clients.expire(s)
}

func (s *Sim) tickAll() {
	s.now++
	s.stats.Ticks++
	if s.healAt != 0 && s.now >= s.healAt {
		s.healAt = 0
		s.net.heal(s)
	}
	for _, m := range s.members {
		if at, ok := s.restartAt[m]; ok && s.now >= at {
			delete(s.restartAt, m)
			s.restart(m)
		}
	}
	for _, m := range s.up() {
		m.d.Raft().Tick()
		s.handleReady(m)
	}
	for _, m := range s.up() {
		s.leaseDuty(m)
	}
	for _, m := range s.up() {
		s.promotionDuty(m)
	}
	s.peersRefuseRemoved()
}

func (s *Sim) fault() {
	total := s.mix.crash + s.mix.restart + s.mix.partition + s.mix.heal
	r := s.rng.IntN(total)
	switch {
	case r < s.mix.crash:
		// Half the time the leader: the crash that leaves entries on a
		// minority and makes the survivors elect among themselves.
		// Losing a quorum is a fault too; restarts bring members back.
		m := s.pick(s.up())
		if s.rng.IntN(2) == 0 {
			for _, l := range s.up() {
				if l.isLeader() {
					m = l
				}
			}
		}
		if m != nil {
			s.crash(m)
			s.restartAt[m] = s.now + 5 + s.rng.Uint64N(10*electionTicks)
		}
	case r < s.mix.crash+s.mix.restart:
		var down []*simMember
		for _, m := range s.members {
			if !m.up && m.startable() {
				down = append(down, m)
			}
		}
		if m := s.pick(down); m != nil {
			s.restart(m)
		}
	case r < s.mix.crash+s.mix.restart+s.mix.partition:
		s.stats.Partitions++
		s.net.partition(s)
		s.healAt = s.now + 10 + s.rng.Uint64N(15*electionTicks)
	default:
		s.net.heal(s)
	}
}

// stabilize turns faults off, brings every member back, and runs until
// every member has applied everything the leader committed.
func (s *Sim) stabilize() {
	s.faults = false
	s.net.heal(s)
	s.net.dropRate, s.net.dupRate = 0, 0
	for _, m := range s.members {
		s.restart(m)
	}
	for i := 0; i < progressTicks; i++ {
		if s.err != nil {
			return
		}
		s.tickAll()
		for range 20 {
			s.net.deliverSome(s)
			for _, m := range s.up() {
				for len(m.applyQ) > 0 {
					s.applyOne(m)
				}
			}
		}
		s.watches.drain(s)
		s.clients.expire(s)
		if s.converged() {
			// One write through the healed cluster proves liveness
			// and gives every member the same last revision.
			return
		}
	}
	s.failf("no convergence within %d ticks of healing: %s", progressTicks, s.describe())
}

// converged: a leader exists and every member of its applied membership
// (but those never started) runs and applied its commit index, with no
// client request outstanding and nothing in any log beyond it; no
// removed member runs; and no running member waits for its promotion.
func (s *Sim) converged() bool {
	var lead *simMember
	for _, m := range s.up() {
		if m.isLeader() {
			lead = m
		}
	}
	if lead == nil {
		return false
	}
	commit := lead.d.Raft().BasicStatus().Commit
	if lead.applied != commit {
		return false
	}
	for _, rec := range lead.st.Applier.Members() {
		if m := s.byID[rec.ID]; m != nil && !m.never && !m.up {
			return false
		}
	}
	for _, m := range s.up() {
		if lead.st.Applier.IsRemoved(m.id) {
			return false
		}
		if m.applied != commit || len(m.applyQ) > 0 || len(m.pending) > 0 || len(m.reads) > 0 {
			return false
		}
		if m.d.Raft().Status().LastIndex != commit {
			// An entry in flight: a configuration change in it is
			// in force in raft, not applied yet.
			return false
		}
	}
	return s.pendingPromotion(lead) == nil
}

func (s *Sim) describe() string {
	var b strings.Builder
	for _, m := range s.members {
		switch {
		case m.removed:
			fmt.Fprintf(&b, "%s removed; ", m.name)
			continue
		case m.never:
			fmt.Fprintf(&b, "%s never started; ", m.name)
			continue
		case !m.up:
			fmt.Fprintf(&b, "%s down; ", m.name)
			continue
		}
		st := m.d.Raft().BasicStatus()
		fmt.Fprintf(&b, "%s %v term %d lead %x commit %d applied %d queued %d; ", m.name, st.RaftState, st.Term,
			m.d.Lead(), st.Commit, m.applied, len(m.applyQ))
	}
	fmt.Fprintf(&b, "%d messages in flight", len(s.net.inflight))
	return b.String()
}

func (s *Sim) closeAll() {
	s.watches.closeAll()
	for _, m := range s.members {
		if m.up {
			_ = m.st.Close()
			m.up = false
		}
	}
}

// appliedHook records what m computed for each entry, checks it against
// what other members computed, and answers m's clients.
func (s *Sim) appliedHook(m *simMember) func(e raftpb.Entry, res apply.Result, _ time.Duration) {
	return func(e raftpb.Entry, res apply.Result, _ time.Duration) {
		got := resultDigest(e, res)
		if want, ok := s.results[e.Index]; !ok {
			s.results[e.Index] = got
		} else if want != got {
			s.failf("entry %d: member %s computed %s, another member %s", e.Index, m.name, got, want)
		}
		if e.Type == raftpb.EntryNormal && len(e.Data) == 0 && e.Term == m.d.Term() && m.isLeader() {
			// As the server: the leader's first entry of its term is
			// applied, so its lessor is up to date and may keep time.
			term := e.Term
			m.st.Applier.Lessor().Promote(electionTicks*tickDuration, func() bool {
				return m.isLeader() && m.d.Raft().BasicStatus().Term == term
			})
		}
		if res.ID == 0 {
			return
		}
		if first, ok := s.requests[res.ID]; !ok {
			s.requests[res.ID] = outcome{index: e.Index, res: res, at: s.tick()}
		} else if first.index != e.Index {
			s.failf("request %x applied at entries %d and %d", res.ID, first.index, e.Index)
		}
		if co, ok := s.ms.ops[res.ID]; ok {
			s.confApplied(m, co, res)
			return
		}
		if o, ok := m.pending[res.ID]; ok {
			delete(m.pending, res.ID)
			s.clients.complete(s, o, res)
		}
	}
}

package raftnode

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/wal"
)

// LogStore is where raft's log and hard state are made durable: the WAL
// (*wal.WAL) in production and in the member simulator.
type LogStore interface {
	// Save writes hs and ents (replacing any stored entries from
	// ents[0].Index on), durably before it returns when mustSync.
	Save(hs raftpb.HardState, ents []raftpb.Entry, mustSync bool) error
	// SaveSnapshot records a snapshot taken locally at s.
	SaveSnapshot(s wal.Snapshot) error
	// ResetToSnapshot records a snapshot installed from the leader: the
	// log starts again after it.
	ResetToSnapshot(s wal.Snapshot) error
	// Release lets go of the log before index.
	Release(index uint64) (int, error)
}

// SnapStore keeps snapshot files: *snap.Snapshotter.
type SnapStore interface {
	Save(s raftpb.Snapshot) error
}

// Sender sends messages to peers: the transport, or the simulated network.
// It must not block.
type Sender interface {
	Send(msgs []raftpb.Message)
}

// Applier takes what raft committed, after it is durable. Apply may block
// (a bounded hand-off); an error is fatal.
type Applier interface {
	Apply(ta ToApply) error
}

// ToApply is what the applier must apply, in the order received: the
// snapshot first if not empty, then the entries; ReadStates are answered
// once the applied index reaches them.
type ToApply struct {
	Snapshot   raftpb.Snapshot
	Entries    []raftpb.Entry
	ReadStates []raft.ReadState
}

// Bytes is the size of the entries' data: what holding ta costs.
func (ta ToApply) Bytes() int {
	n := 0
	for _, e := range ta.Entries {
		n += len(e.Data)
	}
	return n
}

// Hooks are told about events, from the driver's caller; they must not
// block and must not call back into the driver.
type Hooks struct {
	// ConfState is called with each configuration raft puts in force,
	// before messages addressed to its members are sent.
	ConfState func(cs raftpb.ConfState)
	// LeaderChanged is called when the known leader changes.
	LeaderChanged func(lead uint64)
	// SnapshotTaken is called after a local snapshot was recorded and the
	// log released before it: old snapshot files may be purged.
	SnapshotTaken func(index uint64)
	// Persisted is called once a Ready's snapshot, hard state and entries
	// are durable and in the in-memory log, before the messages that
	// depend on them are sent (the simulator checks the log there).
	Persisted func()
}

// DriverConfig configures a Driver. Limits left zero take the defaults of
// package raft's Config.
type DriverConfig struct {
	ID             uint64
	ElectionTicks  int
	HeartbeatTicks int
	// Storage holds what was recovered (snapshot, hard state, entries).
	Storage *raft.MemoryStorage
	// Applied is the index the state machine has applied (its
	// consistent index, or the snapshot's).
	Applied uint64
	Log     LogStore
	Snaps   SnapStore
	Sender  Sender
	Applier Applier
	Hooks   Hooks
	Logger  *zap.Logger
	// Rand seeds raft's randomized election timeouts: a seeded source in
	// the simulator, a random one in production.
	Rand *rand.Rand
	// CampaignOnStart starts an election at once instead of after an
	// election timeout (for a member that is the only voter).
	CampaignOnStart bool
	// DisablePreVote turns raft's pre-vote off (etcd's --pre-vote=false):
	// a member that rejoins after a partition then disrupts the leader
	// with a higher term.
	DisablePreVote bool
	// Limits are the core's size bounds and the entries kept for slow
	// followers; zero fields are DefaultLimits'. (MaxApplyBytes is
	// Node's: the Driver hands over without waiting.)
	Limits Limits
	// TuneRaft, if set, changes the core's configuration before it is
	// built. Production leaves it nil (check-quorum on); the
	// raft simulator varies them and uses tiny limits.
	TuneRaft func(c *raft.Config)
}

// Driver is the member's Ready handling: it owns the raft core and moves
// what raft produces to storage, the network and the applier, in the order
// raft.Ready requires (see the package doc). It is deterministic: it has
// no clock (Tick is called from outside), starts no goroutine, and reaches
// storage, the network and the applier only through the interfaces in its
// config. Production runs it in Node's goroutine; the member simulator
// calls it from its scheduler. It is not safe for concurrent use.
type Driver struct {
	cfg    DriverConfig
	logger *zap.Logger
	// raftLogger logs leader changes in etcd raft's words and name.
	raftLogger *zap.SugaredLogger
	raft       *raft.Node

	// lead and term are as of the last Ready handled; commit is the
	// commit index last written to the log store.
	lead, term, commit uint64
}

// NewDriver returns a driver of a raft core restored from cfg.Storage.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Rand == nil {
		return nil, errors.New("raftnode: DriverConfig.Rand is required")
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	rc := raft.Config{
		ID:                        cfg.ID,
		ElectionTicks:             cfg.ElectionTicks,
		HeartbeatTicks:            cfg.HeartbeatTicks,
		Storage:                   cfg.Storage,
		Applied:                   cfg.Applied,
		MaxSizePerMsg:             cfg.Limits.MaxSizePerMsg,
		MaxCommittedSizePerReady:  cfg.Limits.MaxCommittedSizePerReady,
		MaxUncommittedEntriesSize: cfg.Limits.MaxUncommittedBytes,
		MaxInflightMsgs:           cfg.Limits.MaxInflightMsgs,
		MaxPendingReads:           1 << 16,
		CheckQuorum:               true,
		PreVote:                   !cfg.DisablePreVote,
		Rand:                      cfg.Rand,
		// etcd's raft logs under the name "raft"; tools filter on it.
		Logger: cfg.Logger.Named("raft").Sugar(),
	}
	if cfg.TuneRaft != nil {
		cfg.TuneRaft(&rc)
	}
	rn, err := raft.NewNode(rc)
	if err != nil {
		return nil, err
	}
	hs := cfg.Storage.HardState()
	d := &Driver{cfg: cfg, logger: cfg.Logger, raftLogger: cfg.Logger.Named("raft").Sugar(), raft: rn, term: hs.Term, commit: hs.Commit}
	if cfg.CampaignOnStart {
		rn.Campaign()
	}
	return d, nil
}

// Raft is the core, for calls that have no effect outside it (Tick, Step,
// proposals, reports, status). Its output must go through HandleReady.
func (d *Driver) Raft() *raft.Node { return d.raft }

// Lead is the leader as of the last Ready handled (0 for none).
func (d *Driver) Lead() uint64 { return d.lead }

// Term is the term as of the last Ready handled.
func (d *Driver) Term() uint64 { return d.term }

// Commit is the commit index last written to the log store.
func (d *Driver) Commit() uint64 { return d.commit }

// Step hands the core a message from a peer.
func (d *Driver) Step(m raftpb.Message) {
	if err := d.raft.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		d.logger.Debug("raft refused a message", zap.Stringer("type", m.Type), zap.Error(err))
	}
}

// HandleReady handles every Ready the core has, each in order, and
// advances past it. An error is fatal: the member must stop, as it cannot
// trust its storage.
func (d *Driver) HandleReady() error {
	for d.raft.HasReady() {
		if err := d.handleReady(d.raft.Ready()); err != nil {
			return err
		}
		d.raft.Advance()
	}
	return nil
}

func (d *Driver) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil && rd.SoftState.Lead != d.lead {
		// etcd raft's node.go lines, which tools grep for.
		id, term, old, lead := d.cfg.ID, d.raft.BasicStatus().Term, d.lead, rd.SoftState.Lead
		switch {
		case old == raft.None:
			d.raftLogger.Infof("raft.node: %x elected leader %x at term %d", id, lead, term)
		case lead == raft.None:
			d.raftLogger.Infof("raft.node: %x lost leader %x at term %d", id, old, term)
		default:
			d.raftLogger.Infof("raft.node: %x changed leader from %x to %x at term %d", id, old, lead, term)
		}
		d.lead = lead
		if d.cfg.Hooks.LeaderChanged != nil {
			d.cfg.Hooks.LeaderChanged(d.lead)
		}
	}
	if rd.ConfState != nil && d.cfg.Hooks.ConfState != nil {
		d.cfg.Hooks.ConfState(*rd.ConfState)
	}
	var later []raftpb.Message
	if d.raft.BasicStatus().RaftState == raft.StateLeader {
		// §10.2.1: appends and heartbeats may go out while the leader
		// writes its own log; anything else waits for the write.
		early := rd.Messages[:0:0]
		for _, m := range rd.Messages {
			if m.Type == raftpb.MsgApp || m.Type == raftpb.MsgHeartbeat {
				early = append(early, m)
			} else {
				later = append(later, m)
			}
		}
		d.cfg.Sender.Send(early)
	} else {
		later = rd.Messages
	}

	// PERSIST BEFORE SENDING later: a vote or an append acknowledgement
	// is a promise about what is on disk.
	if !rd.Snapshot.IsEmpty() {
		// The image arrived before the message (see transport); record
		// the snapshot, then reset the log to it.
		if err := d.cfg.Snaps.Save(rd.Snapshot); err != nil {
			return fmt.Errorf("raftnode: saving snapshot: %w", err)
		}
		md := rd.Snapshot.Metadata
		if err := d.cfg.Log.ResetToSnapshot(wal.Snapshot{Index: md.Index, Term: md.Term}); err != nil {
			return fmt.Errorf("raftnode: recording installed snapshot in the WAL: %w", err)
		}
	}
	if !rd.HardState.IsEmpty() || len(rd.Entries) > 0 {
		// The WAL times its own writes and fsyncs (wal.Metrics).
		if err := d.cfg.Log.Save(rd.HardState, rd.Entries, rd.MustSync); err != nil {
			return fmt.Errorf("raftnode: writing the WAL: %w", err)
		}
	}
	if !rd.HardState.IsEmpty() {
		d.term = rd.HardState.Term
		d.commit = rd.HardState.Commit
		d.cfg.Storage.SetHardState(rd.HardState)
	}
	if !rd.Snapshot.IsEmpty() {
		if err := d.cfg.Storage.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return fmt.Errorf("raftnode: applying snapshot to raft storage: %w", err)
		}
	}
	if err := d.cfg.Storage.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftnode: appending to raft storage: %w", err)
	}
	if d.cfg.Hooks.Persisted != nil {
		d.cfg.Hooks.Persisted()
	}
	d.cfg.Sender.Send(later)

	// Only committed, persisted entries reach the applier.
	if !rd.Snapshot.IsEmpty() || len(rd.CommittedEntries) > 0 || len(rd.ReadStates) > 0 {
		ta := ToApply{Snapshot: rd.Snapshot, Entries: rd.CommittedEntries, ReadStates: rd.ReadStates}
		if err := d.cfg.Applier.Apply(ta); err != nil {
			return err
		}
	}
	return nil
}

// TakeSnapshot records a snapshot at index with configuration cs, releases
// the log before it and compacts the in-memory log. THE STATE MACHINE MUST
// BE DURABLE UP TO index FIRST. A snapshot at or below the current one
// does nothing and returns raft.ErrSnapOutOfDate.
func (d *Driver) TakeSnapshot(index uint64, cs raftpb.ConfState) error {
	s, err := d.cfg.Storage.CreateSnapshot(index, cs, nil)
	if err != nil {
		return err
	}
	if err := d.cfg.Snaps.Save(s); err != nil {
		return fmt.Errorf("raftnode: saving snapshot: %w", err)
	}
	md := s.Metadata
	if err := d.cfg.Log.SaveSnapshot(wal.Snapshot{Index: md.Index, Term: md.Term}); err != nil {
		if errors.Is(err, wal.ErrSnapshotSuperseded) {
			return nil
		}
		return fmt.Errorf("raftnode: recording snapshot in the WAL: %w", err)
	}
	if _, err := d.cfg.Log.Release(md.Index); err != nil {
		return fmt.Errorf("raftnode: releasing the WAL: %w", err)
	}
	if compactTo := d.catchUpStart(md.Index); compactTo > 0 {
		if err := d.cfg.Storage.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("raftnode: compacting raft storage: %w", err)
		}
	}
	if d.cfg.Hooks.SnapshotTaken != nil {
		d.cfg.Hooks.SnapshotTaken(md.Index)
	}
	// etcd's words, which etcd's tests wait for ("saved snapshot").
	d.logger.Info("saved snapshot to disk", zap.Uint64("snapshot-index", md.Index), zap.Uint64("snapshot-term", md.Term))
	return nil
}

// catchUpStart is the index up to which the in-memory log can go after a
// snapshot at index (0: none): the entries kept for slow followers are
// the SnapshotCatchUpEntries before it, fewer if their data passes
// SnapshotCatchUpBytes.
func (d *Driver) catchUpStart(index uint64) uint64 {
	var compactTo uint64
	if index > d.cfg.Limits.SnapshotCatchUpEntries {
		compactTo = index - d.cfg.Limits.SnapshotCatchUpEntries
	}
	first, err := d.cfg.Storage.FirstIndex()
	if err != nil || index < first {
		return compactTo
	}
	ents, err := d.cfg.Storage.Entries(max(first, compactTo+1), index+1, math.MaxUint64)
	if err != nil {
		return compactTo
	}
	var kept uint64
	for i := len(ents) - 1; i >= 0; i-- {
		if kept += uint64(len(ents[i].Data)); kept > d.cfg.Limits.SnapshotCatchUpBytes {
			return max(compactTo, ents[i].Index)
		}
	}
	return compactTo
}

// PurgeSnapshots keeps the newest keep snapshots the WAL accepts as a
// start (and anything newer) and removes older snapshot files and images.
// It removes files: production calls it off the raft loop.
func PurgeSnapshots(w *wal.WAL, snaps *snap.Snapshotter, keep int) error {
	valid, err := w.ValidSnapshots()
	if err != nil {
		return fmt.Errorf("listing the WAL's snapshots: %w", err)
	}
	_, err = snaps.Purge(keep, func(m raftpb.SnapshotMetadata) bool {
		return slices.Contains(valid, wal.Snapshot{Index: m.Index, Term: m.Term})
	})
	return err
}

// ProposeAsLeader proposes data only if this member leads in term, so the
// entry is appended in that term; else it fails with ErrNotLeader. See
// Node.ProposeTagged.
func (d *Driver) ProposeAsLeader(data []byte, term uint64) error {
	if st := d.raft.BasicStatus(); st.RaftState != raft.StateLeader || st.Term != term {
		return ErrNotLeader
	}
	return d.raft.Propose(data)
}

// ProposeConfChangeAsLeader is ProposeAsLeader for a membership change.
func (d *Driver) ProposeConfChangeAsLeader(cc raftpb.ConfChange, term uint64) error {
	if st := d.raft.BasicStatus(); st.RaftState != raft.StateLeader || st.Term != term {
		return ErrNotLeader
	}
	return d.raft.ProposeConfChange(cc)
}

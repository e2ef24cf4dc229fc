package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

// keepSnapshots is how many snapshot files Purge keeps.
const keepSnapshots = 5

// ErrStopped is returned by calls after the loop stopped.
var ErrStopped = errors.New("raftnode: stopped")

// ErrNotLeader is a leader-only proposal made on a member that is not the
// leader (see ProposeAsLeader).
var ErrNotLeader = errors.New("raftnode: not the leader")

// Transport is what the loop sends through.
type Transport interface {
	Send(msgs []raftpb.Message)
}

// Hooks are told about events, from the loop goroutine; they must not block.
type Hooks struct {
	// ConfState is called with each configuration raft puts in force,
	// before messages addressed to its members are sent.
	ConfState func(cs raftpb.ConfState)
	// LeaderChanged is called when the known leader changes.
	LeaderChanged func(lead uint64)
	// WALSync is called with the duration of each synced WAL write.
	WALSync func(d time.Duration)
}

// Config configures a Node.
type Config struct {
	ID             uint64
	ElectionTicks  int
	HeartbeatTicks int
	TickInterval   time.Duration
	// Storage holds what was recovered (snapshot, hard state, entries).
	Storage *raft.MemoryStorage
	// Applied is the index the state machine has applied (its
	// consistent index, or the snapshot's).
	Applied uint64
	WAL     *wal.WAL
	Snap    *snap.Snapshotter
	// FS and WALDir locate the WAL, to tell which snapshots it accepts
	// when purging old ones.
	FS        vfs.FS
	WALDir    string
	Transport Transport
	Hooks     Hooks
	Logger    *zap.Logger
	// SnapshotCatchUpEntries is how many entries before a snapshot are
	// kept in memory for slow followers. Default 5000.
	SnapshotCatchUpEntries uint64
	// CampaignOnStart starts an election at once instead of after an
	// election timeout (for a member that is the only voter).
	CampaignOnStart bool
	// MaxSizePerMsg, MaxInflightMsgs, MaxUncommittedBytes: see raft.Config.
	MaxSizePerMsg       uint64
	MaxInflightMsgs     int
	MaxUncommittedBytes uint64
}

// ToApply is what the applier must apply, in the order received: the
// snapshot first if not empty, then the entries.
type ToApply struct {
	Snapshot raftpb.Snapshot
	Entries  []raftpb.Entry
}

type proposal struct {
	data []byte
	cc   *raftpb.ConfChange
	// leaderOnly proposals are dropped (ErrNotLeader) unless this member
	// leads, in term: never forwarded to another leader, nor carried out
	// in a later term.
	leaderOnly bool
	term       uint64
	errc       chan error
}

type readRequest struct {
	ctx  []byte
	errc chan error
}

type report struct {
	id       uint64
	snapshot bool
	ok       bool
}

type snapRequest struct {
	index uint64
	cs    raftpb.ConfState
	errc  chan error
}

// Node runs the raft loop. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger *zap.Logger
	// raft is owned by the loop goroutine.
	raft *raft.Node

	recvc    chan raftpb.Message
	propc    chan proposal
	readc    chan readRequest
	reportc  chan report
	snapc    chan snapRequest
	statusc  chan chan raft.Status
	transfer chan uint64

	applyc     chan ToApply
	readStates chan raft.ReadState

	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	// purging is set while a purge goroutine runs; wg waits for it.
	purging atomic.Bool
	wg      sync.WaitGroup

	lead atomic.Uint64
	term atomic.Uint64
	// commit is the commit index last written to the WAL (a commit
	// index that moved alone is written without an fsync).
	commit atomic.Uint64
	err    atomic.Pointer[error]
}

// New returns a node whose loop is not running yet (see Start).
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.SnapshotCatchUpEntries == 0 {
		cfg.SnapshotCatchUpEntries = 5000
	}
	if cfg.MaxSizePerMsg == 0 {
		cfg.MaxSizePerMsg = 1 << 20
	}
	if cfg.MaxInflightMsgs == 0 {
		cfg.MaxInflightMsgs = 512
	}
	if cfg.MaxUncommittedBytes == 0 {
		cfg.MaxUncommittedBytes = 1 << 30
	}
	rn, err := raft.NewNode(raft.Config{
		ID:                        cfg.ID,
		ElectionTicks:             cfg.ElectionTicks,
		HeartbeatTicks:            cfg.HeartbeatTicks,
		Storage:                   cfg.Storage,
		Applied:                   cfg.Applied,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxPendingReads:           1 << 16,
		CheckQuorum:               true,
		PreVote:                   true,
		Rand:                      rand.New(rand.NewPCG(rand.Uint64(), cfg.ID)),
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, logger: cfg.Logger, raft: rn,
		// Buffers absorb bursts while the loop is in an fsync; every
		// send to them blocks or fails cleanly, so they bound memory.
		recvc:      make(chan raftpb.Message, 4096),
		propc:      make(chan proposal, 1024),
		readc:      make(chan readRequest, 64),
		reportc:    make(chan report, 1024),
		snapc:      make(chan snapRequest),
		statusc:    make(chan chan raft.Status),
		transfer:   make(chan uint64, 1),
		applyc:     make(chan ToApply, 64),
		readStates: make(chan raft.ReadState, 1024),
		stopc:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	hs := cfg.Storage.HardState()
	n.term.Store(hs.Term)
	n.commit.Store(hs.Commit)
	return n, nil
}

// Start starts the loop; Stop stops it.
func (n *Node) Start() { go n.run() }

// Apply delivers what to apply, in order. It is closed when the loop stops.
func (n *Node) Apply() <-chan ToApply { return n.applyc }

// ReadStates delivers the answers to ReadIndex requests.
func (n *Node) ReadStates() <-chan raft.ReadState { return n.readStates }

// Done is closed when the loop has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is the fatal error that stopped the loop, or nil.
func (n *Node) Err() error {
	if p := n.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Lead is the leader last known (0 for none).
func (n *Node) Lead() uint64 { return n.lead.Load() }

// Term is the current term.
func (n *Node) Term() uint64 { return n.term.Load() }

// CommitIndex is the commit index last persisted.
func (n *Node) CommitIndex() uint64 { return n.commit.Load() }

// ID is the member's ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Stop stops the loop and waits for it.
func (n *Node) Stop() {
	n.once.Do(func() { close(n.stopc) })
	<-n.done
	n.wg.Wait()
}

// Propose proposes data; nil means raft accepted it (it may still be lost
// to a leader change: wait for it to be applied).
func (n *Node) Propose(ctx context.Context, data []byte) error {
	return n.propose(ctx, proposal{data: data, errc: make(chan error, 1)})
}

// ProposeAsLeader proposes data only if this member is the leader of term
// when the loop takes it, so the entry is appended in that term; else it
// fails with ErrNotLeader. Decisions only a leader may take (lease expiry)
// use it, with the term they were taken in: a member that stepped down
// never has them forwarded, nor carried out after it leads again.
func (n *Node) ProposeAsLeader(ctx context.Context, data []byte, term uint64) error {
	return n.propose(ctx, proposal{data: data, leaderOnly: true, term: term, errc: make(chan error, 1)})
}

// ProposeConfChange proposes a membership change.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChange) error {
	return n.propose(ctx, proposal{cc: &cc, errc: make(chan error, 1)})
}

func (n *Node) propose(ctx context.Context, p proposal) error {
	return call(ctx, n, n.propc, p, p.errc)
}

// ReadIndex asks for a read point; the answer arrives on ReadStates with
// the same ctx.
func (n *Node) ReadIndex(ctx context.Context, rctx []byte) error {
	r := readRequest{ctx: rctx, errc: make(chan error, 1)}
	return call(ctx, n, n.readc, r, r.errc)
}

// call hands req to the loop on c and waits for its answer on errc (which
// the loop never blocks on: it is buffered).
func call[T any](ctx context.Context, n *Node, c chan<- T, req T, errc <-chan error) error {
	select {
	case c <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

// Process hands the loop a message from a peer.
func (n *Node) Process(ctx context.Context, m raftpb.Message) error {
	select {
	case n.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

// ReportUnreachable tells raft a message to id was lost. It never blocks
// (a report that does not fit is dropped: they are hints).
func (n *Node) ReportUnreachable(id uint64) {
	select {
	case n.reportc <- report{id: id}:
	default:
	}
}

// ReportSnapshot tells raft how sending a snapshot to id ended. Unlike
// ReportUnreachable it is never dropped: raft sends id nothing until it
// hears. It never blocks either (the transport may call it from the loop
// itself, inside Send): a report that does not fit now is delivered by a
// goroutine that ends when it is delivered or the loop stops.
func (n *Node) ReportSnapshot(id uint64, ok bool) {
	r := report{id: id, snapshot: true, ok: ok}
	select {
	case n.reportc <- r:
		return
	default:
	}
	go func() {
		select {
		case n.reportc <- r:
		case <-n.done:
		}
	}()
}

// TransferLeadership asks raft to hand leadership to id.
func (n *Node) TransferLeadership(id uint64) {
	select {
	case n.transfer <- id:
	default:
	}
}

// Status returns raft's status.
func (n *Node) Status(ctx context.Context) (raft.Status, error) {
	c := make(chan raft.Status, 1)
	select {
	case n.statusc <- c:
	case <-ctx.Done():
		return raft.Status{}, ctx.Err()
	case <-n.done:
		return raft.Status{}, ErrStopped
	}
	select {
	case s := <-c:
		return s, nil
	case <-n.done:
		return raft.Status{}, ErrStopped
	}
}

// TakeSnapshot records a snapshot at index with configuration cs, releases
// the WAL before it and compacts the in-memory log. THE STATE MACHINE MUST
// BE DURABLE UP TO index FIRST. A snapshot at or below the current one
// does nothing and returns raft.ErrSnapOutOfDate.
func (n *Node) TakeSnapshot(ctx context.Context, index uint64, cs raftpb.ConfState) error {
	r := snapRequest{index: index, cs: cs, errc: make(chan error, 1)}
	return call(ctx, n, n.snapc, r, r.errc)
}

func (n *Node) fail(err error) {
	n.logger.Error("raft loop stopped by a storage error; the member cannot continue", zap.Error(err))
	n.err.Store(&err)
}

// run is the loop. It owns n.raft.
func (n *Node) run() {
	defer close(n.done)
	defer close(n.applyc)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	if n.cfg.CampaignOnStart {
		n.raft.Campaign()
	}
	for {
		select {
		case <-n.stopc:
			return
		case <-ticker.C:
			n.raft.Tick()
		case m := <-n.recvc:
			n.step(m)
		case p := <-n.propc:
			n.handleProposal(p)
		case r := <-n.readc:
			n.handleRead(r)
		case r := <-n.reportc:
			n.handleReport(r)
		case id := <-n.transfer:
			n.raft.TransferLeadership(id)
		case c := <-n.statusc:
			c <- n.raft.Status()
		case r := <-n.snapc:
			if err := n.handleSnapshot(r); err != nil {
				n.fail(err)
				return
			}
		}
		// Take what else is waiting, so that one Ready (one fsync)
		// covers a burst of proposals and messages.
		n.drain()
		for n.raft.HasReady() {
			if err := n.handleReady(n.raft.Ready()); err != nil {
				n.fail(err)
				return
			}
			n.raft.Advance()
		}
	}
}

func (n *Node) drain() {
	for range 1024 {
		select {
		case m := <-n.recvc:
			n.step(m)
		case p := <-n.propc:
			n.handleProposal(p)
		case r := <-n.readc:
			n.handleRead(r)
		case r := <-n.reportc:
			n.handleReport(r)
		default:
			return
		}
	}
}

func (n *Node) step(m raftpb.Message) {
	if err := n.raft.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		n.logger.Debug("raft refused a message", zap.Stringer("type", m.Type), zap.Error(err))
	}
}

func (n *Node) handleProposal(p proposal) {
	if p.cc != nil {
		p.errc <- n.raft.ProposeConfChange(*p.cc)
		return
	}
	if st := n.raft.BasicStatus(); p.leaderOnly && (st.RaftState != raft.StateLeader || st.Term != p.term) {
		p.errc <- ErrNotLeader
		return
	}
	p.errc <- n.raft.Propose(p.data)
}

func (n *Node) handleRead(r readRequest) { r.errc <- n.raft.ReadIndex(r.ctx) }

// handleSnapshot takes the snapshot r asks for and answers it; the error
// it returns (a snapshot that is merely out of date is none) is fatal.
func (n *Node) handleSnapshot(r snapRequest) error {
	err := n.takeSnapshot(r.index, r.cs)
	r.errc <- err
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	return err
}

func (n *Node) handleReport(r report) {
	if r.snapshot {
		n.raft.ReportSnapshot(r.id, r.ok)
		return
	}
	n.raft.ReportUnreachable(r.id)
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		if old := n.lead.Swap(rd.SoftState.Lead); old != rd.SoftState.Lead {
			if rd.SoftState.Lead != 0 {
				n.logger.Info("leader is known", zap.String("leader", fmt.Sprintf("%x", rd.SoftState.Lead)),
					zap.Uint64("term", n.raft.BasicStatus().Term))
			} else {
				n.logger.Info("no leader")
			}
			if n.cfg.Hooks.LeaderChanged != nil {
				n.cfg.Hooks.LeaderChanged(rd.SoftState.Lead)
			}
		}
	}
	if rd.ConfState != nil && n.cfg.Hooks.ConfState != nil {
		n.cfg.Hooks.ConfState(*rd.ConfState)
	}
	isLeader := n.raft.BasicStatus().RaftState == raft.StateLeader
	var later []raftpb.Message
	if isLeader {
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
		n.cfg.Transport.Send(early)
	} else {
		later = rd.Messages
	}

	if !rd.Snapshot.IsEmpty() {
		// The image arrived before the message (see transport); record
		// the snapshot, then reset the WAL to it.
		if err := n.cfg.Snap.Save(rd.Snapshot); err != nil {
			return fmt.Errorf("raftnode: saving snapshot: %w", err)
		}
		md := rd.Snapshot.Metadata
		if err := n.cfg.WAL.ResetToSnapshot(wal.Snapshot{Index: md.Index, Term: md.Term}); err != nil {
			return fmt.Errorf("raftnode: recording installed snapshot in the WAL: %w", err)
		}
	}
	if !rd.HardState.IsEmpty() || len(rd.Entries) > 0 {
		start := time.Now()
		if err := n.cfg.WAL.Save(rd.HardState, rd.Entries, rd.MustSync); err != nil {
			return fmt.Errorf("raftnode: writing the WAL: %w", err)
		}
		if rd.MustSync && n.cfg.Hooks.WALSync != nil {
			n.cfg.Hooks.WALSync(time.Since(start))
		}
	}
	if !rd.HardState.IsEmpty() {
		n.term.Store(rd.HardState.Term)
		n.commit.Store(rd.HardState.Commit)
		n.cfg.Storage.SetHardState(rd.HardState)
	}
	if !rd.Snapshot.IsEmpty() {
		if err := n.cfg.Storage.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return fmt.Errorf("raftnode: applying snapshot to raft storage: %w", err)
		}
	}
	if err := n.cfg.Storage.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftnode: appending to raft storage: %w", err)
	}
	n.cfg.Transport.Send(later)

	if !rd.Snapshot.IsEmpty() || len(rd.CommittedEntries) > 0 {
		if err := n.sendApply(ToApply{Snapshot: rd.Snapshot, Entries: rd.CommittedEntries}); err != nil {
			return err
		}
	}
	for _, rs := range rd.ReadStates {
		select {
		case n.readStates <- rs:
		case <-n.stopc:
			return nil
		}
	}
	return nil
}

// sendApply hands ta to the applier. While the applier is behind, it
// serves snapshot requests: the applier may be waiting on one (TakeSnapshot)
// and would otherwise never drain applyc.
func (n *Node) sendApply(ta ToApply) error {
	for {
		select {
		case n.applyc <- ta:
			return nil
		case r := <-n.snapc:
			if err := n.handleSnapshot(r); err != nil {
				return err
			}
		case <-n.stopc:
			return nil
		}
	}
}

// purgeInBackground removes old snapshot files, off the loop: telling
// which snapshots the WAL accepts reads its live segments, too slow to do
// between heartbeats. At most one purge runs; Stop waits for it.
func (n *Node) purgeInBackground() {
	if !n.purging.CompareAndSwap(false, true) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.purging.Store(false)
		valid, err := wal.ValidSnapshots(n.cfg.FS, n.cfg.WALDir)
		if err != nil {
			// A segment released meanwhile, say: the next purge retries.
			n.logger.Warn("listing the WAL's snapshots", zap.Error(err))
			return
		}
		if _, err := n.cfg.Snap.Purge(keepSnapshots, func(m raftpb.SnapshotMetadata) bool {
			return slices.Contains(valid, wal.Snapshot{Index: m.Index, Term: m.Term})
		}); err != nil {
			n.logger.Warn("purging old snapshots", zap.Error(err))
		}
	}()
}

func (n *Node) takeSnapshot(index uint64, cs raftpb.ConfState) error {
	s, err := n.cfg.Storage.CreateSnapshot(index, cs, nil)
	if err != nil {
		return err
	}
	if err := n.cfg.Snap.Save(s); err != nil {
		return fmt.Errorf("raftnode: saving snapshot: %w", err)
	}
	md := s.Metadata
	if err := n.cfg.WAL.SaveSnapshot(wal.Snapshot{Index: md.Index, Term: md.Term}); err != nil {
		if errors.Is(err, wal.ErrSnapshotSuperseded) {
			return nil
		}
		return fmt.Errorf("raftnode: recording snapshot in the WAL: %w", err)
	}
	if _, err := n.cfg.WAL.Release(md.Index); err != nil {
		return fmt.Errorf("raftnode: releasing the WAL: %w", err)
	}
	if md.Index > n.cfg.SnapshotCatchUpEntries {
		compactTo := md.Index - n.cfg.SnapshotCatchUpEntries
		if err := n.cfg.Storage.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("raftnode: compacting raft storage: %w", err)
		}
	}
	n.purgeInBackground()
	n.logger.Info("took snapshot", zap.Uint64("index", md.Index), zap.Uint64("term", md.Term))
	return nil
}

package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/invariants"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/wal"
)

// ErrStopped is returned by calls after the loop stopped.
var ErrStopped = errors.New("raftnode: stopped")

// ErrNotLeader is a leader-only proposal made on a member that is not the
// leader (see ProposeTagged with a term).
var ErrNotLeader = errors.New("raftnode: not the leader")

// Transport is what the loop sends through.
type Transport = Sender

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
	// MaxSnapshots is how many snapshot files (and images) are kept after
	// each snapshot taken; 0 keeps them all (etcd's --max-snapshots).
	MaxSnapshots int
	Transport    Transport
	Hooks        Hooks
	Logger       *zap.Logger
	// CampaignOnStart starts an election at once instead of after an
	// election timeout (for a member that is the only voter).
	CampaignOnStart bool
	// DisablePreVote turns raft's pre-vote off (see DriverConfig).
	DisablePreVote bool
	// Refused, if set, is called from the loop with the tag of a
	// proposal made with ProposeTagged that raft refused, and why (a
	// dropped proposal, ErrNotLeader). It must not block.
	Refused func(tag uint64, err error)
	// Limits are the loop's size bounds; zero fields are DefaultLimits'.
	// Limits.MaxApplyBytes bounds the entry bytes handed to the applier
	// and not yet applied (see ApplyDone): past it, the loop waits for
	// the applier before it handles more.
	Limits Limits
}

type proposal struct {
	data []byte
	cc   *raftpb.ConfChange
	// leaderOnly proposals are dropped (ErrNotLeader) unless this member
	// leads, in term: never forwarded to another leader, nor carried out
	// in a later term.
	leaderOnly bool
	term       uint64
	// errc gets raft's answer; nil for ProposeTagged's proposals, whose
	// refusals go to Config.Refused with tag.
	errc chan error
	tag  uint64
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

// Node runs a Driver in a goroutine of its own, ticked by a ticker. Its
// methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger *zap.Logger
	// d (and the raft core in it) is owned by the loop goroutine.
	d *Driver

	recvc    chan raftpb.Message
	propc    chan proposal
	readc    chan readRequest
	reportc  chan report
	snapc    chan snapRequest
	statusc  chan chan raft.Status
	transfer chan uint64
	// advance carries ticks to fast-forward (AdvanceTicks).
	advance chan int

	applyc     chan ToApply
	readStates chan raft.ReadState
	// applyBytes is the entry bytes handed to the applier and not yet
	// reported applied (ApplyDone); applyFreed is signalled (never
	// blocking) when it falls. Invariant: applyBytes >= 0.
	applyBytes atomic.Int64
	applyFreed chan struct{}

	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	// purging is set while a purge goroutine runs; wg waits for it and
	// for report deliveries.
	purging atomic.Bool
	// purgeAgain asks the purge goroutine for one more round.
	purgeAgain atomic.Bool
	wg         sync.WaitGroup

	lead atomic.Uint64
	term atomic.Uint64
	// commit is the commit index last written to the WAL (a commit
	// index that moved alone is written without an fsync).
	commit atomic.Uint64
	// takenTag is the highest tag of a ProposeTagged proposal the loop
	// has taken (see Taken).
	takenTag atomic.Uint64
	err      atomic.Pointer[error]
}

// New returns a node whose loop is not running yet (see Start).
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	n := &Node{
		cfg: cfg, logger: cfg.Logger,
		// Buffers absorb bursts while the loop is in an fsync; every
		// send to them blocks or fails cleanly, so they bound memory.
		recvc:      make(chan raftpb.Message, 4096),
		propc:      make(chan proposal, 1024),
		readc:      make(chan readRequest, 64),
		reportc:    make(chan report, 1024),
		snapc:      make(chan snapRequest),
		statusc:    make(chan chan raft.Status),
		transfer:   make(chan uint64, 1),
		advance:    make(chan int),
		applyc:     make(chan ToApply, 64),
		readStates: make(chan raft.ReadState, 1024),
		applyFreed: make(chan struct{}, 1),
		stopc:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	hooks := cfg.Hooks
	if cfg.MaxSnapshots > 0 {
		hooks.SnapshotTaken = func(uint64) { n.purgeInBackground() }
	}
	d, err := NewDriver(DriverConfig{
		ID:              cfg.ID,
		ElectionTicks:   cfg.ElectionTicks,
		HeartbeatTicks:  cfg.HeartbeatTicks,
		Storage:         cfg.Storage,
		Applied:         cfg.Applied,
		Log:             cfg.WAL,
		Snaps:           cfg.Snap,
		Sender:          cfg.Transport,
		Applier:         (*nodeApplier)(n),
		Hooks:           hooks,
		Logger:          cfg.Logger,
		Rand:            rand.New(rand.NewPCG(rand.Uint64(), cfg.ID)),
		CampaignOnStart: cfg.CampaignOnStart,
		DisablePreVote:  cfg.DisablePreVote,
		Limits:          cfg.Limits,
	})
	if err != nil {
		return nil, err
	}
	n.d = d
	n.term.Store(d.Term())
	n.commit.Store(d.Commit())
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

// Taken reports whether the loop has taken a tagged proposal with tag or
// a later one: with tags that grow (the server's request IDs), whether a
// proposal still waits in the loop's queue (for a timeout's log line:
// a stalled loop or a slow commit). Proposals handed over at the same
// time may be taken in another order than their tags, so it may say yes
// for one of them a moment early.
func (n *Node) Taken(tag uint64) bool { return n.takenTag.Load() >= tag }

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

// ProposeConfChange proposes a membership change.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChange) error {
	return n.propose(ctx, proposal{cc: &cc, errc: make(chan error, 1)})
}

// ProposeConfChangeAsLeader proposes a membership change only if this
// member is the leader of term when the loop takes it (see
// ProposeTagged): the server validates a change against the leader's
// applied membership, so the change must not be carried out elsewhere.
func (n *Node) ProposeConfChangeAsLeader(ctx context.Context, cc raftpb.ConfChange, term uint64) error {
	return n.propose(ctx, proposal{cc: &cc, leaderOnly: true, term: term, errc: make(chan error, 1)})
}

// ProposeTagged hands data to the loop without waiting for raft's
// answer: a refusal is reported, with tag, to Config.Refused instead, and
// acceptance not at all (the proposer waits for the entry to be applied
// anyway). It fails only if the proposal was not handed over: ctx ended,
// expired delivered (nil: never; a pooled timer's channel, cheaper than a
// context with a deadline), or the loop stopped.
//
// With term not 0 it proposes data only if this member is the leader of
// term when the loop takes it, so the entry is appended in that term;
// else it is refused with ErrNotLeader. Decisions only a leader may take
// (lease expiry) give the term they were taken in: a member that stepped
// down never has them forwarded, nor carried out after it leads again.
//
// The server's request path used to wait for raft's answer: each
// request's goroutine parked once more, for the answer, before it parked
// again for its entry to be applied.
func (n *Node) ProposeTagged(ctx context.Context, expired <-chan time.Time, data []byte, term, tag uint64) error {
	if n.cfg.Refused == nil {
		return errors.New("raftnode: ProposeTagged needs Config.Refused")
	}
	select {
	case <-n.done:
		return ErrStopped // nothing would take it
	default:
	}
	p := proposal{data: data, leaderOnly: term != 0, term: term, tag: tag}
	select {
	case n.propc <- p:
		return nil
	default: // the loop is behind: wait for room
	}
	select {
	case n.propc <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return context.DeadlineExceeded
	case <-n.done:
		return ErrStopped
	}
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
	case n.recvc <- m: // room: no need to lock the other channels
		return nil
	default:
	}
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
// goroutine that ends when it is delivered or the loop stops, and that
// Stop waits for.
func (n *Node) ReportSnapshot(id uint64, ok bool) {
	r := report{id: id, snapshot: true, ok: ok}
	select {
	case n.reportc <- r:
		return
	default:
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
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

// AdvanceTicks fast-forwards raft's clock by ticks ticks at once, as
// etcd does on start when its peers are reachable, so that a cluster
// starting together elects a leader sooner. It returns false if the loop
// has stopped.
func (n *Node) AdvanceTicks(ticks int) bool {
	select {
	case n.advance <- ticks:
		return true
	case <-n.done:
		return false
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

// run is the loop. It owns n.d.
func (n *Node) run() {
	defer close(n.done)
	defer close(n.applyc)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	rn := n.d.Raft()
	for {
		select {
		case <-n.stopc:
			return
		case <-ticker.C:
			rn.Tick()
		case m := <-n.recvc:
			n.d.Step(m)
		case p := <-n.propc:
			n.handleProposal(p)
		case r := <-n.readc:
			n.handleRead(r)
		case r := <-n.reportc:
			n.handleReport(r)
		case id := <-n.transfer:
			rn.TransferLeadership(id)
		case ticks := <-n.advance:
			for range ticks {
				rn.Tick()
			}
		case c := <-n.statusc:
			c <- rn.Status()
		case r := <-n.snapc:
			if err := n.handleSnapshot(r); err != nil {
				n.fail(err)
				return
			}
		}
		// Take what else is waiting, so that one Ready (one fsync)
		// covers a burst of proposals and messages.
		n.drain()
		err := n.d.HandleReady()
		n.publish()
		if err != nil {
			n.fail(err)
			return
		}
	}
}

// publish copies what other goroutines read of the driver's state.
func (n *Node) publish() {
	n.lead.Store(n.d.Lead())
	n.term.Store(n.d.Term())
	n.commit.Store(n.d.Commit())
}

// drain takes what is already waiting, up to 1024 items: peers'
// messages, proposals, read requests and reports, at most 64 of each kind
// a pass, passes until nothing is left or the budget is spent. One
// non-blocking receive per item (which locks one channel) rather than a
// select over four (which locks them all, sorted) cost a busy leader
// less.
func (n *Node) drain() {
	const perPass = 64
	for budget := 1024; budget > 0; {
		took := take(n.recvc, min(perPass, budget), n.d.Step)
		took += take(n.propc, min(perPass, budget-took), n.handleProposal)
		took += take(n.readc, min(perPass, budget-took), n.handleRead)
		took += take(n.reportc, min(perPass, budget-took), n.handleReport)
		if took == 0 {
			return // nothing was waiting
		}
		budget -= took
	}
}

// take hands handle what c holds, up to limit items, without blocking,
// and says how many it took.
func take[T any](c <-chan T, limit int, handle func(T)) int {
	for i := range limit {
		select {
		case v := <-c:
			handle(v)
		default:
			return i
		}
	}
	return max(limit, 0)
}

func (n *Node) handleProposal(p proposal) {
	var err error
	switch {
	case p.cc != nil && p.leaderOnly:
		err = n.d.ProposeConfChangeAsLeader(*p.cc, p.term)
	case p.cc != nil:
		err = n.d.Raft().ProposeConfChange(*p.cc)
	case p.leaderOnly:
		err = n.d.ProposeAsLeader(p.data, p.term)
	default:
		err = n.d.Raft().Propose(p.data)
	}
	if p.errc != nil {
		p.errc <- err
		return
	}
	if p.tag > n.takenTag.Load() {
		n.takenTag.Store(p.tag) // only this goroutine stores it
	}
	if err != nil && n.cfg.Refused != nil {
		n.cfg.Refused(p.tag, err)
	}
}

func (n *Node) handleRead(r readRequest) { r.errc <- n.d.Raft().ReadIndex(r.ctx) }

// handleSnapshot takes the snapshot r asks for and answers it; the error
// it returns (a snapshot that is merely out of date is none) is fatal.
func (n *Node) handleSnapshot(r snapRequest) error {
	err := n.d.TakeSnapshot(r.index, r.cs)
	r.errc <- err
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	return err
}

func (n *Node) handleReport(r report) {
	if r.snapshot {
		n.d.Raft().ReportSnapshot(r.id, r.ok)
		return
	}
	n.d.Raft().ReportUnreachable(r.id)
}

// ApplyDone tells the loop the applier has applied ta (received from
// Apply): its bytes no longer count against MaxApplyBytes.
func (n *Node) ApplyDone(ta ToApply) {
	if b := int64(ta.Bytes()); b > 0 {
		left := n.applyBytes.Add(-b)
		if invariants.Enabled && left < 0 {
			panic(fmt.Sprintf("raftnode: apply bytes went negative (%d)", left))
		}
		select {
		case n.applyFreed <- struct{}{}:
		default:
		}
	}
}

// nodeApplier is the Node as its driver's Applier: it hands entries to the
// applier goroutine through applyc, and read states to the read loop.
type nodeApplier Node

// Apply hands ta over, first waiting while more than MaxApplyBytes of
// entries are with the applier (a batch larger than the bound goes alone).
// While it waits it serves snapshot requests: the applier may be waiting
// on one (TakeSnapshot) and would otherwise never drain applyc.
func (a *nodeApplier) Apply(ta ToApply) error {
	n := (*Node)(a)
	size := int64(ta.Bytes())
	for {
		held := n.applyBytes.Load()
		if held == 0 || held+size <= n.cfg.Limits.MaxApplyBytes {
			break
		}
		select {
		case <-n.applyFreed:
		case r := <-n.snapc:
			if err := n.handleSnapshot(r); err != nil {
				return err
			}
		case <-n.stopc:
			return nil
		}
	}
	if !ta.Snapshot.IsEmpty() || len(ta.Entries) > 0 {
		n.applyBytes.Add(size)
		if err := n.sendApply(ToApply{Snapshot: ta.Snapshot, Entries: ta.Entries}); err != nil {
			return err
		}
	}
	for _, rs := range ta.ReadStates {
		select {
		case n.readStates <- rs:
		case <-n.stopc:
			return nil
		}
	}
	return nil
}

func (n *Node) sendApply(ta ToApply) error {
	select {
	case n.applyc <- ta: // room: no need to lock the other channels
		return nil
	default:
	}
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

// purgeInBackground removes old snapshot files, off the loop: removing
// files and syncing their directory is too slow to do between heartbeats.
// At most one purge runs; a snapshot taken while it runs makes it go round
// again (else the newest snapshot's purge would be lost and one file too
// many kept until the next). Stop waits for it.
func (n *Node) purgeInBackground() {
	n.purgeAgain.Store(true)
	if !n.purging.CompareAndSwap(false, true) {
		return // the running purge sees purgeAgain
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			for n.purgeAgain.Swap(false) {
				if err := PurgeSnapshots(n.cfg.WAL, n.cfg.Snap, n.cfg.MaxSnapshots); err != nil {
					// A segment released meanwhile, say: the next purge retries.
					n.logger.Warn("purging old snapshots", zap.Error(err))
				}
			}
			n.purging.Store(false)
			// A request between the last Swap and the Store above found
			// purging set and left: take it up unless another goroutine
			// has.
			if !n.purgeAgain.Load() || !n.purging.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

package apply

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/invariants"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

var (
	memberPrefix  = []byte("c/member/")
	removedPrefix = []byte("c/removed/")
	confStateKey  = []byte("c/confstate")
)

// Result is what applying one entry produced, for the member that
// proposed it.
type Result struct {
	// ID is the request's ID (0 for entries that carry none).
	ID uint64
	// Index is the entry's raft index.
	Index uint64
	// Resp is the response (a *pb.PutResponse, ...), or nil.
	Resp any
	// Err is a refusal the proposer gets (mvcc.ErrKeyNotFound, ...).
	Err error
	// Compacted, for a compaction, is closed when its removals are done.
	Compacted <-chan struct{}
	// Op is the request's type, as etcd names it in its metrics ("Put",
	// "LeaseGrant", ...); empty for entries that carry no request.
	Op string
}

// Applier applies entries to a member's backend and serves reads of it.
// Entries are applied by one goroutine at a time.
//
// Lock order: mu, then meta, then the store's own locks.
type Applier struct {
	dir string
	// fs is opts.FS (vfs.Default if nil): every file operation, the
	// backend's and the images', goes through it.
	fs     vfs.FS
	logger *zap.Logger
	opts   backend.Options
	// mvccMetrics is handed to every store opened, so that the counters
	// go on across restores.
	mvccMetrics *mvcc.Metrics
	// checkpoints numbers the checkpoint directories, which need unique
	// names; a counter, not randomness, so a simulation repeats exactly.
	checkpoints atomic.Uint64

	// mu guards the backend and the store against a restore swapping
	// them: reads and applies hold it shared, Restore exclusively.
	mu    sync.RWMutex
	be    *backend.Backend
	store *mvcc.Store
	// watch follows store, across restores (it is never replaced).
	watch *mvcc.WatchableStore
	// lessor holds the leases and the keys under each, as of the
	// consistent index (rebuilt from the backend at open and restore).
	lessor *lease.Lessor

	// meta guards the members, the removed IDs, the configuration and the
	// alarms, which entries of their own change: the apply of such an
	// entry holds it exclusively (and mu shared, as every apply), from
	// its batch's commit to the change in memory, and a restore holds it
	// exclusively too. Readers on other goroutines hold it shared; the
	// applying goroutine reads them without it. Under mu held
	// exclusively, the membership applies had to wait for every read
	// under way (a View of a long range), and every entry after them
	// with them.
	meta    sync.RWMutex
	members map[uint64]*membership.Member
	// removed are the IDs removed from the cluster, never to return
	// (etcd's members_removed bucket).
	removed map[uint64]bool
	// confState is the configuration as of the consistent index.
	confState raftpb.ConfState
	// alarms are the active alarms, by type and member ID, as of the
	// consistent index.
	alarms map[pb.AlarmType]map[uint64]bool
	// auth is the auth state as of the consistent index (reloaded at open
	// and restore); it has its own lock, and only Apply changes it.
	auth *auth.Store

	// group is the write group ApplyEntries has open, nil if none;
	// applied is ApplyEntries' result, reused. Only the applying
	// goroutine uses them.
	group   *mvcc.WriteGroup
	applied []Applied
}

// Metrics are what the store and the lessor count into; they outlive the
// stores a restore replaces. A nil field is metrics of their own, not
// registered.
type Metrics struct {
	MVCC  *mvcc.Metrics
	Lease *lease.Metrics
}

// Open opens the backend in dir on opts.FS (creating it if needed),
// finishing any image swap a crash interrupted. Leases are granted at
// least minLeaseTTL seconds.
func Open(dir string, opts backend.Options, minLeaseTTL int64, m Metrics, logger *zap.Logger) (*Applier, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	// opts keeps a nil FS: the backend leaves it to pebble (see
	// backend.Options.FS).
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := recoverSwap(fs, dir); err != nil {
		return nil, err
	}
	if m.MVCC == nil {
		m.MVCC = mvcc.NewMetrics()
	}
	// A store with etcd's default token settings until SetAuth gives
	// the member's.
	as, err := auth.New(auth.Options{Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	a := &Applier{dir: dir, fs: fs, logger: logger, opts: opts, mvccMetrics: m.MVCC, lessor: lease.New(minLeaseTTL, m.Lease), auth: as}
	if err := a.openLocked(); err != nil {
		return nil, err
	}
	a.watch = mvcc.NewWatchable(a.store)
	return a, nil
}

// openLocked opens the backend and store and loads membership.
// REQUIRES: a.mu held exclusively (or a not yet shared).
func (a *Applier) openLocked() error {
	be, err := backend.Open(a.dir, a.opts)
	if err != nil {
		return err
	}
	store, err := mvcc.Open(be, a.logger, a.mvccMetrics)
	if err != nil {
		be.Close()
		return fmt.Errorf("apply: opening the store in %s: %w", a.dir, err)
	}
	members := map[uint64]*membership.Member{}
	var cs raftpb.ConfState
	// The view is closed before the backend on every path: pebble's Close
	// fails on a snapshot left open ("leaked snapshots").
	view := be.NewReadView()
	var decodeErr error
	err = view.Scan(memberPrefix, prefixEnd(memberPrefix), func(_, v []byte) bool {
		m := &membership.Member{}
		if decodeErr = m.Unmarshal(v); decodeErr != nil {
			return false
		}
		members[m.ID] = m
		return true
	})
	removed := map[uint64]bool{}
	if err = errors.Join(err, decodeErr); err == nil {
		err = view.Scan(removedPrefix, prefixEnd(removedPrefix), func(k, _ []byte) bool {
			var id uint64
			id, decodeErr = strconv.ParseUint(string(k[len(removedPrefix):]), 16, 64)
			removed[id] = true
			return decodeErr == nil
		})
		err = errors.Join(err, decodeErr)
	}
	if err == nil {
		var v []byte
		var ok bool
		if v, ok, err = view.Get(confStateKey); err == nil && ok {
			err = cs.Unmarshal(v)
		}
	}
	if err != nil {
		view.Close()
		store.Close()
		be.Close()
		return fmt.Errorf("apply: loading membership from %s: %w", a.dir, err)
	}
	alarms, err := loadAlarms(view)
	if err != nil {
		view.Close()
		store.Close()
		be.Close()
		return fmt.Errorf("apply: loading alarms from %s: %w", a.dir, err)
	}
	err = loadLeases(view, store, a.lessor)
	var authState auth.State
	if err == nil {
		if authState, err = loadAuth(view); err != nil {
			err = fmt.Errorf("loading auth: %w", err)
		}
	}
	view.Close()
	if err != nil {
		store.Close()
		be.Close()
		return fmt.Errorf("apply: loading leases from %s: %w", a.dir, err)
	}
	a.auth.Reset(authState)
	a.be, a.store = be, store
	a.meta.Lock()
	a.members, a.removed, a.confState, a.alarms = members, removed, cs, alarms
	a.meta.Unlock()
	return nil
}

// loadAuth reads the auth state the backend keeps.
func loadAuth(view *backend.ReadView) (auth.State, error) {
	return auth.Load(view.Get, func(prefix []byte, fn func(k, v []byte) bool) error {
		return view.Scan(prefix, prefixEnd(prefix), fn)
	})
}

// loadLeases rebuilds the lessor from the lease records and the store's
// live keys that name a lease.
func loadLeases(view *backend.ReadView, store *mvcc.Store, le *lease.Lessor) error {
	var records []lease.Record
	var decodeErr error
	start := []byte{lease.Prefix}
	err := view.Scan(start, []byte{lease.Prefix + 1}, func(k, v []byte) bool {
		var r lease.Record
		if r, decodeErr = lease.DecodeRecord(k, v); decodeErr != nil {
			return false
		}
		records = append(records, r)
		return true
	})
	if err = errors.Join(err, decodeErr); err != nil {
		return err
	}
	// Open read every live key's lease.
	keys := store.TakeLeasedKeys()
	le.Reset(records, keys, 0)
	return nil
}

// Close closes the store and the backend.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watch.Close()
	a.store.Close()
	return a.be.Close()
}

// ConsistentIndex is the index of the last entry applied.
func (a *Applier) ConsistentIndex() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	ci, _ := a.be.ConsistentIndex()
	return ci
}

// Auth is the auth store (users, roles, the enabled flag, tokens).
func (a *Applier) Auth() *auth.Store { return a.auth }

// SetAuth replaces the auth store with as (configured with the member's
// token and bcrypt settings), carrying the state over. Call it before the
// first Apply.
func (a *Applier) SetAuth(as *auth.Store) {
	as.Reset(a.auth.Snapshot())
	a.auth.Close()
	a.auth = as
}

// Lessor holds the leases as applied.
func (a *Applier) Lessor() *lease.Lessor { return a.lessor }

// Watchable is what watchers follow: the store, whichever a restore made
// it.
func (a *Applier) Watchable() *mvcc.WatchableStore { return a.watch }

// View calls fn with the store, which no restore replaces meanwhile.
func (a *Applier) View(fn func(s *mvcc.Store) error) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return fn(a.store)
}

// Sync makes everything applied durable.
func (a *Applier) Sync() error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.be.Sync()
}

// SyncAsync starts making everything applied so far durable and returns
// at once (the backend's FlushAsync): the flush's Err is Sync's result.
// A restore meanwhile closes the backend it flushes: its Err is then
// backend.ErrClosed.
func (a *Applier) SyncAsync() *backend.Flush {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.be.FlushAsync()
}

// Members returns the members, sorted by ID.
func (a *Applier) Members() []membership.Member {
	a.meta.RLock()
	defer a.meta.RUnlock()
	out := make([]membership.Member, 0, len(a.members))
	for _, m := range a.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(x, y membership.Member) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// Member returns member id, if it is in the cluster.
func (a *Applier) Member(id uint64) (membership.Member, bool) {
	a.meta.RLock()
	defer a.meta.RUnlock()
	m, ok := a.members[id]
	if !ok {
		return membership.Member{}, false
	}
	return *m, true
}

// Removed returns the IDs removed from the cluster, sorted.
func (a *Applier) Removed() []uint64 {
	a.meta.RLock()
	defer a.meta.RUnlock()
	out := make([]uint64, 0, len(a.removed))
	for id := range a.removed {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// IsRemoved reports whether id was removed from the cluster.
func (a *Applier) IsRemoved(id uint64) bool {
	a.meta.RLock()
	defer a.meta.RUnlock()
	return a.removed[id]
}

// Stats are the backend's and the store's gauges, read together.
type Stats struct {
	Backend backend.Stats
	Store   mvcc.Stats
}

// Stats returns the backend's and the store's gauges (for metrics: it
// asks pebble for its metrics).
func (a *Applier) Stats() Stats {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return Stats{Backend: a.be.Stats(), Store: a.store.Stats()}
}

// ConfState returns the configuration as of the consistent index.
func (a *Applier) ConfState() raftpb.ConfState {
	a.meta.RLock()
	defer a.meta.RUnlock()
	return a.confState.Clone()
}

// Sizes are the backend's sizes now (see backend.Sizes).
func (a *Applier) Sizes() backend.Sizes {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.be.Sizes()
}

// SizesEstimate are the backend's sizes, cheaply (see
// backend.SizesEstimate).
func (a *Applier) SizesEstimate() backend.Sizes {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.be.SizesEstimate()
}

// Defragment compacts the whole backend (see backend.Defragment) while
// applies and reads go on. A restore meanwhile closes the backend it
// compacts, which ends it with backend.ErrClosed.
func (a *Applier) Defragment() error {
	a.mu.RLock()
	be := a.be
	a.mu.RUnlock()
	return be.Defragment()
}

// Apply applies one committed entry, unless the backend already holds it
// (index at or below the consistent index), and returns its result for
// the proposer. An error is fatal.
func (a *Applier) Apply(e raftpb.Entry) (Result, bool, error) {
	return a.ApplyProposed(e, nil)
}

// ApplyProposed is Apply given the request of a normal entry as the member
// that proposed it built it (nil: decoded from e.Data, as Apply does).
// Decoding what it has just encoded was 4-5% of a leader's CPU under
// txn-put. r must be what e.Data decodes to (checked in invariants
// builds), and nothing may change it during the call. The applier keeps
// nothing of r once it returns, but may keep its keys' and values' bytes
// (as it keeps those it decodes), so those must never change.
func (a *Applier) ApplyProposed(e raftpb.Entry, r *pb.InternalRaftRequest) (Result, bool, error) {
	r, put, decodeErr := a.request(e, r)
	defer put.release()
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.applyLocked(e, r, decodeErr)
}

// Applied is what ApplyEntries did with one entry.
type Applied struct {
	Entry  raftpb.Entry
	Result Result
	// Applied is false for an entry the backend already held.
	Applied bool
	// Took is how long the entry took to apply, and for the last of a
	// group, the group's commit.
	Took time.Duration
}

// Groups of key-value writes are committed once they hold this many
// entries or bytes of entry data (ApplyEntries).
const (
	maxGroupEntries = 512
	maxGroupBytes   = 4 << 20
)

// ApplyEntries applies committed entries in order, as ApplyProposed would
// one by one (proposed, if set, gives the proposer's requests; it is
// called with mu held shared and the store's writeMu held, and must take
// neither), and returns what it did with each, valid until the next call.
// Consecutive key-value writes (Put, DeleteRange, Txn) are committed
// together, in one backend batch (see mvcc.WriteGroup): every result it
// returns is committed, and readable, when it returns. An error is fatal,
// and the results before it are those of entries committed.
func (a *Applier) ApplyEntries(es []raftpb.Entry, proposed func(raftpb.Entry) *pb.InternalRaftRequest) ([]Applied, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	// The last call's results go: they hold entries and responses (a
	// range's in a txn, prev_kv) that nothing else may hold any more. A
	// slice a burst grew is not kept.
	clear(a.applied)
	out := a.applied[:0]
	if cap(out) > 1024 {
		out = nil
	}
	defer func() { a.applied = out }()
	// grouped: how many of out's last entries wait for the group's
	// commit; the last of them applied (not held already) is at
	// (index, term), 0 if none.
	grouped, groupBytes := 0, 0
	var index, term uint64
	// commit commits the open group, if any, at (index, term).
	commit := func() error {
		g := a.group
		if g == nil {
			return nil
		}
		a.group = nil
		defer func() { grouped, groupBytes, index, term = 0, 0, 0, 0 }()
		if index == 0 {
			// Every entry of it was held already.
			g.Abort()
			return nil
		}
		start := time.Now()
		if err := g.Commit(index, term); err != nil {
			out = out[:len(out)-grouped]
			return fmt.Errorf("apply: committing entries to %d: %w", index, err)
		}
		out[len(out)-1].Took += time.Since(start)
		return nil
	}
	for _, e := range es {
		var r *pb.InternalRaftRequest
		if proposed != nil && e.Type == raftpb.EntryNormal && len(e.Data) > 0 {
			r = proposed(e)
		}
		r, put, decodeErr := a.request(e, r)
		if decodeErr == nil && r != nil && (r.Put != nil || r.DeleteRange != nil || r.Txn != nil) {
			if a.group == nil {
				a.group = a.store.Group()
			}
		} else if err := commit(); err != nil {
			put.release()
			return out, err
		}
		start := time.Now()
		res, applied, err := a.applyLocked(e, r, decodeErr)
		put.release()
		if err != nil {
			if a.group != nil {
				a.group.Abort()
				a.group = nil
				out = out[:len(out)-grouped]
			}
			return out, err
		}
		out = append(out, Applied{Entry: e, Result: res, Applied: applied, Took: time.Since(start)})
		if a.group != nil {
			grouped++
			if applied {
				index, term = e.Index, e.Term
				groupBytes += len(e.Data)
			}
			if a.group.Len() >= maxGroupEntries || groupBytes >= maxGroupBytes {
				if err := commit(); err != nil {
					return out, err
				}
			}
		}
	}
	return out, commit()
}

// commitEmpty records that the entry e is applied, changing nothing else:
// with the open group of writes if any (a write refused by an alarm or by
// auth: the group commits at an index at or after e's, and a batch of its
// own would record e's index ahead of the group's entries before it),
// else in a batch of its own.
func (a *Applier) commitEmpty(e raftpb.Entry) error {
	if a.group != nil {
		return nil
	}
	return a.be.NewBatch().Commit(e.Index, e.Term)
}

// request returns the request of a normal entry: r if set (the proposer's),
// else decoded from e.Data. put is what release hands back once the entry
// is applied (see decodeRequest).
func (a *Applier) request(e raftpb.Entry, r *pb.InternalRaftRequest) (_ *pb.InternalRaftRequest, put *decodedPut, decodeErr error) {
	if r != nil {
		if invariants.Enabled && (e.Type != raftpb.EntryNormal || !proposedMatches(e.Data, r)) {
			panic(fmt.Sprintf("apply: entry %d: the proposer's request is not what the entry decodes to", e.Index))
		}
		return r, nil, nil
	}
	if e.Type == raftpb.EntryNormal && len(e.Data) > 0 {
		var err error
		if r, put, err = decodeRequest(e.Data); err != nil {
			return nil, put, fmt.Errorf("apply: entry %d does not decode: %w", e.Index, err)
		}
	}
	return r, put, nil
}

// applyLocked applies e (its request r, or decodeErr), unless the backend
// holds it already. The caller holds mu shared.
func (a *Applier) applyLocked(e raftpb.Entry, r *pb.InternalRaftRequest, decodeErr error) (Result, bool, error) {
	// Membership and alarm changes hold meta exclusively (see meta). An
	// alarm list (which etcdctl's endpoint health sends through raft)
	// changes nothing.
	if e.Type == raftpb.EntryConfChange || r != nil && (r.ClusterMemberAttrSet != nil ||
		r.Alarm != nil && r.Alarm.Action != pb.AlarmRequest_GET) {
		a.meta.Lock()
		defer a.meta.Unlock()
	}
	if ci, _ := a.be.ConsistentIndex(); e.Index <= ci {
		return Result{}, false, nil
	}
	res, err := a.applyEntry(e, r, decodeErr)
	res.Index = e.Index
	return res, true, err
}

func (a *Applier) applyEntry(e raftpb.Entry, r *pb.InternalRaftRequest, decodeErr error) (Result, error) {
	if decodeErr != nil {
		return Result{}, decodeErr
	}
	switch {
	case e.Type == raftpb.EntryConfChange:
		return a.applyConfChange(e)
	case e.Type != raftpb.EntryNormal:
		return Result{}, fmt.Errorf("apply: entry %d has unknown type %v", e.Index, e.Type)
	case r == nil:
		// A new leader's empty entry: only the index moves.
		return Result{}, a.commitEmpty(e)
	}
	res, err := a.applyRequest(e, r)
	res.Op = RequestType(r)
	if r.Header != nil {
		res.ID = r.Header.ID
	}
	return res, err
}

func (a *Applier) applyRequest(e raftpb.Entry, r *pb.InternalRaftRequest) (Result, error) {
	if err := alarmRefusal(r, a.alarms); err != nil {
		// Refused by an alarm every member has applied: a result.
		return Result{Err: err}, a.commitEmpty(e)
	}
	if err := a.authRefusal(r); err != nil {
		// Refused by the auth state every member has applied: a result.
		return Result{Err: err}, a.commitEmpty(e)
	}
	switch {
	case auth.IsAuthRequest(r):
		batch := a.be.NewBatch()
		resp, err := a.auth.Apply(r, e.Index, batch)
		if cerr := batch.Commit(e.Index, e.Term); cerr != nil {
			return Result{}, cerr
		}
		return Result{Resp: resp, Err: err}, nil
	case r.Put != nil:
		return a.applyWrite(e, func(tw *mvcc.TxnWrite) (any, error) { return tw.PutRequest(r.Put) })
	case r.DeleteRange != nil:
		return a.applyWrite(e, func(tw *mvcc.TxnWrite) (any, error) { return tw.DeleteRangeRequest(r.DeleteRange) })
	case r.Txn != nil:
		return a.applyWrite(e, func(tw *mvcc.TxnWrite) (any, error) { return tw.TxnRequest(r.Txn) })
	case r.Compaction != nil:
		return a.applyCompaction(e, r.Compaction)
	case r.LeaseGrant != nil:
		return a.applyLeaseGrant(e, r.LeaseGrant)
	case r.LeaseRevoke != nil:
		return a.applyLeaseRevoke(e, r.LeaseRevoke)
	case r.LeaseCheckpoint != nil:
		return a.applyLeaseCheckpoint(e, r.LeaseCheckpoint)
	case r.ClusterMemberAttrSet != nil:
		return a.applyMemberAttr(e, r)
	case r.Alarm != nil:
		return a.applyAlarm(e, r.Alarm)
	}
	// A request this version does not know (written by a newer member):
	// applying it as a no-op would silently diverge from that member.
	return Result{}, fmt.Errorf("apply: entry %d holds a request this version cannot apply", e.Index)
}

// authRefusal checks a write against the permissions of the user its
// header names, as etcd's auth applier does at apply time (the proposer
// checked too, but auth may have changed since). Requests the members
// propose themselves (a lease's expiry, alarms, compactions, checkpoints)
// are not checked here; an expiry's revoke names the root user.
func (a *Applier) authRefusal(r *pb.InternalRaftRequest) error {
	ai := auth.HeaderInfo(r)
	leaseKeys := func(id int64) []string {
		keys, _ := a.lessor.Keys(id)
		return keys
	}
	switch {
	case r.Put != nil:
		return a.auth.CheckPutRequest(ai, r.Put, leaseKeys)
	case r.DeleteRange != nil:
		return a.auth.CheckDeleteRequest(ai, r.DeleteRange)
	case r.Txn != nil:
		return a.auth.CheckTxn(ai, r.Txn, leaseKeys)
	case r.LeaseRevoke != nil:
		return a.auth.CheckLeaseKeys(ai, r.LeaseRevoke.ID, leaseKeys)
	}
	return nil
}

// RequestType names a request's type as etcd does in its metrics' op and
// type labels.
func RequestType(r *pb.InternalRaftRequest) string {
	switch {
	case r.Range != nil:
		return "Range"
	case r.Put != nil:
		return "Put"
	case r.DeleteRange != nil:
		return "DeleteRange"
	case r.Txn != nil:
		return "Txn"
	case r.Compaction != nil:
		return "Compaction"
	case r.LeaseGrant != nil:
		return "LeaseGrant"
	case r.LeaseRevoke != nil:
		return "LeaseRevoke"
	case r.LeaseCheckpoint != nil:
		return "LeaseCheckpoint"
	case r.Alarm != nil:
		return "Alarm"
	case r.ClusterVersionSet != nil:
		return "ClusterVersionSet"
	case r.ClusterMemberAttrSet != nil:
		return "ClusterMemberAttrSet"
	case auth.IsAuthRequest(r):
		return "Auth"
	}
	return "Unknown"
}

// RequestTypes returns every type RequestType names.
func RequestTypes() []string {
	return []string{"Range", "Put", "DeleteRange", "Txn", "Compaction", "LeaseGrant", "LeaseRevoke",
		"LeaseCheckpoint", "Alarm", "ClusterVersionSet", "ClusterMemberAttrSet", "Auth", "Unknown"}
}

// refusal reports whether err is a state-dependent refusal (a result),
// not a failure.
func refusal(err error) bool {
	return errors.Is(err, mvcc.ErrKeyNotFound) || errors.Is(err, mvcc.ErrLeaseNotFound) ||
		errors.Is(err, mvcc.ErrCompacted) || errors.Is(err, mvcc.ErrFutureRev) ||
		errors.Is(err, lease.ErrNotFound) || errors.Is(err, lease.ErrExists) || errors.Is(err, lease.ErrTTLTooLarge)
}

// applyWrite runs one KV request in a write transaction: the open group's
// next (ApplyEntries), or one committed with the entry's index. The lessor
// follows the keys at once, before a group's commit: an entry after it in
// the group may check a lease's keys (auth's CheckPutRequest).
func (a *Applier) applyWrite(e raftpb.Entry, run func(tw *mvcc.TxnWrite) (any, error)) (Result, error) {
	var tw *mvcc.TxnWrite
	if a.group != nil {
		tw = a.group.Write()
	} else {
		tw = a.store.Write()
	}
	tw.LeaseExists = a.lessor.Exists
	resp, err := run(tw)
	if err != nil && !refusal(err) {
		// The transaction may be half written: End would commit that.
		// Stop here; the WAL replays the entry after a restart.
		return Result{}, fmt.Errorf("apply: entry %d: %w", e.Index, err)
	}
	if _, endErr := tw.End(e.Index, e.Term); endErr != nil {
		return Result{}, fmt.Errorf("apply: committing entry %d: %w", e.Index, endErr)
	}
	a.lessor.Follow(tw.Events())
	if err != nil {
		return Result{Err: err}, nil
	}
	return Result{Resp: resp}, nil
}

func (a *Applier) applyLeaseGrant(e raftpb.Entry, req *pb.LeaseGrantRequest) (Result, error) {
	batch := a.be.NewBatch()
	rec, err := a.lessor.Grant(req.ID, req.TTL)
	if err == nil {
		batch.Set(lease.Key(rec.ID), rec.Encode())
	}
	if cerr := batch.Commit(e.Index, e.Term); cerr != nil {
		return Result{}, cerr
	}
	if err != nil {
		return Result{Err: err}, nil
	}
	return Result{Resp: &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{}, ID: rec.ID, TTL: rec.TTL}}, nil
}

// applyLeaseRevoke deletes the lease's keys in one revision, and the lease,
// in one batch.
func (a *Applier) applyLeaseRevoke(e raftpb.Entry, req *pb.LeaseRevokeRequest) (Result, error) {
	keys, err := a.lessor.Keys(req.ID)
	if err != nil {
		return Result{Err: err}, a.be.NewBatch().Commit(e.Index, e.Term)
	}
	tw := a.store.Write()
	for _, k := range keys {
		if _, err := tw.DeleteRange([]byte(k), nil); err != nil {
			return Result{}, fmt.Errorf("apply: revoking lease %x at entry %d: %w", req.ID, e.Index, err)
		}
	}
	tw.DeleteMeta(lease.Key(req.ID))
	rev, err := tw.End(e.Index, e.Term)
	if err != nil {
		return Result{}, fmt.Errorf("apply: committing entry %d: %w", e.Index, err)
	}
	if err := a.lessor.Revoke(req.ID); err != nil {
		return Result{}, err
	}
	return Result{Resp: &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: rev}}}, nil
}

func (a *Applier) applyLeaseCheckpoint(e raftpb.Entry, req *pb.LeaseCheckpointRequest) (Result, error) {
	batch := a.be.NewBatch()
	for _, cp := range req.Checkpoints {
		if rec, err := a.lessor.Checkpoint(cp.ID, cp.Remaining_TTL); err == nil {
			batch.Set(lease.Key(rec.ID), rec.Encode())
		}
	}
	return Result{Resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{}}}, batch.Commit(e.Index, e.Term)
}

func (a *Applier) applyCompaction(e raftpb.Entry, req *pb.CompactionRequest) (Result, error) {
	done, err := a.store.Compact(req.Revision, e.Index, e.Term)
	switch {
	case err == nil:
		resp := &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: a.store.Rev()}}
		return Result{Resp: resp, Compacted: done}, nil
	case refusal(err):
		return Result{Err: err, Compacted: done}, nil
	}
	return Result{}, fmt.Errorf("apply: compaction at entry %d: %w", e.Index, err)
}

func (a *Applier) applyMemberAttr(e raftpb.Entry, r *pb.InternalRaftRequest) (Result, error) {
	req := r.ClusterMemberAttrSet
	batch := a.be.NewBatch()
	m, ok := a.members[req.Member_ID]
	if ok && req.MemberAttributes != nil {
		updated := *m
		updated.Name = req.MemberAttributes.Name
		updated.ClientURLs = slices.Clone(req.MemberAttributes.ClientUrls)
		batch.Set(memberKey(m.ID), updated.Marshal())
		if err := batch.Commit(e.Index, e.Term); err != nil {
			return Result{}, err
		}
		*m = updated
		return Result{}, nil
	}
	// A member removed meanwhile: nothing to update.
	return Result{}, batch.Commit(e.Index, e.Term)
}

// applyConfChange mirrors a configuration change raft made when it
// appended the entry (see package raft) into the member records:
//
//	AddVoter, new ID      the member in the context, a voter (founding entries)
//	AddVoter, a learner   promoted; its record kept
//	AddLearner, new ID    the member in the context; its IsLearner as the
//	                      context says: false is a voter raft keeps as a
//	                      learner until it has caught up (server.promoteDue)
//	AddLearner, a voter   demoted
//	UpdateNode            the context's peer URLs
//	RemoveNode            record deleted, ID remembered as removed
//
// The result carries the context's request ID for the proposer.
func (a *Applier) applyConfChange(e raftpb.Entry) (Result, error) {
	var cc raftpb.ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		return Result{}, fmt.Errorf("apply: conf change at entry %d does not decode: %w", e.Index, err)
	}
	var ctx membership.ChangeContext
	if len(cc.Context) > 0 {
		if err := ctx.Unmarshal(cc.Context); err != nil {
			return Result{}, fmt.Errorf("apply: conf change at entry %d: %w", e.Index, err)
		}
	}
	res := Result{ID: ctx.RequestID}
	// The same function raft applies at append time: the two agree on
	// every configuration, and a change raft ignored as invalid is
	// ignored here too (only the index moves).
	cs, err := raft.ApplyConfChange(a.confState, cc)
	if errors.Is(err, raft.ErrInvalidConfChange) {
		a.logger.Warn("ignoring an invalid conf change, as raft does", zap.Uint64("index", e.Index), zap.Error(err))
		res.Err = err
		return res, a.be.NewBatch().Commit(e.Index, e.Term)
	}
	if err != nil {
		return Result{}, fmt.Errorf("apply: conf change at entry %d: %w", e.Index, err)
	}
	batch := a.be.NewBatch()
	var m *membership.Member
	if old, ok := a.members[cc.NodeID]; ok {
		cp := *old
		m = &cp
	}
	before := a.confState // for the log line
	switch cc.Type {
	case raftpb.ConfChangeAddVoter, raftpb.ConfChangeAddLearner:
		if m == nil {
			nm := ctx.Member
			m = &nm
			m.IsLearner = cc.Type == raftpb.ConfChangeAddLearner && (len(cc.Context) == 0 || ctx.IsLearner)
		} else {
			m.IsLearner = cc.Type == raftpb.ConfChangeAddLearner
		}
		m.ID = cc.NodeID
		batch.Set(memberKey(m.ID), m.Marshal())
	case raftpb.ConfChangeUpdateNode:
		if m == nil {
			m = &membership.Member{ID: cc.NodeID}
		}
		m.PeerURLs = slices.Clone(ctx.PeerURLs)
		batch.Set(memberKey(m.ID), m.Marshal())
	case raftpb.ConfChangeRemoveNode:
		batch.Delete(memberKey(cc.NodeID))
		batch.Set(removedKey(cc.NodeID), nil)
		m = nil
	}
	batch.Set(confStateKey, cs.Marshal())
	if err := batch.Commit(e.Index, e.Term); err != nil {
		return Result{}, err
	}
	a.confState = cs
	if m == nil {
		delete(a.members, cc.NodeID)
		a.removed[cc.NodeID] = true
	} else {
		a.members[cc.NodeID] = m
	}
	a.logMemberChange(cc, before, m)
	return res, nil
}

// logMemberChange logs an applied conf change in etcd's words and fields
// ("added member", "promote member", "removed member"), given the
// configuration before it and the member after it (nil once removed).
func (a *Applier) logMemberChange(cc raftpb.ConfChange, before raftpb.ConfState, now *membership.Member) {
	id := membership.IDString(cc.NodeID)
	wasLearner := before.IsLearner(cc.NodeID)
	switch {
	case cc.Type == raftpb.ConfChangeRemoveNode:
		a.logger.Info("removed member", zap.String("removed-remote-peer-id", id), zap.Bool("removed-remote-peer-is-learner", wasLearner))
	case cc.Type == raftpb.ConfChangeAddVoter && wasLearner:
		a.logger.Info("promote member", zap.String("promoted-member-id", id))
	case cc.Type == raftpb.ConfChangeUpdateNode:
		a.logger.Info("updated member", zap.String("updated-remote-peer-id", id), zap.Strings("updated-remote-peer-urls", now.PeerURLs))
	case !before.IsVoter(cc.NodeID) && !wasLearner:
		a.logger.Info("added member", zap.String("added-peer-id", id),
			zap.Strings("added-peer-peer-urls", now.PeerURLs), zap.Bool("added-peer-is-learner", now.IsLearner))
	}
}

func removedKey(id uint64) []byte {
	return fmt.Appendf(append([]byte(nil), removedPrefix...), "%016x", id)
}

func memberKey(id uint64) []byte {
	return fmt.Appendf(append([]byte(nil), memberPrefix...), "%016x", id)
}

func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	end[len(end)-1]++
	return end
}

package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/invariants"
)

// Meta keys (see doc.go).
var (
	scheduledCompactKey = []byte("mcompact_scheduled")
	finishedCompactKey  = []byte("mcompact_finished")
)

// Store is the multi-version key-value store: every change is kept under
// its revision until compacted, and reads can ask for any revision since.
//
// Writes go through one write transaction at a time (TxnWrite), each
// applying one raft entry; reads run concurrently with them.
//
// Lock order: writeMu, then mu; the index and the backend lock themselves.
type Store struct {
	b       *backend.Backend
	index   *treeIndex
	logger  *zap.Logger
	metrics *Metrics
	// keys is how many keys are alive (etcd's keys_total), kept by the
	// writer: +1 for a put that creates a key, -1 for each key deleted.
	keys atomic.Int64
	// leasedKeys are the live keys attached to a lease, as Open found
	// them, until TakeLeasedKeys.
	leasedKeys map[string]int64

	// writeMu serializes write transactions.
	writeMu sync.Mutex
	// spareGroup, under writeMu, is a WriteGroup committed, kept for the
	// next Group with the room its slices grew to.
	spareGroup *WriteGroup

	// compactor removes what compactions made unreadable, in the
	// background; see compact.go.
	compactor compactor

	// views shares one backend read view among the reads of one
	// revision (see views.go).
	views viewCache

	// hashes are those taken at compactions (see hash.go).
	hashes hashes

	// notify, if set (by the watchable store, before any write), is told
	// of every write transaction that changed something, in revision
	// order, with its events, after it is committed and readable.
	notify func(rev int64, events []*mvccpb.Event)

	mu struct {
		sync.RWMutex
		// currentRev is the revision of the last write transaction that
		// changed something (1 for an empty store).
		// Invariant: compactRev <= currentRev.
		currentRev int64
		// compactRev is the revision of the last compaction (0 for none):
		// reads below it fail with ErrCompacted.
		compactRev int64
		// compacted says a compaction was ever accepted. etcd's store
		// starts at compaction revision -1, so its first Compact(0)
		// succeeds; so does Cairn's, and only the first.
		compacted bool
	}
}

// Open loads the store kept in b, rebuilding the in-memory index from the
// revisions stored there. The store counts into m (nil: metrics of its
// own, not registered).
func Open(b *backend.Backend, logger *zap.Logger, m *Metrics) (*Store, error) {
	return open(b, logger, m, compactBatchKeys, 0)
}

// open is Open with the compactor's batch size, and the number of batches
// after which removals give up as if crashed (0: never), for tests.
func open(b *backend.Backend, logger *zap.Logger, m *Metrics, batchKeys, crashAfterBatches int) (*Store, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if m == nil {
		m = NewMetrics()
	}
	s := &Store{b: b, index: newTreeIndex(), logger: logger, metrics: m}
	s.compactor.init(batchKeys, crashAfterBatches)
	s.mu.currentRev = 1
	view := b.NewReadView()
	defer view.Close()
	scheduled, err := getRev(view, scheduledCompactKey)
	if err != nil {
		return nil, err
	}
	finished, err := getRev(view, finishedCompactKey)
	if err != nil {
		return nil, err
	}
	s.mu.compactRev = scheduled
	if _, ok, err := view.Get(scheduledCompactKey); err != nil {
		return nil, err
	} else {
		s.mu.compacted = ok
	}
	s.mu.currentRev = max(s.mu.currentRev, scheduled)
	var kv mvccpb.KeyValue
	var scanErr error
	// Each revision's key and value are decoded into scratch, reused: the
	// index copies a key it keeps.
	var scratch []byte
	alloc := func(n int) []byte {
		scratch = slices.Grow(scratch[:0], n)[:n]
		return scratch
	}
	restorer := newIndexRestorer()
	err = view.Scan([]byte{'r'}, revisionPrefixEnd, func(k, v []byte) bool {
		rev, tombstone, err := parseRevisionKey(k)
		if err == nil {
			err = decodeKV(v, &kv, alloc)
		}
		if err != nil {
			scanErr = fmt.Errorf("%w: revision key %x: %v", ErrCorrupt, k, err)
			return false
		}
		if tombstone {
			restorer.tombstone(kv.Key, rev)
		} else {
			restorer.put(kv.Key, rev, kv.CreateRevision, kv.Version, kv.Lease)
		}
		s.mu.currentRev = max(s.mu.currentRev, rev.Main)
		return true
	})
	if err := errors.Join(err, scanErr); err != nil {
		return nil, err
	}
	s.keys.Store(restorer.build(s.index))
	s.leasedKeys = restorer.leases
	if scheduled > 0 {
		// What a compaction interrupted by a crash left in the backend
		// reads back as more history than it should: cut it again.
		keep := s.index.compact(scheduled)
		if finished < scheduled {
			s.compactor.start(s, scheduled, keep, compactionHash{prevRev: finished})
		}
	}
	return s, nil
}

// TakeLeasedKeys returns, once, the keys alive when the store was opened
// that are attached to a lease, with their leases: Open reads them on the
// way (the lessor is rebuilt from them) and forgets them here. Call it
// before any write.
func (s *Store) TakeLeasedKeys() map[string]int64 {
	m := s.leasedKeys
	s.leasedKeys = nil
	return m
}

func getRev(view *backend.ReadView, key []byte) (int64, error) {
	v, ok, err := view.Get(key)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s of %d bytes", ErrCorrupt, key[1:], len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Close stops the store's background work (and waits for it). The backend
// stays open: its owner closes it.
func (s *Store) Close() {
	s.compactor.stop()
	s.views.close()
}

// Rev returns the current revision.
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.currentRev
}

// ConsistentIndex returns the raft index (and term) of the last entry the
// store applied and kept: after a restart, the applier skips entries up to
// it, which makes replaying the raft log idempotent.
func (s *Store) ConsistentIndex() (index, term uint64) {
	return s.b.ConsistentIndex()
}

// Stats are the store's gauges, for metrics.
type Stats struct {
	// Keys is how many keys are alive.
	Keys int64
	// Rev is the current revision; CompactRev the last compaction's, or
	// -1 if there was none (as etcd reports it).
	Rev, CompactRev int64
}

// Stats returns the store's gauges.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Keys: s.keys.Load(), Rev: s.mu.currentRev, CompactRev: s.mu.compactRev}
	if !s.mu.compacted {
		st.CompactRev = -1
	}
	return st
}

// CompactRev returns the revision of the last compaction, 0 if none.
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.compactRev
}

// RangeOptions are a read's options.
type RangeOptions struct {
	// Rev is the revision to read at; 0 reads the current one.
	Rev int64
	// Limit bounds how many keys are returned; 0 is no limit. Count is
	// not bounded by it.
	Limit int64
	// CountOnly returns no keys, only Count.
	CountOnly bool
	// NoCount stops at Limit keys, leaving Count short: for walking the
	// store a page at a time without counting what is left each time.
	NoCount bool
	// MaxBytes, if positive, stops reading values once the keys and
	// values read reach it (at least one key is read): for a stream's
	// chunks. The keys read are then a prefix of the range's, and KVs
	// may be shorter than Limit with more keys left.
	MaxBytes int
	// Arena, if set, holds the KeyValues read (see Arena).
	Arena *Arena
}

// Arena holds the KeyValues of one read after another, reusing their
// memory: for a stream's chunks, each one garbage as soon as it is sent,
// which would otherwise pile up to the garbage collector's next cycle (a
// stream of 1 GB grew the server by about that much before it ran).
// Reset hands the memory back for the next read: the KeyValues read
// before must not be used after it.
type Arena struct {
	kvs  []*mvccpb.KeyValue
	used int
	data []byte
}

// Reset makes the arena's memory available again.
func (a *Arena) Reset() {
	a.used = 0
	a.data = a.data[:0]
}

func (a *Arena) keyValue() *mvccpb.KeyValue {
	if a.used == len(a.kvs) {
		a.kvs = append(a.kvs, &mvccpb.KeyValue{})
	}
	kv := a.kvs[a.used]
	a.used++
	return kv
}

// bytes returns n bytes of the arena. When the current block is full a
// larger one replaces it; the old one stays with the KeyValues that use
// it until they are dropped.
func (a *Arena) bytes(n int) []byte {
	if cap(a.data)-len(a.data) < n {
		a.data = make([]byte, 0, max(2*cap(a.data), n, 64<<10))
	}
	start := len(a.data)
	a.data = a.data[:start+n]
	return a.data[start : start+n : start+n]
}

// RangeResult is what a read found.
type RangeResult struct {
	KVs []*mvccpb.KeyValue
	// Rev is the store's current revision when the read ran (etcd
	// reports it in the response header whatever revision was read).
	Rev int64
	// Count is how many keys the range holds at the revision read.
	Count int64
}

// Range reads the keys in a range at a revision. The range is a single key
// if end is empty, every key from key on if end is "\x00", else
// [key, end).
//
// A compaction above the revision read may cut the index while the read
// walks it (see treeIndex.rangeCount): what it found may then be short.
// A read of a revision it was given then fails as one that came after the
// compaction would. A read of the current revision, which only a
// compaction of writes made since it began can cut, is read again at the
// new one; the third time holding the index's compactions off, so that
// it cannot be cut (writes go on). A retried read's KeyValues stay in
// opts.Arena, if any, until its Reset.
func (s *Store) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	for tries := 1; ; tries++ {
		if opts.Rev <= 0 && tries == 3 {
			defer s.index.holdCompactions()()
			res, _, err := s.rangeOnce(key, end, opts)
			return res, err
		}
		res, cut, err := s.rangeOnce(key, end, opts)
		if !cut {
			return res, err
		}
		if opts.Rev > 0 {
			return RangeResult{Rev: res.Rev}, ErrCompacted
		}
	}
}

// rangeOnce is Range's read; cut says that a compaction above the
// revision read began while it ran, and so the result may be short.
func (s *Store) rangeOnce(key, end []byte, opts RangeOptions) (res RangeResult, cut bool, err error) {
	s.mu.RLock()
	current, compacted := s.mu.currentRev, s.mu.compactRev
	view := s.views.acquire(s.b, current)
	s.mu.RUnlock()
	defer s.views.release(view)
	res, err = s.rangeAt(view.view, nil, key, end, opts, current, compacted)
	rev := opts.Rev
	if rev <= 0 {
		rev = current
	}
	return res, err == nil && rev < s.CompactRev(), err
}

// rangeAt reads at opts.Rev given the current and compaction revisions,
// from view and, for revisions not yet committed, pending.
func (s *Store) rangeAt(view *backend.ReadView, pending *pendingKVs, key, end []byte,
	opts RangeOptions, current, compacted int64) (RangeResult, error) {
	rev := opts.Rev
	switch {
	case rev <= 0:
		rev = current
	case rev > current:
		return RangeResult{Rev: current}, ErrFutureRev
	case rev < compacted:
		return RangeResult{Rev: current}, ErrCompacted
	}
	res := RangeResult{Rev: current}
	var found []indexEntry
	// The first want keys are read, the rest only counted; without a
	// count (NoCount), the walk ends at the limit.
	want := math.MaxInt
	if opts.CountOnly {
		want = 0
	} else if opts.Limit > 0 {
		want = int(min(opts.Limit, math.MaxInt))
	}
	res.Count = s.index.rangeCount(key, end, rev, want, func(e indexEntry) bool {
		found = append(found, e)
		return !opts.NoCount || opts.Limit <= 0 || int64(len(found)) < opts.Limit
	})
	// Many values are read through one iterator (see backend.Getter).
	var get valueGetter = view
	if len(found) >= manyValues {
		g, err := view.NewGetter(revisionKeyPrefix)
		if err != nil {
			return RangeResult{Rev: current}, err
		}
		defer g.Close()
		get = g
	}
	bytes := 0
	for _, e := range found {
		if opts.MaxBytes > 0 && bytes >= opts.MaxBytes {
			break
		}
		kv, err := s.valueAt(get, pending, e.mod, opts.Arena)
		if err != nil {
			return RangeResult{Rev: current}, err
		}
		res.KVs = append(res.KVs, kv)
		bytes += len(kv.Key) + len(kv.Value)
	}
	return res, nil
}

// manyValues is how many values a read must look up for a Getter to pay.
const manyValues = 4

// valueGetter is a backend.ReadView or backend.Getter.
type valueGetter interface {
	GetFunc(key []byte, fn func(value []byte) error) (bool, error)
}

// valueAt reads the KeyValue stored for the put at rev.
// With an arena, the KeyValue and its bytes are the arena's.
func (s *Store) valueAt(view valueGetter, pending *pendingKVs, rev Revision, arena *Arena) (*mvccpb.KeyValue, error) {
	if kv, ok := pending.get(rev); ok {
		return cloneKV(kv), nil
	}
	var kv *mvccpb.KeyValue
	var alloc func(int) []byte
	if arena != nil {
		kv, alloc = arena.keyValue(), arena.bytes
	} else {
		kv = &mvccpb.KeyValue{}
	}
	var decodeErr error
	ok, err := view.GetFunc(revisionKey(rev, false), func(v []byte) error {
		decodeErr = decodeKV(v, kv, alloc) // copies what it keeps
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		// The index names it, so the backend must hold it.
		return nil, fmt.Errorf("%w: no value for revision %s", ErrCorrupt, rev)
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("%w: revision %s: %v", ErrCorrupt, rev, decodeErr)
	}
	return kv, nil
}

func cloneKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key: bytes.Clone(kv.Key), CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
		Version: kv.Version, Value: bytes.Clone(kv.Value), Lease: kv.Lease,
	}
}

// TxnWrite is a write transaction: the changes one raft entry makes, all at
// one main revision. Reads in it see its own writes, and those of the
// transactions before it in its WriteGroup. Only one is open at a time.
type TxnWrite struct {
	s     *Store
	batch *backend.Batch
	// g is the group the transaction belongs to (nil for a read
	// transaction, which has no batch).
	g *WriteGroup
	// view is what the transaction reads beside the changes of its group,
	// the group's (see WriteGroup.readView), or a read transaction's.
	view *backend.ReadView
	// rev is the main revision this transaction writes at.
	rev int64
	// changes are the KeyValues written so far (a delete's has only Key
	// set), for reads in the transaction; first holds the first, so that
	// a transaction of one change allocates nothing for them.
	changes pendingKVs
	first   [1]*mvccpb.KeyValue
	// events are the changes in order, for watchers.
	events  []*mvccpb.Event
	subs    int64
	compact int64
	// ops counts the requests' operations, for the metrics (at End).
	ops opCounts

	// LeaseExists, if set, is asked about every lease a put request
	// attaches (PutRequest, TxnRequest); a lease it does not know fails
	// the request with ErrLeaseNotFound. Unset, every lease but 0 is
	// unknown: the store itself keeps no leases.
	LeaseExists func(id int64) bool
}

func (tw *TxnWrite) leaseExists(id int64) bool {
	if id == 0 {
		return true
	}
	return tw.LeaseExists != nil && tw.LeaseExists(id)
}

// Write starts the write transaction for one raft entry, in a group of its
// own: End commits it.
func (s *Store) Write() *TxnWrite {
	solo := &struct {
		g  WriteGroup
		tw TxnWrite
	}{}
	s.startGroup(&solo.g)
	solo.g.solo = true
	solo.g.startTxn(&solo.tw)
	return &solo.tw
}

// WriteGroup is a run of write transactions, one per raft entry, committed
// together in one backend batch with the last entry's index (Commit): a
// pebble commit per entry, with the two keys of the consistent index
// inserted in its memtable each time, was 12% of a follower's CPU under
// puts with 100 clients. Each transaction reads what those before it in
// the group wrote (from their KeyValues: the batch is not readable), and
// at its own revision, as if each had been committed at its End. Nothing
// of the group is visible outside it before Commit: readers read at the
// store's current revision, which Commit moves, and the watchers hear of
// each transaction at Commit, in order. A crash before Commit loses the
// whole group, which the WAL then replays, as it would single entries.
//
// The group holds the store's writeMu from Store.Group to Commit (or
// Abort): no other write and no compaction begins meanwhile, and no
// watcher is added or moved (the watchable store's syncer reads only up
// to the revision it was notified of).
type WriteGroup struct {
	s     *Store
	batch *backend.Batch
	// view is the group's read view of the backend, opened at its first
	// read: most writes never read, and a pebble snapshot opened and
	// closed per write cost 2-3% of a leader's CPU under puts (its Close
	// looks for a compaction to schedule). Opened late, it reads the
	// same: only write transactions write revisions, one at a time
	// (writeMu), and compaction removes only revisions that no read at or
	// after the compaction revision needs.
	view *backend.ReadView
	// compact is the compaction revision (no compaction runs in a group).
	compact int64
	// open is the transaction not yet ended, if any.
	open *TxnWrite
	// ended are the transactions ended, in order, and changed the
	// KeyValues of those that changed something: changed[i] those at
	// main revision changedFrom+i (one main revision per transaction), so
	// the next transaction writes at changedFrom+len(changed).
	ended       []endedTxn
	changedFrom int64
	changed     [][]*mvccpb.KeyValue
	// A group of one allocates nothing more for them.
	endedFirst   [1]endedTxn
	changedFirst [1][]*mvccpb.KeyValue
	// solo: the group is Store.Write's, one transaction's, which End
	// commits.
	solo bool
}

// endedTxn is what Commit needs of an ended transaction.
type endedTxn struct {
	rev    int64 // its main revision, if it changed something (subs > 0)
	subs   int64
	events []*mvccpb.Event
	ops    opCounts
}

// Group starts a group of write transactions (see WriteGroup). It waits
// for any other group's Commit.
func (s *Store) Group() *WriteGroup {
	s.writeMu.Lock()
	g := s.spareGroup
	if g == nil {
		g = &WriteGroup{}
	} else {
		s.spareGroup = nil
	}
	s.initGroup(g)
	return g
}

func (s *Store) startGroup(g *WriteGroup) {
	s.writeMu.Lock()
	s.initGroup(g)
}

func (s *Store) initGroup(g *WriteGroup) {
	s.mu.RLock()
	g.changedFrom, g.compact = s.mu.currentRev+1, s.mu.compactRev
	s.mu.RUnlock()
	g.s, g.batch = s, s.b.NewBatch()
	if cap(g.ended) == 0 {
		g.ended, g.changed = g.endedFirst[:0], g.changedFirst[:0]
	}
}

// Write starts the group's next write transaction. The one before must
// have ended.
func (g *WriteGroup) Write() *TxnWrite {
	tw := &TxnWrite{}
	g.startTxn(tw)
	return tw
}

func (g *WriteGroup) startTxn(tw *TxnWrite) {
	if g.open != nil || g.batch == nil {
		panic("mvcc: a write transaction started in a group with one open, or committed")
	}
	g.open = tw
	rev := g.changedFrom + int64(len(g.changed))
	*tw = TxnWrite{s: g.s, batch: g.batch, g: g, rev: rev, compact: g.compact}
	tw.changes = pendingKVs{main: tw.rev, kvs: tw.first[:0], earlier: g}
}

// readView returns the group's read view, opening it.
func (g *WriteGroup) readView() *backend.ReadView {
	if g.view == nil {
		g.view = g.s.b.NewReadView()
	}
	return g.view
}

// Len is how many transactions the group has ended.
func (g *WriteGroup) Len() int { return len(g.ended) }

// Commit commits the group's transactions, recording that they apply the
// raft entries up to (index, term), and tells the watchers of each, in
// order. The group cannot be used after.
//
// A failure leaves the index ahead of the backend: the caller must treat
// it as fatal (the server exits and replays from its WAL).
func (g *WriteGroup) Commit(index, term uint64) error {
	if g.open != nil {
		panic("mvcc: a group committed with a transaction open")
	}
	s := g.s
	defer g.release()
	if err := g.batch.Commit(index, term); err != nil {
		return err
	}
	for _, t := range g.ended {
		s.metrics.add(t.ops)
		if t.subs == 0 {
			continue
		}
		s.mu.Lock()
		s.mu.currentRev = t.rev
		s.mu.Unlock()
		if s.notify != nil {
			// Still under writeMu: notifications come in revision order.
			s.notify(t.rev, t.events)
		}
	}
	return nil
}

// Abort ends the group without committing it, after a failure the caller
// treats as fatal: the index may hold revisions the backend does not.
func (g *WriteGroup) Abort() {
	if g.batch != nil {
		g.batch.Close()
		g.release()
	}
}

func (g *WriteGroup) release() {
	if g.view != nil {
		g.view.Close()
	}
	s, solo := g.s, g.solo
	clear(g.ended)
	clear(g.changed)
	*g = WriteGroup{ended: g.ended[:0], changed: g.changed[:0]}
	if !solo && s.spareGroup == nil {
		// Kept for the next Group, with its slices (not Store.Write's,
		// which shares its allocation with the transaction).
		s.spareGroup = g
	}
	s.writeMu.Unlock()
}

// pendingKVs are a write transaction's KeyValues: kvs[sub] is the one
// written at revision (main, sub). A map by revision cost a put 20% of
// what a follower allocated per entry.
type pendingKVs struct {
	main int64
	kvs  []*mvccpb.KeyValue
	// earlier, if set, is the group whose ended transactions wrote the
	// revisions below main not yet committed.
	earlier *WriteGroup
}

// get returns the KeyValue written at rev, if any. p may be nil.
func (p *pendingKVs) get(rev Revision) (*mvccpb.KeyValue, bool) {
	kvs := p.at(rev.Main)
	if rev.Sub < 0 || rev.Sub >= int64(len(kvs)) {
		return nil, false
	}
	return kvs[rev.Sub], true
}

// at returns the KeyValues written at main revision main, if pending.
func (p *pendingKVs) at(main int64) []*mvccpb.KeyValue {
	switch {
	case p == nil:
		return nil
	case main == p.main:
		return p.kvs
	case p.earlier != nil && main >= p.earlier.changedFrom && main < p.main:
		return p.earlier.changed[main-p.earlier.changedFrom]
	}
	return nil
}

// Rev returns the revision the transaction's reads see: its own if it has
// changed something, else the store's.
func (tw *TxnWrite) Rev() int64 {
	if tw.subs > 0 {
		return tw.rev
	}
	return tw.rev - 1
}

// Range reads, seeing the transaction's own writes: its Rev is the
// transaction's (as in etcd, the revision it will have once it ends).
func (tw *TxnWrite) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	if tw.view == nil {
		tw.view = tw.g.readView()
	}
	return tw.s.rangeAt(tw.view, &tw.changes, key, end, opts, tw.Rev(), tw.compact)
}

// Put sets key to value, attached to lease (0 for none). It copies key
// and value.
func (tw *TxnWrite) Put(key, value []byte, lease int64) {
	tw.put(bytes.Clone(key), bytes.Clone(value), lease)
}

// put is Put keeping key and value, which the caller must never modify
// afterwards: the KeyValue holding them goes to watchers. A request
// decoded from a raft entry has bytes nothing modifies (a large value
// shares the entry's), so a value is not copied once more.
func (tw *TxnWrite) put(key, value []byte, lease int64) {
	rev := Revision{Main: tw.rev, Sub: tw.subs}
	// One walk of the index: the key's history so far (its own earlier
	// puts in this transaction included) gives the creation revision and
	// version.
	created, ver := tw.s.index.put(key, rev)
	if ver == 1 {
		tw.s.keys.Add(1) // a new life
	}
	tw.write(rev, &mvccpb.KeyValue{Key: key, Value: value, Lease: lease, ModRevision: rev.Main,
		CreateRevision: created, Version: ver}, false)
}

// DeleteRange deletes the keys in a range (as for Range) and returns the
// KeyValues deleted, as they were.
func (tw *TxnWrite) DeleteRange(key, end []byte) ([]*mvccpb.KeyValue, error) {
	res, err := tw.Range(key, end, RangeOptions{Rev: tw.Rev()})
	if err != nil {
		return nil, err
	}
	for _, kv := range res.KVs {
		rev := Revision{Main: tw.rev, Sub: tw.subs}
		tw.write(rev, &mvccpb.KeyValue{Key: kv.Key}, true)
		tw.s.index.tombstone(kv.Key, rev)
	}
	tw.s.keys.Add(-int64(len(res.KVs)))
	return res.KVs, nil
}

func (tw *TxnWrite) write(rev Revision, kv *mvccpb.KeyValue, tombstone bool) {
	// Encoded into the batch: a large value is copied once here, not
	// into an encoding and then into the batch.
	n := sizeKV(kv)
	tw.batch.SetEncoded(revisionKey(rev, tombstone), n, func(dst []byte) {
		if b := appendKV(dst[:0], kv); invariants.Enabled && (len(b) != n || len(b) > 0 && &b[0] != &dst[0]) {
			panic(fmt.Sprintf("mvcc: KeyValue encoded to %d bytes, sized %d", len(b), n))
		}
	})
	if invariants.Enabled && (rev.Main != tw.changes.main || rev.Sub != int64(len(tw.changes.kvs))) {
		panic(fmt.Sprintf("mvcc: write at %v in a transaction at %d with %d changes", rev, tw.changes.main, len(tw.changes.kvs)))
	}
	tw.changes.kvs = append(tw.changes.kvs, kv)
	tw.subs++
	ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: kv}
	if tombstone {
		ev = &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: rev.Main}}
	}
	tw.events = append(tw.events, ev)
}

// Events are the transaction's changes so far, in order (for the lessor,
// which follows which keys each lease holds). They must not be modified.
func (tw *TxnWrite) Events() []*mvccpb.Event { return tw.events }

// SetMeta and DeleteMeta write outside the store's key spaces ('r', 'm')
// in the transaction's batch, so that state kept beside the store (lease
// records) commits atomically with it.
func (tw *TxnWrite) SetMeta(key, value []byte) {
	checkMetaKey(key)
	tw.batch.Set(key, value)
}

// DeleteMeta: see SetMeta.
func (tw *TxnWrite) DeleteMeta(key []byte) {
	checkMetaKey(key)
	tw.batch.Delete(key)
}

func checkMetaKey(key []byte) {
	if len(key) == 0 || key[0] == 'r' || key[0] == 'm' || key[0] == 0 {
		panic(fmt.Sprintf("mvcc: %q is in the store's own key space", key))
	}
}

// End ends the transaction and returns the store's revision after it. A
// transaction alone in its group (Store.Write) is committed, recording
// that it applies the raft entry at (index, term); one of a group is
// committed with the group (index and term unused).
//
// A failure leaves the index ahead of the backend: the caller must treat
// it as fatal (the server exits and replays from its WAL).
func (tw *TxnWrite) End(index, term uint64) (int64, error) {
	g := tw.g
	if g == nil || g.open != tw {
		panic("mvcc: End of a transaction not open in its group")
	}
	g.open = nil
	g.ended = append(g.ended, endedTxn{rev: tw.rev, subs: tw.subs, events: tw.events, ops: tw.ops})
	if tw.subs > 0 {
		g.changed = append(g.changed, tw.changes.kvs)
	}
	rev := tw.Rev()
	if g.solo {
		return rev, g.Commit(index, term)
	}
	return rev, nil
}

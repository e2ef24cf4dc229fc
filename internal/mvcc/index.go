package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/google/btree"

	"github.com/cairn-db/cairn/internal/invariants"
)

// generation is one life of a key: the revisions from the put that created
// it to the delete that ended it, if one has.
type generation struct {
	// created is the main revision of the put that began this life (a
	// KeyValue's CreateRevision). It survives compaction even when that
	// put's revision is gone from revs.
	created int64
	// ver counts the puts in this life, compacted ones included, so the
	// version of revs[i] can still be computed after compaction.
	ver int64
	// revs are this life's revisions that compaction kept, oldest first;
	// never empty. If the life has ended (keyIndex.tombstoned), the last
	// is the delete. (Whether it has is not kept here: only the last life
	// can be going on, and history.deleted says whether it is.)
	revs []Revision
}

// latestAt returns the index in revs of the latest revision at or below
// main revision at, or -1 if the life began after at.
func (g *generation) latestAt(at int64) int {
	i := len(g.revs) - 1
	for i >= 0 && g.revs[i].Main > at {
		i--
	}
	return i
}

// version returns the key's version at revs[i], a put; tombstoned says
// whether the life has ended.
func (g *generation) version(i int, tombstoned bool) int64 {
	after := len(g.revs) - 1 - i // changes after revs[i]
	if tombstoned {
		after-- // the delete is not a put
	}
	return g.ver - int64(after)
}

// keyIndex is one key's history, as generations. A worked example:
//
//	put(2.0) put(3.0) delete(4.0) put(5.0)
//	    {created 2, ver 2, revs [2.0 3.0 4.0], tombstoned}
//	    {created 5, ver 1, revs [5.0]}
//	get(1) -> none (not created yet)     get(3) -> 3.0, created 2, version 2
//	get(4) -> none (deleted at 4)        get(9) -> 5.0, created 5, version 1
//	compact(3): the first life is still going at 3: keep from the latest
//	    revision at or below 3 (3.0, whose value reads at 3 need)
//	    {created 2, ver 2, revs [3.0 4.0], tombstoned} {created 5, ...}
//	compact(4): the first life ended at 4 exactly: its delete stays, so
//	    that a watch from 4 still sees it (etcd-io/etcd#18089)
//	    {created 2, ver 2, revs [4.0], tombstoned} {created 5, ...}
//	compact(5): now it is gone
//	    {created 5, ver 1, revs [5.0]}
//
// Most keys, most of the time, have one life going on with one revision
// kept: put once, or compacted since their last change. Those are kept in
// a short form, the keyIndex alone (64 bytes): last, created and ver are
// that life, hist is nil. Any other history is in hist (the long form).
// With the long form only, a key put once took a keyIndex, a generation
// and a revs array: 128 bytes, twice as much, and three objects for the
// garbage collector instead of one.
type keyIndex struct {
	key []byte
	// last is the key's latest change: the last revision of the last
	// generation, in either form. Compaction never removes it, so only put
	// and tombstone change it. Counting a range (aliveAt) reads nothing
	// else for a key unchanged since the revision read. Main 0: no history
	// yet (a keyIndex just made, not yet in the tree).
	last Revision
	// created and ver are the short form's generation (see generation);
	// zero in the long form.
	created, ver int64
	// hist is the long form, nil in the short.
	hist *history
}

// newKeyIndex returns an empty keyIndex for a copy of key, the copy in the
// same allocation as the keyIndex when key is at most 192 bytes: a lookup
// in the tree compares the key with a keyIndex at each step, and reading
// its key then costs one cache miss rather than two (a put of an existing
// key among 1M: BenchmarkIndexPut). Each buffer fills a Go size class, so
// the object is never larger than a keyIndex and a separate copy were
// (keys of 8 bytes or less aside: 80 bytes against 64 + 8).
func newKeyIndex(key []byte) *keyIndex {
	switch n := len(key); {
	case n <= 16:
		return newKeyIndexIn[[16]byte](key)
	case n <= 32:
		return newKeyIndexIn[[32]byte](key)
	case n <= 48:
		return newKeyIndexIn[[48]byte](key)
	case n <= 64:
		return newKeyIndexIn[[64]byte](key)
	case n <= 96:
		return newKeyIndexIn[[96]byte](key)
	case n <= 128:
		return newKeyIndexIn[[128]byte](key)
	case n <= 192:
		return newKeyIndexIn[[192]byte](key)
	}
	return &keyIndex{key: bytes.Clone(key)}
}

// keyIndexWith is a keyIndex and the buffer B (a byte array) its key is
// copied into.
type keyIndexWith[B any] struct {
	keyIndex
	b B
}

// newKeyIndexIn returns a keyIndex whose key is copied into its own
// buffer B, which must be a byte array of len(key) bytes or more.
func newKeyIndexIn[B any](key []byte) *keyIndex {
	o := new(keyIndexWith[B])
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&o.b)), unsafe.Sizeof(o.b))
	o.key = buf[:copy(buf, key):len(key)]
	return &o.keyIndex
}

// history is a key's history in the long form (see keyIndex).
type history struct {
	// gens are oldest first. Every one but the last has ended
	// (tombstoned). Invariant: not empty.
	gens []generation
	// deleted says whether the last generation has ended too, in the
	// delete at keyIndex.last.
	deleted bool
}

// empty reports whether the key has no history yet.
func (ki *keyIndex) empty() bool { return ki.last.Main == 0 }

// deleted reports whether the key's latest change was a delete.
func (ki *keyIndex) deleted() bool { return ki.hist != nil && ki.hist.deleted }

// alive reports whether the key exists at its latest change.
func (ki *keyIndex) alive() bool { return !ki.empty() && !ki.deleted() }

// lives returns the key's generations, oldest first: hist's, or in the
// short form one built in buf over ki.last. The caller must not modify
// them, nor keep them past the index's lock.
func (ki *keyIndex) lives(buf *[1]generation) []generation {
	switch {
	case ki.hist != nil:
		return ki.hist.gens
	case ki.empty():
		return nil
	}
	buf[0] = generation{created: ki.created, ver: ki.ver, revs: unsafe.Slice(&ki.last, 1)}
	return buf[:]
}

// long returns the key's history in the long form, converting the short.
func (ki *keyIndex) long() *history {
	if ki.hist == nil {
		ki.hist = &history{}
		if !ki.empty() {
			ki.hist.gens = []generation{{created: ki.created, ver: ki.ver, revs: []Revision{ki.last}}}
		}
		ki.created, ki.ver = 0, 0
	}
	return ki.hist
}

// shorten puts the key's history in the short form if it fits: one life,
// going on, one revision kept.
func (ki *keyIndex) shorten() {
	h := ki.hist
	if h == nil || h.deleted || len(h.gens) != 1 || len(h.gens[0].revs) != 1 {
		return
	}
	g := &h.gens[0]
	ki.created, ki.ver, ki.hist = g.created, g.ver, nil
}

// check panics if the key's forms disagree (invariants builds only).
func (ki *keyIndex) check() {
	if !invariants.Enabled || ki.empty() {
		return
	}
	if h := ki.hist; h != nil {
		g := &h.gens[len(h.gens)-1]
		if last := g.revs[len(g.revs)-1]; last != ki.last || ki.created != 0 || ki.ver != 0 {
			panic(fmt.Sprintf("mvcc: key %q: last %s, created %d, ver %d, but its last revision is %s",
				ki.key, ki.last, ki.created, ki.ver, last))
		}
	} else if ki.ver < 1 || ki.created > ki.last.Main {
		panic(fmt.Sprintf("mvcc: key %q: short form with last %s, created %d, ver %d", ki.key, ki.last, ki.created, ki.ver))
	}
}

// aliveAt reports whether the key existed at main revision at (get's ok).
func (ki *keyIndex) aliveAt(at int64) bool {
	ki.check()
	if at >= ki.last.Main {
		return !ki.deleted()
	}
	_, _, _, ok := ki.get(at)
	return ok
}

// tombstoned reports whether life gi of gens (ki.lives) has ended in a
// delete.
func (ki *keyIndex) tombstoned(gens []generation, gi int) bool {
	return gi < len(gens)-1 || ki.deleted()
}

// put records a put at rev and returns the key's creation revision and
// version after it: what the put's KeyValue says.
func (ki *keyIndex) put(rev Revision) (created, ver int64) {
	if invariants.Enabled && !ki.last.Less(rev) {
		panic(fmt.Sprintf("mvcc: put of %q at %s after %s", ki.key, rev, ki.last))
	}
	if ki.empty() {
		ki.last, ki.created, ki.ver = rev, rev.Main, 1
		return ki.created, ki.ver
	}
	h := ki.long()
	if h.deleted {
		h.gens = append(h.gens, generation{created: rev.Main})
		h.deleted = false
	}
	g := &h.gens[len(h.gens)-1]
	g.revs = append(g.revs, rev)
	g.ver++
	ki.last = rev
	return g.created, g.ver
}

func (ki *keyIndex) tombstone(rev Revision) {
	if !ki.alive() {
		panic(fmt.Sprintf("mvcc: delete of %q, which is not alive", ki.key))
	}
	h := ki.long()
	g := &h.gens[len(h.gens)-1]
	g.revs = append(g.revs, rev)
	h.deleted = true
	ki.last = rev
}

// get returns the key's latest put at or below main revision at, with the
// main revision of its creation and its version; ok is false if the key
// did not exist at at.
func (ki *keyIndex) get(at int64) (mod Revision, created, ver int64, ok bool) {
	if ki.hist == nil {
		if ki.empty() || at < ki.last.Main {
			return Revision{}, 0, 0, false
		}
		return ki.last, ki.created, ki.ver, true
	}
	gens := ki.hist.gens
	for gi := len(gens) - 1; gi >= 0; gi-- {
		g := &gens[gi]
		i := g.latestAt(at)
		if i < 0 {
			continue
		}
		tombstoned := ki.tombstoned(gens, gi)
		if tombstoned && i == len(g.revs)-1 {
			return Revision{}, 0, 0, false // deleted by then
		}
		return g.revs[i], g.created, g.version(i, tombstoned), true
	}
	return Revision{}, 0, 0, false
}

// compact drops what reads at or after main revision at no longer need,
// and adds to keep the revisions at or below at that they still do. It
// reports whether the key has no history left.
func (ki *keyIndex) compact(at int64, keep map[Revision]struct{}) (empty bool) {
	if ki.hist == nil {
		// One life going on with one revision: nothing to drop.
		if ki.last.Main <= at {
			keep[ki.last] = struct{}{}
		}
		return false
	}
	h := ki.hist
	// Lives that ended before at are gone. One that ended at at keeps its
	// delete, for watchers starting there.
	n := 0
	for n < len(h.gens) && ki.tombstoned(h.gens, n) && h.gens[n].revs[len(h.gens[n].revs)-1].Main < at {
		n++
	}
	h.gens = h.gens[n:]
	if len(h.gens) == 0 {
		return true
	}
	// In each life begun by at (the one going on at at; a life ended at at
	// exactly; and one begun again in that same revision, after a delete
	// earlier in it), only its latest revision at or below at is read.
	for gi := range h.gens {
		g := &h.gens[gi]
		i := g.latestAt(at)
		if i < 0 {
			break
		}
		g.revs = g.revs[i:]
		keep[g.revs[0]] = struct{}{}
	}
	ki.shorten()
	return false
}

// treeIndex maps every key with history to its keyIndex, in key order.
// It is safe for concurrent use.
//
// Beside the tree, keys finds a key without walking it: a put, a delete
// or a single-key read looks the key up there. In a tree of 100k keys a
// walk compares the key with about seventeen others, each a cache miss or
// two: 14% of the leader's CPU under etcd's txn-put benchmark (4 puts to
// 100k keys), 1.7 us a put in BenchmarkIndexPut against 0.9 with the
// table, and 4.1 against 1.8 among 1M keys.
type treeIndex struct {
	mu sync.RWMutex
	// writers counts the writers waiting for mu (see lock): a range's
	// walk lets go of its read lock between chunks only when one is.
	writers atomic.Int32
	// compacting is held by compact over each chunk, and shared by a read
	// that a compaction must not cut (holdCompactions). Lock order:
	// compacting, then mu.
	compacting sync.RWMutex
	tree       *btree.BTreeG[*keyIndex]
	// keys holds every keyIndex of the tree, by key.
	// Invariant: keys.n == tree.Len().
	keys keyTable
}

func newTreeIndex() *treeIndex {
	return &treeIndex{
		tree: btree.NewG(32, func(a, b *keyIndex) bool { return bytes.Compare(a.key, b.key) < 0 }),
		keys: newKeyTable(),
	}
}

// getOrInsertLocked returns key's index entry, adding an empty one if
// there is none. REQUIRES: ti.mu held for writing.
func (ti *treeIndex) getOrInsertLocked(key []byte) *keyIndex {
	ki := ti.keys.get(key)
	if ki == nil {
		ki = newKeyIndex(key)
		ti.tree.ReplaceOrInsert(ki)
		ti.keys.insert(ki)
		ti.checkLocked()
	} else {
		ti.keys.step() // a growing table's move goes on with every write
	}
	return ki
}

// checkLocked checks that the tree and the table hold as many keys
// (invariants builds). REQUIRES: ti.mu held.
func (ti *treeIndex) checkLocked() {
	if invariants.Enabled && ti.keys.n != ti.tree.Len() {
		panic(fmt.Sprintf("mvcc: the index's tree holds %d keys and its table %d", ti.tree.Len(), ti.keys.n))
	}
}

// lock takes ti.mu for writing, counted in ti.writers while it waits.
func (ti *treeIndex) lock() {
	ti.writers.Add(1)
	ti.mu.Lock()
	ti.writers.Add(-1)
}

// put records a put of key at rev and returns the key's creation revision
// and version after it (see keyIndex.put).
func (ti *treeIndex) put(key []byte, rev Revision) (created, ver int64) {
	ti.lock()
	defer ti.mu.Unlock()
	return ti.getOrInsertLocked(key).put(rev)
}

// indexRestorer rebuilds an index from the revisions read back from the
// backend on a restart, in revision order. It groups them by key in a map
// and then inserts the keys into the tree in key order: inserted in the
// order they come (unrelated to the keys' order), each lookup in the tree
// compares with keys all over memory, a cache miss each, and 1M keys took
// 6 s; grouped and sorted, 4.2 s (BenchmarkRestart1M, one run).
type indexRestorer struct {
	// keys maps a key (sharing its bytes with keyIndex.key, never
	// modified) to its history so far.
	keys map[string]*keyIndex
	// leases maps each key alive so far whose latest put names a lease
	// to that lease (shares keys' strings).
	leases map[string]int64
}

func newIndexRestorer() *indexRestorer {
	return &indexRestorer{keys: map[string]*keyIndex{}, leases: map[string]int64{}}
}

// get returns key's history so far, and the key as a string that shares
// the history's bytes.
func (r *indexRestorer) get(key []byte) (*keyIndex, string) {
	if ki, ok := r.keys[string(key)]; ok {
		return ki, keyString(ki.key)
	}
	ki := newKeyIndex(key)
	name := keyString(ki.key)
	r.keys[name] = ki
	return ki, name
}

// keyString is b as a string sharing its bytes, which must never change.
func keyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// put records a put read back: the KeyValue stored with it says when the
// key was created, its version, which the puts before it (perhaps
// compacted away) no longer can, and its lease (0 for none).
func (r *indexRestorer) put(key []byte, rev Revision, created, ver, lease int64) {
	ki, name := r.get(key)
	if lease != 0 {
		r.leases[name] = lease
	} else if len(r.leases) > 0 {
		delete(r.leases, name)
	}
	ki.put(rev)
	ki.setLife(created, ver)
}

// setLife sets the creation revision and version of the key's last life,
// in either form: a put read back says them, where the puts before it
// may have been compacted away.
func (ki *keyIndex) setLife(created, ver int64) {
	if h := ki.hist; h != nil {
		g := &h.gens[len(h.gens)-1]
		g.created, g.ver = created, ver
		return
	}
	ki.created, ki.ver = created, ver
}

// tombstone records a delete read back. The key may have no life to end:
// a compaction removed the puts before it, either keeping the delete on
// purpose (it was at the compaction revision) or because a crash
// interrupted the removal. The delete is then a life of its own; the
// compaction Open runs next drops it unless it is at the compaction
// revision (etcd-io/etcd#19179).
func (r *indexRestorer) tombstone(key []byte, rev Revision) {
	ki, name := r.get(key)
	if len(r.leases) > 0 {
		delete(r.leases, name)
	}
	if ki.alive() {
		ki.tombstone(rev)
		return
	}
	h := ki.long()
	h.gens = append(h.gens, generation{created: rev.Main, revs: []Revision{rev}})
	h.deleted = true
	ki.last = rev
}

// build inserts every key recorded into ti, which must be empty, in key
// order, and forgets them. It returns how many of them are alive (at the
// latest revision read).
func (r *indexRestorer) build(ti *treeIndex) (alive int64) {
	type item struct {
		key []byte
		ki  *keyIndex
	}
	items := make([]item, 0, len(r.keys))
	for _, ki := range r.keys {
		items = append(items, item{ki.key, ki})
		if ki.alive() {
			alive++
		}
	}
	r.keys = nil
	// Two halves sorted at once (a second core, where there is one),
	// merged as they go into the tree. The keys are distinct.
	cmp := func(a, b item) int { return bytes.Compare(a.key, b.key) }
	half := len(items) / 2
	if len(items) < 1<<14 {
		half = 0
	}
	var wg sync.WaitGroup
	wg.Go(func() { slices.SortFunc(items[:half], cmp) })
	slices.SortFunc(items[half:], cmp)
	wg.Wait()
	ti.lock()
	defer ti.mu.Unlock()
	if ti.tree.Len() != 0 {
		panic("mvcc: index restored into a non-empty index")
	}
	ti.keys.reserve(len(items))
	a, b := items[:half], items[half:]
	for len(a) > 0 || len(b) > 0 {
		var next item
		if len(b) == 0 || len(a) > 0 && cmp(a[0], b[0]) < 0 {
			next, a = a[0], a[1:]
		} else {
			next, b = b[0], b[1:]
		}
		ti.tree.ReplaceOrInsert(next.ki)
		ti.keys.insert(next.ki)
	}
	ti.checkLocked()
	return alive
}

// tombstone records a delete of key, which must be alive, at rev.
func (ti *treeIndex) tombstone(key []byte, rev Revision) {
	ti.lock()
	defer ti.mu.Unlock()
	ki := ti.keys.get(key)
	if ki == nil {
		panic(fmt.Sprintf("mvcc: delete of %q, which has no history", key))
	}
	ti.keys.step()
	ki.tombstone(rev)
}

// get looks key up at main revision at.
func (ti *treeIndex) get(key []byte, at int64) (mod Revision, created, ver int64, ok bool) {
	ti.mu.RLock()
	defer ti.mu.RUnlock()
	ki := ti.keys.get(key)
	if ki == nil {
		return Revision{}, 0, 0, false
	}
	return ki.get(at)
}

// indexEntry is a key alive at some revision, as a range finds it.
type indexEntry struct {
	key     []byte // shared with the index: do not modify
	mod     Revision
	created int64 // main revision
	ver     int64
}

// rangeKeys calls fn, in key order, for each key in the range that was
// alive at main revision at, until fn returns false (see rangeCount).
func (ti *treeIndex) rangeKeys(key, end []byte, at int64, fn func(indexEntry) bool) {
	ti.rangeCount(key, end, at, math.MaxInt, fn)
}

// rangeCount walks the keys in the range alive at main revision at, in key
// order. The range is a single key if end is empty, every key from key on
// if end is "\x00", else [key, end). fn gets the first n keys, until it
// returns false, which ends the walk; the rest are only counted (fn is
// never called when n is 0). It returns how many it found, fn's included.
// Counting a key unchanged since at reads only its keyIndex (see
// aliveAt): a Range with a limit counts all the keys it does not return,
// as etcd's does.
//
// fn runs under ti.mu held for reading, which the walk takes, and lets go
// of after any rangeChunk keys when a writer waits for it (and so fn must
// not call the index): a count over 1M keys held it 63 ms, and every
// write waited for it. The walk then goes on from the first key it has
// not visited, found again by key.
//
// A walk of a revision at or below the current one when it began, and at
// or above every compaction that runs meanwhile, finds the same as one
// under the lock throughout: writes add revisions above the current one
// (a key they add is not alive at the walk's revision), and a compaction
// at or below the walk's revision removes only keys not alive there and
// changes no key's life at it. It may visit a key added meanwhile, never
// one twice. The caller checks the compaction revision after the walk, or
// holds compactions off (holdCompactions). (A write transaction reads
// above the current revision, its own, but holds the store's writeMu: no
// other write and no compaction begins meanwhile.)
func (ti *treeIndex) rangeCount(key, end []byte, at int64, n int, fn func(indexEntry) bool) (count int64) {
	ti.mu.RLock()
	defer ti.mu.RUnlock()
	if len(end) == 0 {
		if ki := ti.keys.get(key); ki != nil {
			if mod, created, ver, ok := ki.get(at); ok {
				count++
				if n > 0 {
					fn(indexEntry{key: ki.key, mod: mod, created: created, ver: ver})
				}
			}
		}
		return count
	}
	for from := key; ; {
		last, ok := ti.lastBefore(from, end)
		if !ok {
			return count
		}
		var next []byte // the first key not visited when the walk let go
		left := rangeChunk
		// One function per key, which does it all: a count over many
		// keys costs about 15 ns a key, and a second call 2-3 more.
		ti.tree.AscendGreaterOrEqual(&keyIndex{key: from}, func(ki *keyIndex) bool {
			if left == 0 {
				if ti.writers.Load() > 0 {
					next = ki.key // keys are never modified
					return false
				}
				left = rangeChunk
			}
			left--
			if count >= int64(n) {
				if ki.aliveAt(at) {
					count++
				}
			} else if mod, created, ver, ok := ki.get(at); ok {
				count++
				if !fn(indexEntry{key: ki.key, mod: mod, created: created, ver: ver}) {
					return false // next is nil: the walk ends
				}
			}
			return ki != last
		})
		if next == nil {
			return count
		}
		ti.mu.RUnlock()
		ti.mu.RLock()
		from = next
	}
}

// lastBefore returns the last key of [from, end) (ok false if there is
// none), or nil and true when end is "\x00", every key from from on: a
// walk stops at it by identity. AscendRange would compare every key with
// end, which reads each key's bytes: for a count over many keys that was
// most of the cost. REQUIRES: ti.mu held.
func (ti *treeIndex) lastBefore(from, end []byte) (last *keyIndex, ok bool) {
	if len(end) == 1 && end[0] == 0 {
		return nil, true
	}
	ti.tree.DescendLessOrEqual(&keyIndex{key: end}, func(ki *keyIndex) bool {
		if bytes.Equal(ki.key, end) {
			return true
		}
		last = ki
		return false
	})
	return last, last != nil && bytes.Compare(last.key, from) >= 0
}

// compact compacts every key at main revision at (see keyIndex.compact)
// and returns the revisions at or below at that reads still need.
//
// It takes the lock (and compacting) compactChunk keys at a time, walking
// a copy of the tree (a B-tree clone is copy-on-write, so cheap), so that
// reads and writes go on meanwhile: a million keys take about a second.
// That is safe because compacting a key changes nothing a read at or after
// at can see, and writes only add revisions above at.
func (ti *treeIndex) compact(at int64) map[Revision]struct{} {
	keep := map[Revision]struct{}{}
	ti.compacting.Lock()
	ti.lock()
	snapshot := ti.tree.Clone()
	n := 0
	snapshot.Ascend(func(ki *keyIndex) bool {
		if n > 0 && n%compactChunk == 0 {
			ti.mu.Unlock()
			ti.compacting.Unlock()
			ti.compacting.Lock()
			ti.lock()
		}
		n++
		// Only this walk removes keys, so ki is still the tree's; check
		// anyway rather than delete another keyIndex of the same key.
		if ki.compact(at, keep) {
			if ti.keys.get(ki.key) == ki {
				ti.tree.Delete(ki)
				ti.keys.delete(ki)
				ti.checkLocked()
			}
		}
		return true
	})
	ti.mu.Unlock()
	ti.compacting.Unlock()
	return keep
}

// holdCompactions keeps compact from changing the index until the
// returned function is called: a read under it that began at or above
// every compaction scheduled so far cannot be cut (see rangeCount), and
// writes go on.
func (ti *treeIndex) holdCompactions() (release func()) {
	ti.compacting.RLock()
	return ti.compacting.RUnlock
}

// compactChunk is how many keys compact compacts under one hold of the
// lock. Taking it for each key, a compaction waited once per key for the
// reads under way: with two readers counting 8.7k keys over and over
// (TestRangeCountWhileWritingAndCompacting), a compaction of those keys
// took about half a second.
const compactChunk = 256

// readChunk is how many keys a walk of the whole index (ascendInChunks)
// reads under one hold of the read lock.
const readChunk = 1024

// rangeChunk is how many keys a range's walk (rangeCount) reads between
// two looks at whether a writer waits: 4-15 us of counting. A writer waits
// for the walks under way to reach their next look (and the walks that
// begin meanwhile for it), so a chunk is short. Letting go costs a walk
// two descents of the tree, about 0.6 us; it lets go only for a writer:
// letting go after every 1,024 keys cost a count 5%. Under 4 readers
// counting 400k keys each and 10 writers, letting go after every 4,096
// keys made each read wait for the others' chunks at every write, and
// the reads took 160 ms against 108 under the lock throughout.
const rangeChunk = 256

// ascendInChunks calls fn for every key of the tree as it is now, in key
// order, holding ti.mu for reading over readChunk keys at a time, so that
// a write waits for one chunk, not for the whole walk (a walk of 1M keys
// held it 370-680 ms). It walks a copy of the tree, as compact does: a key
// added meanwhile is not visited, and a key compacted meanwhile is visited
// as it is then (a compacted-away key has no lives left). fn runs under
// the read lock.
//
// A walk that reads only revisions at or below a revision it was given
// sees the same as one under the lock throughout: writes add revisions
// above the current one, and what a compaction removes the callers check
// for (HashKV reads the compaction revision again after, and keptAt's
// answer does not depend on whether its compaction has run).
func (ti *treeIndex) ascendInChunks(fn func(ki *keyIndex)) {
	ti.lock() // Clone marks the tree's nodes shared: a write
	snapshot := ti.tree.Clone()
	ti.mu.Unlock()
	n := 0
	ti.mu.RLock()
	snapshot.Ascend(func(ki *keyIndex) bool {
		if n++; n%readChunk == 0 {
			ti.mu.RUnlock()
			ti.mu.RLock()
		}
		fn(ki)
		return true
	})
	ti.mu.RUnlock()
}

// keptAt returns the revisions at or below main revision at that a
// compaction at at keeps (see keyIndex.compact), without compacting:
// the same whether the index has been compacted at at yet or not.
func (ti *treeIndex) keptAt(at int64) map[Revision]struct{} {
	keep := map[Revision]struct{}{}
	ti.ascendInChunks(func(ki *keyIndex) {
		// The lives not over before at, as compact finds them.
		var buf [1]generation
		gens := ki.lives(&buf)
		for gi, g := range gens {
			if ki.tombstoned(gens, gi) && g.revs[len(g.revs)-1].Main < at {
				continue
			}
			i := g.latestAt(at)
			if i < 0 {
				break
			}
			keep[g.revs[i]] = struct{}{}
		}
	})
	return keep
}

// hashKeep returns etcd's Keep(at), which its HashKV filters compacted
// revisions with: per key, the latest revision at or below main revision
// at of the first life not over before at, unless it is that life's
// delete. Unlike keptAt it leaves out a delete at at, and looks at one
// life only, as etcd's index does (keptAt also keeps a life begun again
// at at by a transaction that deletes a key and puts it back).
func (ti *treeIndex) hashKeep(at int64) map[Revision]struct{} {
	keep := map[Revision]struct{}{}
	ti.ascendInChunks(func(ki *keyIndex) {
		var buf [1]generation
		gens := ki.lives(&buf)
		for gi, g := range gens {
			tombstoned := ki.tombstoned(gens, gi)
			if tombstoned && g.revs[len(g.revs)-1].Main < at {
				continue
			}
			if i := g.latestAt(at); i >= 0 && !(tombstoned && i == len(g.revs)-1) {
				keep[g.revs[i]] = struct{}{}
			}
			break
		}
	})
	return keep
}

package mvcc

import (
	"bytes"
	"fmt"
	"hash/maphash"

	"github.com/cairn-db/cairn/internal/invariants"
)

// keyTable finds a keyIndex by its key without walking the tree: an
// open-addressing hash table with linear probing, a power of two slots,
// and a one-byte tag per slot beside them. A lookup probes the tags from
// the key's home slot (its hash's low bits) to the first empty one and
// compares the key only where the tag (the hash's top seven bits, top bit
// set) matches: about 2.5 tags and one key for a key present, at the
// most load allowed.
//
//	hash(key) = 0x9e..3a7     home = hash & mask     tag = 0x80 | hash>>57
//	tags  [ 0 | 0xcf | 0x9e | 0xb1 | 0 | ... ]   0: empty
//	slots [ - |  ki  |  ki  |  ki  | - | ... ]
//
// It takes 9 bytes a slot and at most three quarters of its slots are
// full: 12-24 bytes a key. Go's map[uint64]*keyIndex took 17 a slot at
// up to seven eighths, 19-39 a key (38 at 1M keys). A delete moves the
// entries after it back (no tombstones, but in a growing table's old
// part, below), reading their keys to hash them again; only compaction
// deletes.
//
// Growing hashes every key again, a few at a time: an insert that finds
// the table three quarters full starts a table of twice the slots and
// keeps the old one beside it, and every insert and delete after, and
// every put or delete of a key the table holds (the index calls step),
// moves the entries of the next growStep old slots into the new table. Done at
// once, under the index's lock, the move stalled every read and write of
// the store: 13 ms at 49k keys, 27 ms at 98k, 350 ms at 786k (2026-12-05).
// While a move is under way (old.tags != nil):
//
//	old   [ moved: copied into new, never read | not yet moved: live ]
//	       0                                  old.moved             len
//	new   [ the keys moved so far and every key inserted since ]
//
// A key is in exactly one of the two: new, or old's part not yet moved.
// The old table is never rearranged, so its probe runs stay intact; a key
// deleted from its unmoved part leaves a tombstone there (deletedTag),
// which probes pass and the move skips. The move ends long before new
// fills: it starts at 3/8 of new's slots full and needs len(old)/growStep
// writes; new fills at 3/4 (see growStep). Both tables are held until then:
// 27 bytes an old slot rather than 9.
//
// The seed is random: a client cannot choose keys that collide. Nothing
// observable depends on where a key lands.
//
// Not safe for concurrent use: treeIndex guards it with its lock (reads
// under the read lock).
type keyTable struct {
	seed maphash.Seed
	// tags[i] is 0 for an empty slot, else the tag of slots[i].key's hash.
	tags  []uint8
	slots []*keyIndex
	// n is how many keys the table holds (in slots, and in old's slots
	// not yet moved). Invariant: 4n <= 3*len(slots).
	n int
	// old is the table being moved into tags and slots (nil tags when
	// none is): its slots below moved are in the new table already.
	old struct {
		tags  []uint8
		slots []*keyIndex
		moved int
	}
	// testHash, if set, replaces the seeded hash: tests choose where keys
	// land (collisions, runs that wrap around the end) and reproduce it.
	testHash func(key []byte) uint64
}

// minKeyTableSlots is a new table's size: a store starts with a few keys.
const minKeyTableSlots = 16

// growStep is how many of the old table's slots each insert and delete
// moves while the table grows. A move starts when n reaches 3/4 of the old
// slots and must end before n reaches 3/4 of the new (twice as many):
// len(old)/growStep writes against at least 3/4 len(old) inserts, so any
// step over 4/3 would do. A step of 8 slots is 6 keys at most, about a
// microsecond.
const growStep = 8

// deletedTag marks a key deleted from the old table's unmoved part. Tags
// of keys have the top bit set, so it is never one; unlike 0 it does not
// end a probe run.
const deletedTag = 1

func newKeyTable() keyTable {
	return keyTable{seed: maphash.MakeSeed(), tags: make([]uint8, minKeyTableSlots), slots: make([]*keyIndex, minKeyTableSlots)}
}

func (t *keyTable) hash(key []byte) uint64 {
	if t.testHash != nil {
		return t.testHash(key)
	}
	return maphash.Bytes(t.seed, key)
}

func keyTag(h uint64) uint8 { return 0x80 | uint8(h>>57) }

// get returns key's keyIndex, or nil. It only reads the table: it may run
// beside other gets (under the index's read lock).
func (t *keyTable) get(key []byte) *keyIndex {
	h := t.hash(key)
	if i := find(t.tags, t.slots, key, h); i >= 0 {
		return t.slots[i]
	}
	if t.old.tags != nil {
		// Found below old.moved, a key was moved, then deleted from the
		// new table.
		if i := find(t.old.tags, t.old.slots, key, h); i >= t.old.moved {
			return t.old.slots[i]
		}
	}
	return nil
}

// find returns the slot of key (whose hash is h) in tags and slots, or -1.
func find(tags []uint8, slots []*keyIndex, key []byte, h uint64) int {
	tag, mask := keyTag(h), uint64(len(tags)-1)
	for i := h & mask; tags[i] != 0; i = (i + 1) & mask {
		if tags[i] == tag && bytes.Equal(slots[i].key, key) {
			return int(i)
		}
	}
	return -1
}

// insert adds ki, whose key the table must not hold.
func (t *keyTable) insert(ki *keyIndex) {
	if invariants.Enabled && t.get(ki.key) != nil {
		panic(fmt.Sprintf("mvcc: key %q inserted into the key table twice", ki.key))
	}
	t.step()
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	t.place(ki, t.hash(ki.key))
	t.n++
}

// grow starts moving the table into one of twice the slots.
func (t *keyTable) grow() {
	t.finishMove() // (never left to do: see growStep)
	t.old.tags, t.old.slots, t.old.moved = t.tags, t.slots, 0
	t.tags, t.slots = make([]uint8, 2*len(t.tags)), make([]*keyIndex, 2*len(t.slots))
	t.step()
}

// step moves the keys of the next growStep old slots, if a move is under
// way, and ends it after the last. The index calls it for every write of
// a key the table holds too: a store whose writes are all to keys it has
// would otherwise keep the old table, and the keyIndexes its moved part
// still points to, for as long as no key is added.
func (t *keyTable) step() {
	if t.old.tags == nil {
		return
	}
	end := min(t.old.moved+growStep, len(t.old.tags))
	for i := t.old.moved; i < end; i++ {
		if t.old.tags[i] > deletedTag {
			ki := t.old.slots[i]
			t.place(ki, t.hash(ki.key))
		}
	}
	t.old.moved = end
	if end == len(t.old.tags) {
		t.old.tags, t.old.slots, t.old.moved = nil, nil, 0
	}
}

// finishMove moves every key the old table still holds.
func (t *keyTable) finishMove() {
	for t.old.tags != nil {
		t.step()
	}
}

// place puts ki in the first empty slot from its home.
func (t *keyTable) place(ki *keyIndex, h uint64) {
	mask := uint64(len(t.tags) - 1)
	i := h & mask
	for t.tags[i] != 0 {
		i = (i + 1) & mask
	}
	t.tags[i], t.slots[i] = keyTag(h), ki
}

// reserve grows the table, if it must, to hold n keys without growing,
// moving every key at once (an index being rebuilt has no readers yet).
func (t *keyTable) reserve(n int) {
	t.finishMove()
	size := len(t.slots)
	for 4*n > 3*size {
		size *= 2
	}
	if size != len(t.slots) {
		t.resize(size)
	}
}

// resize moves every key into a table of size slots, a power of two.
// REQUIRES: no move under way.
func (t *keyTable) resize(size int) {
	tags, slots := t.tags, t.slots
	t.tags, t.slots = make([]uint8, size), make([]*keyIndex, size)
	for i, ki := range slots {
		if tags[i] != 0 {
			t.place(ki, t.hash(ki.key))
		}
	}
}

// delete removes ki, which the table must hold (the same keyIndex, not
// only its key), and moves back the entries after it that may take its
// slot, so that every entry stays reachable from its home with no empty
// slot between.
//
// While the table grows, a key not yet moved is deleted from the old table
// instead, where it leaves a tombstone (see deletedTag).
func (t *keyTable) delete(ki *keyIndex) {
	t.step()
	h := t.hash(ki.key)
	mask := uint64(len(t.tags) - 1)
	i := h & mask
	for t.slots[i] != ki {
		if t.tags[i] == 0 {
			t.deleteOld(ki, h)
			return
		}
		i = (i + 1) & mask
	}
	// i is the hole. An entry at j, further on in the run, moves into it
	// unless its home lies cyclically in (i, j]: there it would sit
	// before its home, where a lookup never looks.
	for j := (i + 1) & mask; t.tags[j] != 0; j = (j + 1) & mask {
		home := t.hash(t.slots[j].key) & mask
		if i <= j && (home <= i || home > j) || i > j && home <= i && home > j {
			t.tags[i], t.slots[i] = t.tags[j], t.slots[j]
			i = j
		}
	}
	t.tags[i], t.slots[i] = 0, nil
	t.n--
}

// deleteOld removes ki, whose hash is h, from the old table's unmoved part,
// which must hold it.
func (t *keyTable) deleteOld(ki *keyIndex, h uint64) {
	if t.old.tags != nil {
		// The old table holds a key once: below old.moved if it was moved.
		if i := find(t.old.tags, t.old.slots, ki.key, h); i >= t.old.moved && t.old.slots[i] == ki {
			t.old.tags[i], t.old.slots[i] = deletedTag, nil
			t.n--
			return
		}
	}
	panic(fmt.Sprintf("mvcc: key %q deleted from the key table, which does not hold it", ki.key))
}

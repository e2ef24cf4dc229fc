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
// entries after it back (no tombstones), reading their keys to hash
// them again; only compaction deletes. Growing hashes every key again.
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
	// n is how many slots are full. Invariant: 4n <= 3*len(slots).
	n int
	// testHash, if set, replaces the seeded hash: tests choose where keys
	// land (collisions, runs that wrap around the end) and reproduce it.
	testHash func(key []byte) uint64
}

// minKeyTableSlots is a new table's size: a store starts with a few keys.
const minKeyTableSlots = 16

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

// get returns key's keyIndex, or nil.
func (t *keyTable) get(key []byte) *keyIndex {
	h := t.hash(key)
	tag, mask := keyTag(h), uint64(len(t.tags)-1)
	for i := h & mask; t.tags[i] != 0; i = (i + 1) & mask {
		if t.tags[i] == tag && bytes.Equal(t.slots[i].key, key) {
			return t.slots[i]
		}
	}
	return nil
}

// insert adds ki, whose key the table must not hold.
func (t *keyTable) insert(ki *keyIndex) {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	if invariants.Enabled && t.get(ki.key) != nil {
		panic(fmt.Sprintf("mvcc: key %q inserted into the key table twice", ki.key))
	}
	t.place(ki, t.hash(ki.key))
	t.n++
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

// reserve grows the table, if it must, to hold n keys without growing.
func (t *keyTable) reserve(n int) {
	size := len(t.slots)
	for 4*n > 3*size {
		size *= 2
	}
	if size != len(t.slots) {
		t.resize(size)
	}
}

// resize moves every key into a table of size slots, a power of two.
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
func (t *keyTable) delete(ki *keyIndex) {
	h := t.hash(ki.key)
	mask := uint64(len(t.tags) - 1)
	i := h & mask
	for t.slots[i] != ki {
		if t.tags[i] == 0 {
			panic(fmt.Sprintf("mvcc: key %q deleted from the key table, which does not hold it", ki.key))
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

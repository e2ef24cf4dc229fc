package mvcc

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// check verifies the table's invariants: n counts the keys, in the table
// and in the old one's part not yet moved, at most three quarters of the
// table's slots; in either table every entry has its key's tag and is
// reached from its home slot with no empty slot on the way (tombstones,
// only in the old table's unmoved part, do not end a run); no key is in
// both.
func (t *keyTable) check() error {
	full, err := checkSlots(t, "", t.tags, t.slots, 0)
	if err != nil {
		return err
	}
	if t.old.tags != nil {
		if t.old.moved <= 0 || t.old.moved >= len(t.old.tags) || len(t.old.tags)*2 != len(t.tags) {
			return fmt.Errorf("old table of %d slots, %d moved, into %d", len(t.old.tags), t.old.moved, len(t.tags))
		}
		live, err := checkSlots(t, "old ", t.old.tags, t.old.slots, t.old.moved)
		if err != nil {
			return err
		}
		for i := t.old.moved; i < len(t.old.tags); i++ {
			if t.old.tags[i] > deletedTag && find(t.tags, t.slots, t.old.slots[i].key, t.hash(t.old.slots[i].key)) >= 0 {
				return fmt.Errorf("key %q in both tables", t.old.slots[i].key)
			}
		}
		full += live
	}
	if full != t.n || 4*t.n > 3*len(t.slots) {
		return fmt.Errorf("%d keys held, %d slots, n %d", full, len(t.slots), t.n)
	}
	return nil
}

// checkSlots checks one table's entries in slots from..len and returns how
// many there are. Tombstones may be only in an old table (from > 0),
// anywhere in it: the move passes those made before it.
func checkSlots(t *keyTable, name string, tags []uint8, slots []*keyIndex, from int) (int, error) {
	mask := uint64(len(tags) - 1)
	full := 0
	for i, tag := range tags {
		if tag == 0 || tag == deletedTag {
			if slots[i] != nil {
				return 0, fmt.Errorf("%sslot %d: tag %d, keyIndex %q", name, i, tag, slots[i].key)
			}
			if tag == deletedTag && from == 0 {
				return 0, fmt.Errorf("%sslot %d: a tombstone", name, i)
			}
			continue
		}
		if i < from {
			continue
		}
		full++
		h := t.hash(slots[i].key)
		if tag != keyTag(h) {
			return 0, fmt.Errorf("%sslot %d: tag %#x, key %q's is %#x", name, i, tag, slots[i].key, keyTag(h))
		}
		for j := h & mask; j != uint64(i); j = (j + 1) & mask {
			if tags[j] == 0 {
				return 0, fmt.Errorf("%sslot %d: key %q (home %d) is past empty slot %d", name, i, slots[i].key, h&mask, j)
			}
		}
	}
	return full, nil
}

// TestKeyTableMatchesMap runs seeded random inserts, deletes and lookups
// against a Go map, checking the table's invariants after each. The
// hashes are chosen by the seed too, from few values, so that keys share
// homes, runs are long and wrap around the table's end, and deletes move
// entries back across the wrap: a failure reproduces from its seed.
func TestKeyTableMatchesMap(t *testing.T) {
	oldGets, oldDeletes := 0, 0
	defer func() {
		// The seeds must reach keys still in an old table, not yet moved.
		if !t.Failed() && (oldGets == 0 || oldDeletes == 0) {
			t.Errorf("%d gets and %d deletes of keys in a growing table's old part, want some of each", oldGets, oldDeletes)
		}
	}()
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		homes := uint64(1 + rng.IntN(64)) // distinct hashes: few, so collisions abound
		tb := newKeyTable()
		tb.testHash = func(key []byte) uint64 {
			x := binary.BigEndian.Uint64(key[:8]) % homes
			// Spread the few values over the bits, high ones (the tag)
			// included, but keep them few.
			return x*0x9e3779b97f4a7c15 ^ x<<60
		}
		model := map[string]*keyIndex{}
		var live []*keyIndex
		for op := range 3000 {
			oldHas := func(key []byte) bool { // is key in the old table's unmoved part?
				return tb.old.tags != nil && find(tb.old.tags, tb.old.slots, key, tb.hash(key)) >= tb.old.moved
			}
			key := binary.BigEndian.AppendUint64(nil, uint64(rng.IntN(200)))
			key = fmt.Appendf(key, "-%d", rng.IntN(3))
			switch r := rng.IntN(10); {
			case r < 5: // insert, if absent
				if model[string(key)] == nil {
					ki := newKeyIndex(key)
					tb.insert(ki)
					model[string(key)] = ki
					live = append(live, ki)
				}
			case r < 8 && len(live) > 0: // delete one present
				i := rng.IntN(len(live))
				ki := live[i]
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
				delete(model, string(ki.key))
				if oldHas(ki.key) {
					oldDeletes++
				}
				tb.delete(ki)
			default:
				if oldHas(key) {
					oldGets++
				}
				if got, want := tb.get(key), model[string(key)]; got != want {
					t.Fatalf("seed %d op %d: get(%q) = %p, want %p", seed, op, key, got, want)
				}
			}
			if err := tb.check(); err != nil {
				t.Fatalf("seed %d op %d: %v", seed, op, err)
			}
		}
		for k, want := range model {
			if got := tb.get([]byte(k)); got != want {
				t.Fatalf("seed %d: get(%q) = %p at the end, want %p", seed, k, got, want)
			}
		}
	}
}

// TestKeyTableGrowsAFewKeysAtATime: an insert that finds the table full
// moves growStep of the old slots, not all of them, and each move ends
// before the table must grow again.
func TestKeyTableGrowsAFewKeysAtATime(t *testing.T) {
	tb := newKeyTable()
	grew := 0
	for i := range 50_000 {
		size, moving := len(tb.slots), tb.old.tags != nil
		tb.insert(newKeyIndex(fmt.Appendf(nil, "key-%d", i)))
		if len(tb.slots) == size {
			continue
		}
		grew++
		if moving {
			t.Fatalf("insert %d grew the table from %d slots before the last move ended", i, size)
		}
		if tb.old.tags == nil || tb.old.moved != growStep || len(tb.old.tags) != size {
			t.Fatalf("insert %d grew the table to %d slots: old table of %d, %d moved; want %d of %d moved",
				i, len(tb.slots), len(tb.old.tags), tb.old.moved, growStep, size)
		}
		if err := tb.check(); err != nil {
			t.Fatal(err)
		}
	}
	if grew != 13 { // 16 slots -> 131072 (50k keys are over 3/4 of 65536)
		t.Fatalf("grew %d times, want 13", grew)
	}
	// reserve in the middle of a move ends it first.
	if tb.old.tags == nil {
		t.Fatal("no move under way after 50k keys (49,153 started one of 65,536 slots)")
	}
	tb.reserve(200_000)
	if tb.old.tags != nil || len(tb.slots) != 1<<19 {
		t.Fatalf("reserve(200k) during a move: %d slots, old table of %d", len(tb.slots), len(tb.old.tags))
	}
	if err := tb.check(); err != nil {
		t.Fatal(err)
	}
}

// TestIndexGrowthEndsWithoutNewKeys: once a move has started, puts and
// deletes of keys the index holds carry it on, so that a store whose
// writes all go to keys it has does not keep the old table for ever.
func TestIndexGrowthEndsWithoutNewKeys(t *testing.T) {
	ti := newTreeIndex()
	const keys = 98_305 // over 3/4 of 131,072 slots: the table doubles
	rev := int64(2)
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%06d", i) }
	for i := range keys {
		ti.put(key(i), Revision{Main: rev})
		rev++
	}
	if ti.keys.old.tags == nil {
		t.Fatalf("no move under way at %d keys (%d slots)", keys, len(ti.keys.slots))
	}
	writes := len(ti.keys.old.tags) / growStep
	for i := range writes {
		if i%2 == 0 {
			ti.put(key(i), Revision{Main: rev})
		} else {
			ti.tombstone(key(i), Revision{Main: rev})
		}
		rev++
	}
	if ti.keys.old.tags != nil {
		t.Fatalf("after %d writes of existing keys the move is at %d of %d slots", writes, ti.keys.old.moved, len(ti.keys.old.tags))
	}
	if err := ti.keys.check(); err != nil {
		t.Fatal(err)
	}
}

// TestKeyTableSeededHash: the production hash, growth from the smallest
// table to 100k keys, reserve, and deleting every key again.
func TestKeyTableSeededHash(t *testing.T) {
	tb := newKeyTable()
	tb.reserve(1000)
	if len(tb.slots) != 2048 {
		t.Fatalf("reserve(1000): %d slots, want 2048 (1000 is over three quarters of 1024)", len(tb.slots))
	}
	var kis []*keyIndex
	for i := range 100_000 {
		ki := newKeyIndex(fmt.Appendf(nil, "/registry/pods/default/pod-%07d", i))
		tb.insert(ki)
		kis = append(kis, ki)
	}
	if err := tb.check(); err != nil {
		t.Fatal(err)
	}
	for i, ki := range kis {
		if tb.get(ki.key) != ki {
			t.Fatalf("key %d (%q) not found", i, ki.key)
		}
		if tb.get(append(ki.key[:len(ki.key):len(ki.key)], 'x')) != nil {
			t.Fatalf("found %qx, never inserted", ki.key)
		}
	}
	for i, ki := range kis {
		tb.delete(ki)
		if i%1000 == 0 {
			if err := tb.check(); err != nil {
				t.Fatalf("after %d deletes: %v", i+1, err)
			}
		}
	}
	if err := tb.check(); err != nil || tb.n != 0 {
		t.Fatalf("after deleting every key: n %d, %v", tb.n, err)
	}
}

package mvcc

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// check verifies the table's invariants: n counts the full slots, at most
// three quarters of them; every entry has its key's tag and is reached
// from its home slot with no empty slot on the way.
func (t *keyTable) check() error {
	mask := uint64(len(t.tags) - 1)
	full := 0
	for i, tag := range t.tags {
		if tag == 0 {
			if t.slots[i] != nil {
				return fmt.Errorf("slot %d: empty tag, keyIndex %q", i, t.slots[i].key)
			}
			continue
		}
		full++
		h := t.hash(t.slots[i].key)
		if tag != keyTag(h) {
			return fmt.Errorf("slot %d: tag %#x, key %q's is %#x", i, tag, t.slots[i].key, keyTag(h))
		}
		for j := h & mask; j != uint64(i); j = (j + 1) & mask {
			if t.tags[j] == 0 {
				return fmt.Errorf("slot %d: key %q (home %d) is past empty slot %d", i, t.slots[i].key, h&mask, j)
			}
		}
	}
	if full != t.n || 4*t.n > 3*len(t.slots) {
		return fmt.Errorf("%d slots full of %d, n %d", full, len(t.slots), t.n)
	}
	return nil
}

// TestKeyTableMatchesMap runs seeded random inserts, deletes and lookups
// against a Go map, checking the table's invariants after each. The
// hashes are chosen by the seed too, from few values, so that keys share
// homes, runs are long and wrap around the table's end, and deletes move
// entries back across the wrap: a failure reproduces from its seed.
func TestKeyTableMatchesMap(t *testing.T) {
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
				tb.delete(ki)
			default:
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
	for _, ki := range kis {
		tb.delete(ki)
	}
	if err := tb.check(); err != nil || tb.n != 0 {
		t.Fatalf("after deleting every key: n %d, %v", tb.n, err)
	}
}

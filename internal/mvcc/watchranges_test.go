package mvcc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRangeWatchersMatchAList runs seeded adds, removes (some of watchers
// coming back, as a watcher does when it leaves the synced group and
// returns) and lookups against a plain list of live watchers, with
// ranges over a small alphabet so that they nest, overlap and share
// starts, some open-ended ("\x00") and some empty. Some lookups remove
// the watcher they are given, as a notification does when a watcher's
// channel is full: every watcher holding the key must still be found,
// once.
func TestRangeWatchersMatchAList(t *testing.T) {
	word := func(rng *rand.Rand) []byte {
		b := make([]byte, 1+rng.IntN(3))
		for i := range b {
			b[i] = 'a' + byte(rng.IntN(6))
		}
		return b
	}
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		r := newRangeWatchers()
		var all []*watcher // every watcher made, live or not
		live := map[*watcher]bool{}
		for op := range 4000 {
			switch x := rng.IntN(10); {
			case x < 4 || len(all) == 0: // a new watcher
				w := &watcher{key: word(rng), end: word(rng)}
				if rng.IntN(8) == 0 {
					w.end = []byte{0}
				}
				all = append(all, w)
				live[w] = true
				r.add(w)
			case x < 6: // remove or bring back one; or add one already there: nothing
				w := all[rng.IntN(len(all))]
				switch {
				case live[w] && rng.IntN(4) == 0:
					r.add(w)
				case live[w]:
					r.remove(w)
					live[w] = false
				default:
					r.add(w)
					live[w] = true
				}
			default:
				key := word(rng)
				var want []*watcher
				for _, w := range all {
					if live[w] && w.matches(key) {
						want = append(want, w)
					}
				}
				removing := rng.IntN(3) == 0
				var got []*watcher
				r.matching(key, func(w *watcher) {
					got = append(got, w)
					if removing && rng.IntN(2) == 0 {
						r.remove(w)
						live[w] = false
					}
				})
				less := func(a, b *watcher) int {
					return slices.Index(all, a) - slices.Index(all, b)
				}
				slices.SortFunc(want, less)
				slices.SortFunc(got, less)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d op %d: key %q: %d watchers found, want %d", seed, op, key, len(got), len(want))
				}
			}
			if err := r.check(); err != nil {
				t.Fatalf("seed %d op %d: %v", seed, op, err)
			}
			if len(r.live) != countTrue(live) {
				t.Fatalf("seed %d op %d: %d live, want %d", seed, op, len(r.live), countTrue(live))
			}
		}
	}
}

func countTrue(m map[*watcher]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// Removed watchers do not stay reachable from the index (each keeps its
// stream, and its channel, alive): not from the tree, nor from the slice
// a lookup collects them in.
func TestRangeWatchersLetRemovedGo(t *testing.T) {
	r := newRangeWatchers()
	var ws []*watcher
	for i := range 10_000 {
		w := &watcher{key: fmt.Appendf(nil, "/svc/%05d/", i), end: fmt.Appendf(nil, "/svc/%05d0", i)}
		if i%10 == 0 {
			w.end = []byte{0} // every key from its start on
		}
		ws = append(ws, w)
		r.add(w)
	}
	found := 0
	r.matching([]byte("/svc/09999/x"), func(*watcher) { found++ })
	if found != 1001 {
		t.Fatalf("%d watchers found, want 1001", found)
	}
	for _, w := range ws {
		r.remove(w)
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
	if r.root != nil || len(r.live) != 0 {
		t.Fatalf("all removed, but the tree holds %v and %d are live", r.root != nil, len(r.live))
	}
	for i, w := range r.found[:cap(r.found)] {
		if w != nil {
			t.Fatalf("a lookup's slice still holds a removed watcher at %d", i)
		}
	}
}

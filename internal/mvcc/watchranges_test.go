package mvcc

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"weak"
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

// A lookup finds exactly the watchers span.contains says hold the key, in
// the order of their starts (then of their adding): open ends, keys equal
// to a start (in) or to an end (out), empty ranges, equal starts, the
// empty key.
func TestRangeWatchersEdges(t *testing.T) {
	r := newRangeWatchers()
	mk := func(k, e string) *watcher { return &watcher{key: []byte(k), end: []byte(e)} }
	ws := []*watcher{
		mk("b", "d"), mk("b", "\x00"), mk("\x00", "\x00"), mk("", "\x00"), mk("", "b"),
		mk("c", "c"), mk("d", "b"), mk("b", "b\x00"), mk("a", "\x00\x01"), mk("b", "d"),
		mk("\x00", "\x00\x00"), mk("zz", "\x00"),
	}
	for _, w := range ws {
		r.add(w)
	}
	for _, k := range []string{"", "\x00", "\x00\x00", "a", "b", "b\x00", "c", "d", "e", "zz", "zzz"} {
		var want, got []*watcher
		for _, w := range ws {
			if w.matches([]byte(k)) {
				want = append(want, w)
			}
		}
		slices.SortStableFunc(want, func(a, b *watcher) int { return slices.Compare(a.key, b.key) })
		r.matching([]byte(k), func(w *watcher) { got = append(got, w) })
		if !slices.Equal(got, want) {
			t.Errorf("key %q: %d watchers found, want %d, or not in order", k, len(got), len(want))
		}
	}
}

// fn may remove the watcher it is given and look up again: the outer
// lookup goes on with what it found.
func TestRangeWatchersLookupFromLookup(t *testing.T) {
	r := newRangeWatchers()
	for i := range 50 {
		r.add(&watcher{key: fmt.Appendf(nil, "k%02d", i), end: []byte{0}})
	}
	r.matching([]byte("k99"), func(*watcher) {}) // the slice lookups reuse, grown
	outer, inner := 0, 0
	r.matching([]byte("k99"), func(w *watcher) {
		outer++
		r.remove(w)
		r.matching([]byte("k99"), func(*watcher) { inner++ })
	})
	if outer != 50 || inner != 49*50/2 || len(r.live) != 0 || r.root != nil {
		t.Fatalf("outer lookup found %d, inner ones %d; %d left live", outer, inner, len(r.live))
	}
}

// A removed watcher (and so its stream) can be collected once the index
// has let it go; the live ones are kept.
func TestRangeWatchersRemovedCollectable(t *testing.T) {
	r := newRangeWatchers()
	var weaks []weak.Pointer[watcher]
	func() {
		var ws []*watcher
		for i := range 2000 {
			w := &watcher{key: fmt.Appendf(nil, "/p/%04d", i), end: fmt.Appendf(nil, "/p/%04d\xff", i%7+i)}
			if i%5 == 0 {
				w.end = []byte{0}
			}
			ws = append(ws, w)
			weaks = append(weaks, weak.Make(w))
			r.add(w)
		}
		r.matching([]byte("/p/1999"), func(*watcher) {})
		for i, w := range ws {
			if i%2 == 0 {
				r.remove(w)
			}
		}
		r.matching([]byte("/p/1999"), func(*watcher) {})
	}()
	runtime.GC()
	runtime.GC()
	for i, wp := range weaks {
		if (wp.Value() == nil) != (i%2 == 0) {
			t.Fatalf("watcher %d (removed %v): collected %v", i, i%2 == 0, wp.Value() == nil)
		}
	}
	runtime.KeepAlive(&r)
}

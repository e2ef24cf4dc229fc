package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"github.com/cairn-db/cairn/internal/invariants"
)

// rangeWatchers finds the range watchers whose range holds a key without
// looking at every one: each event of every write asks it, under the
// watchable store's lock. A list took 0.3 ms an event with 10,000 prefix
// watchers (BenchmarkNotifyRangeWatchers), a tenth of what the member can
// apply; etcd keeps an interval tree for the same question.
//
// Here the watchers are in a slice sorted by their range's start, with a
// tree of the largest end over it (maxEnd: node i covers its children 2i
// and 2i+1, the leaves are the slice's positions from len(maxEnd)/2 on).
// A key's watchers are among those starting at or before it, and a
// subtree whose largest end is at or before the key has none: a lookup
// visits O(log n) nodes for each watcher it finds.
//
//	sorted  [ a-c | b-z | d-e | f-g ]    key "e": start <= "e": the first three
//	maxEnd  [ - | z | z | g | c | z | e | g ]   "z" > "e": look in; "e" at leaf d-e: not past "e"
//
// The slice is rebuilt rather than kept sorted one change at a time:
// watchers added since the last build wait in pending (looked at one by
// one by every lookup), watchers removed since stay in sorted (stale,
// skipped: live says which are live). Once pending passes 64 + 4*sqrt(n),
// or the stale entries half of sorted, the next change rebuilds: pending
// sorted and merged into sorted less its stale entries, O(n + p log p),
// into new arrays (the old ones would keep removed watchers, and their
// streams, reachable). Adding n watchers one by one costs O(n^1.5) in
// all, removing them O(n): 100,000 watchers added and removed one by one
// took 1.0-1.3 s, the longest change (a rebuild) 51-78 ms
// (BenchmarkRangeWatchersChurn), where a list took about 3 ms an event.
//
// Not safe for concurrent use: the watchable store's mu guards it.
type rangeWatchers struct {
	// live holds every range watcher of the group.
	live map[*watcher]struct{}
	// sorted holds the watchers of the last build by their range's start;
	// inSorted says which (live or stale). Invariant: every live watcher
	// is in exactly one of inSorted and pending; stale counts the entries
	// of sorted that are not live.
	sorted   []*watcher
	inSorted map[*watcher]struct{}
	maxEnd   []*watcher
	pending  map[*watcher]struct{}
	stale    int
	// walking is set while matching runs: its fn may remove the watcher
	// it was given (one whose channel is full is set aside), and a rebuild
	// then would move the others under the walk's feet. It waits for the
	// walk's end.
	walking bool
}

func newRangeWatchers() rangeWatchers {
	return rangeWatchers{live: map[*watcher]struct{}{}, inSorted: map[*watcher]struct{}{}, pending: map[*watcher]struct{}{}}
}

func (r *rangeWatchers) add(w *watcher) {
	if _, ok := r.live[w]; ok {
		return
	}
	r.live[w] = struct{}{}
	if _, ok := r.inSorted[w]; ok {
		r.stale-- // back in the group it left
	} else {
		r.pending[w] = struct{}{}
	}
	r.maybeRebuild()
}

func (r *rangeWatchers) remove(w *watcher) {
	if _, ok := r.live[w]; !ok {
		return
	}
	delete(r.live, w)
	if _, ok := r.inSorted[w]; ok {
		r.stale++
	} else {
		delete(r.pending, w)
	}
	r.maybeRebuild()
}

// maybeRebuild rebuilds sorted once the watchers added since the last
// build are too many to look at one by one, or the removed ones too many
// to step over.
func (r *rangeWatchers) maybeRebuild() {
	if r.walking || float64(len(r.pending)) <= 64+4*math.Sqrt(float64(len(r.live))) && r.stale <= 64+len(r.sorted)/2 {
		return
	}
	byStart := func(a, b *watcher) int { return bytes.Compare(a.key, b.key) }
	fresh := make([]*watcher, 0, len(r.pending))
	for w := range r.pending {
		fresh = append(fresh, w)
		r.inSorted[w] = struct{}{}
	}
	slices.SortFunc(fresh, byStart)
	sorted := make([]*watcher, 0, len(r.live))
	for _, w := range r.sorted {
		if _, ok := r.live[w]; !ok {
			delete(r.inSorted, w)
			continue
		}
		for len(fresh) > 0 && byStart(fresh[0], w) < 0 {
			sorted, fresh = append(sorted, fresh[0]), fresh[1:]
		}
		sorted = append(sorted, w)
	}
	r.sorted = append(sorted, fresh...)
	clear(r.pending)
	r.stale = 0
	leaves := 1
	for leaves < len(r.sorted) {
		leaves *= 2
	}
	r.maxEnd = make([]*watcher, 2*leaves)
	copy(r.maxEnd[leaves:], r.sorted)
	for i := leaves - 1; i > 0; i-- {
		r.maxEnd[i] = laterEnd(r.maxEnd[2*i], r.maxEnd[2*i+1])
	}
	if invariants.Enabled {
		if err := r.check(); err != nil {
			panic("mvcc: " + err.Error())
		}
	}
}

// laterEnd returns whichever of a and b (either may be nil) has the later
// end: an end of "\x00" (every key from the start on) is later than any.
func laterEnd(a, b *watcher) *watcher {
	switch {
	case a == nil:
		return b
	case b == nil || openEnd(a.end):
		return a
	case openEnd(b.end) || bytes.Compare(b.end, a.end) > 0:
		return b
	}
	return a
}

func openEnd(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// endsAfter reports whether w's range ends after key.
func endsAfter(w *watcher, key []byte) bool {
	return openEnd(w.end) || bytes.Compare(w.end, key) > 0
}

// matching calls fn for each watcher whose range holds key, once. fn may
// remove the watcher it is given, no other.
func (r *rangeWatchers) matching(key []byte, fn func(*watcher)) {
	r.walking = true
	defer func() {
		r.walking = false
		r.maybeRebuild()
	}()
	// The watchers starting at or before key: sorted[:n].
	n, _ := slices.BinarySearchFunc(r.sorted, key, func(w *watcher, k []byte) int {
		if bytes.Compare(w.key, k) <= 0 {
			return -1
		}
		return 1
	})
	if n > 0 {
		r.visit(1, 0, len(r.maxEnd)/2, n, key, fn)
	}
	for w := range r.pending {
		if w.matches(key) {
			fn(w)
		}
	}
}

// visit looks in node, which covers sorted[lo:hi], for the watchers of
// sorted[:n] whose range holds key.
func (r *rangeWatchers) visit(node, lo, hi, n int, key []byte, fn func(*watcher)) {
	if lo >= n || r.maxEnd[node] == nil || !endsAfter(r.maxEnd[node], key) {
		return
	}
	if hi-lo == 1 {
		w := r.sorted[lo]
		if _, ok := r.live[w]; ok && w.matches(key) {
			fn(w)
		}
		return
	}
	mid := (lo + hi) / 2
	r.visit(2*node, lo, mid, n, key, fn)
	r.visit(2*node+1, mid, hi, n, key, fn)
}

// check verifies the invariants above.
func (r *rangeWatchers) check() error {
	stale := 0
	for _, w := range r.sorted {
		if _, ok := r.live[w]; !ok {
			stale++
		}
	}
	inPending := 0
	for w := range r.live {
		_, s := r.inSorted[w]
		_, p := r.pending[w]
		if s == p {
			return fmt.Errorf("range watcher of %q: in the sorted list %v, pending %v", w.key, s, p)
		}
		if p {
			inPending++
		}
	}
	if stale != r.stale || inPending != len(r.pending) || len(r.sorted) != len(r.inSorted) {
		return fmt.Errorf("range watchers: %d stale counted %d, %d pending of %d, %d sorted of %d",
			stale, r.stale, inPending, len(r.pending), len(r.sorted), len(r.inSorted))
	}
	return nil
}

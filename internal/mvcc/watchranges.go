package mvcc

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"github.com/cairn-db/cairn/internal/invariants"
)

// rangeWatchers finds the range watchers whose range holds a key without
// looking at every one: each event of every write asks it, under the
// watchable store's lock. A list took 0.3 ms an event with 10,000 prefix
// watchers (BenchmarkNotifyRangeWatchers), a tenth of what the member can
// apply; etcd keeps an interval tree for the same question.
//
// Here the watchers are in a treap (a binary search tree kept balanced, in
// expectation, by random priorities: a parent's priority is at least its
// children's) ordered by their range's start, then by when they were
// added; each node also holds the latest end of its subtree's ranges
// (maxEnd). A key's watchers start at or before it, and a subtree
// whose latest end is at or before the key holds none: a lookup visits
// O(log n) nodes for each watcher it finds, and an add or a remove changes
// O(log n) nodes (expected).
//
//	         d-e (prio 9, maxEnd z)      key "e": the root's maxEnd z > e: look in;
//	        /              \               a-c ends at c <= e: not it; d-e: not past e;
//	a-c (7, z)            f-g (4, g)       b-z holds e; f-g starts after e: its right
//	     \                                 subtree is not looked at
//	     b-z (2, z)
//
// Until 2026-12-06 the watchers were in a sorted array with a segment tree
// over it, rebuilt after about 4*sqrt(n) changes: a rebuild at 100,000
// range watchers held the store's lock (and every write) for 43-78 ms.
//
// Not safe for concurrent use: the watchable store's mu guards it.
type rangeWatchers struct {
	// live holds every range watcher of the group, and its node.
	// Invariant: the nodes reachable from root are exactly live's.
	live map[*watcher]*rangeNode
	root *rangeNode
	// seq numbers the nodes in the order they were added: ties of start
	// are ordered by it. rng draws the priorities (xorshift64), seeded at
	// random: a seed known to clients would let one choose the order of
	// its watches' keys to match the priorities' order, and make the tree
	// a chain (20,000 watchers: adds O(n) each, a lookup 700 us). The
	// lookups' results, and their order, depend on the order alone, not
	// on the priorities: a simulation repeats whatever the seed.
	seq uint64
	rng uint64
	// found collects a lookup's watchers before fn is called with them:
	// fn may remove the watcher it is given (one whose channel is full is
	// set aside), which must not reshape the tree under the walk.
	found []*watcher
}

type rangeNode struct {
	// key and end are w's (copies of the slices, not of their bytes: a
	// walk compares them without loading w).
	key, end    []byte
	w           *watcher
	seq, prio   uint64
	left, right *rangeNode
	// maxEnd is the latest end of this subtree's ranges.
	maxEnd []byte
}

func newRangeWatchers() rangeWatchers {
	return rangeWatchers{live: map[*watcher]*rangeNode{}, rng: rand.Uint64() | 1} // 0 would stay 0
}

func (r *rangeWatchers) add(w *watcher) {
	if _, ok := r.live[w]; ok {
		return
	}
	r.rng ^= r.rng << 13
	r.rng ^= r.rng >> 7
	r.rng ^= r.rng << 17
	r.seq++
	n := &rangeNode{key: w.key, end: w.end, w: w, seq: r.seq, prio: r.rng, maxEnd: w.end}
	r.live[w] = n
	r.root = insertNode(r.root, n)
	r.checkIfEnabled()
}

func (r *rangeWatchers) remove(w *watcher) {
	n, ok := r.live[w]
	if !ok {
		return
	}
	delete(r.live, w)
	r.root = removeNode(r.root, n)
	r.checkIfEnabled()
}

// before reports whether node a comes before node b in the tree's order.
func before(a, b *rangeNode) bool {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

// insertNode inserts n into the subtree t and returns the subtree's root.
func insertNode(t, n *rangeNode) *rangeNode {
	if t == nil {
		return n
	}
	if before(n, t) {
		t.left = insertNode(t.left, n)
		if t.left.prio > t.prio {
			t = rotateRight(t)
		}
	} else {
		t.right = insertNode(t.right, n)
		if t.right.prio > t.prio {
			t = rotateLeft(t)
		}
	}
	t.fix()
	return t
}

// removeNode removes n from the subtree t, which holds it, and returns the
// subtree's root.
func removeNode(t, n *rangeNode) *rangeNode {
	switch {
	case t == n:
		t = joinNodes(t.left, t.right)
		n.left, n.right = nil, nil
		return t
	case before(n, t):
		t.left = removeNode(t.left, n)
	default:
		t.right = removeNode(t.right, n)
	}
	t.fix()
	return t
}

// joinNodes joins two subtrees, every node of a before every node of b.
func joinNodes(a, b *rangeNode) *rangeNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = joinNodes(a.right, b)
		a.fix()
		return a
	default:
		b.left = joinNodes(a, b.left)
		b.fix()
		return b
	}
}

func rotateRight(t *rangeNode) *rangeNode {
	l := t.left
	t.left, l.right = l.right, t
	t.fix()
	l.fix()
	return l
}

func rotateLeft(t *rangeNode) *rangeNode {
	r := t.right
	t.right, r.left = r.left, t
	t.fix()
	r.fix()
	return r
}

// fix sets n's maxEnd from its own range and its children's.
func (n *rangeNode) fix() {
	m := n.end
	if n.left != nil {
		m = laterEnd(m, n.left.maxEnd)
	}
	if n.right != nil {
		m = laterEnd(m, n.right.maxEnd)
	}
	n.maxEnd = m
}

// laterEnd returns whichever of the ends a and b is later: an end of
// "\x00" (every key from the start on) is later than any.
func laterEnd(a, b []byte) []byte {
	switch {
	case openEnd(a):
		return a
	case openEnd(b) || bytes.Compare(b, a) > 0:
		return b
	}
	return a
}

func openEnd(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// endsAfter reports whether a range ending at end ends after key.
func endsAfter(end, key []byte) bool {
	return openEnd(end) || bytes.Compare(end, key) > 0
}

// matching calls fn for each watcher whose range holds key, once, in the
// order of their starts. fn may remove the watcher it is given, no other.
func (r *rangeWatchers) matching(key []byte, fn func(*watcher)) {
	found := collect(r.found[:0], r.root, key)
	r.found = nil // a lookup from fn collects into a slice of its own
	for i, w := range found {
		found[i] = nil // the next lookup's slice holds no watcher removed since
		fn(w)
	}
	if cap(found) > 4096 && len(found) < cap(found)/4 {
		found = nil // not kept at the size of the largest lookup ever
	}
	r.found = found[:0]
}

// collect appends to found the watchers of subtree t whose range holds
// key, in order.
func collect(found []*watcher, t *rangeNode, key []byte) []*watcher {
	for t != nil && endsAfter(t.maxEnd, key) {
		found = collect(found, t.left, key)
		if bytes.Compare(t.key, key) > 0 {
			break // t and everything after it start after key
		}
		if endsAfter(t.end, key) {
			found = append(found, t.w)
		}
		t = t.right
	}
	return found
}

func (r *rangeWatchers) checkIfEnabled() {
	if invariants.Enabled && len(r.live) <= 4096 {
		// O(n) a change: checked while the group is small (the tests').
		if err := r.check(); err != nil {
			panic("mvcc: " + err.Error())
		}
	}
}

// check verifies the invariants above: the tree's order, its priorities,
// every node's maxEnd, and that it holds exactly the live watchers.
func (r *rangeWatchers) check() error {
	n := 0
	var prev *rangeNode
	var walk func(t *rangeNode) error
	walk = func(t *rangeNode) error {
		if t == nil {
			return nil
		}
		if err := walk(t.left); err != nil {
			return err
		}
		n++
		if prev != nil && !before(prev, t) {
			return fmt.Errorf("range watcher of %q (#%d) after %q (#%d)", t.key, t.seq, prev.key, prev.seq)
		}
		prev = t
		if r.live[t.w] != t || !bytes.Equal(t.key, t.w.key) || !bytes.Equal(t.end, t.w.end) {
			return fmt.Errorf("range watcher of %q in the tree, not live", t.w.key)
		}
		m := t.end
		for _, c := range []*rangeNode{t.left, t.right} {
			if c != nil {
				if c.prio > t.prio {
					return fmt.Errorf("range watcher of %q: a child of higher priority", t.w.key)
				}
				m = laterEnd(m, c.maxEnd)
			}
		}
		if !bytes.Equal(t.maxEnd, m) {
			return fmt.Errorf("range watcher of %q: latest end %q, its subtree's is %q", t.key, t.maxEnd, m)
		}
		return walk(t.right)
	}
	if err := walk(r.root); err != nil {
		return err
	}
	if n != len(r.live) {
		return fmt.Errorf("range watchers: %d in the tree, %d live", n, len(r.live))
	}
	return nil
}

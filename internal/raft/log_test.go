package raft

import (
	"errors"
	"slices"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// ents builds entries at indexes from, from+1, ... with the given terms.
func ents(from uint64, terms ...uint64) []raftpb.Entry {
	out := make([]raftpb.Entry, len(terms))
	for i, t := range terms {
		out[i] = raftpb.Entry{Index: from + uint64(i), Term: t}
	}
	return out
}

func terms(es []raftpb.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Term
	}
	return out
}

func TestMemoryStorageAppendTruncatesConflictingSuffix(t *testing.T) {
	ms := NewMemoryStorage()
	if err := ms.Append(ents(1, 1, 1, 2, 2)); err != nil {
		t.Fatal(err)
	}
	// A new leader's entries from index 3 replace the old suffix.
	if err := ms.Append(ents(3, 3)); err != nil {
		t.Fatal(err)
	}
	got, err := ms.Entries(1, 4, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{1, 1, 3}; !slices.Equal(terms(got), want) {
		t.Fatalf("terms %v, want %v", terms(got), want)
	}
	if last, _ := ms.LastIndex(); last != 3 {
		t.Fatalf("last index %d, want 3", last)
	}
	// A gap is refused.
	if err := ms.Append(ents(5, 3)); err == nil {
		t.Fatal("append leaving a gap succeeded")
	}
}

func TestMemoryStorageEntriesHandedOutNeverChange(t *testing.T) {
	ms := NewMemoryStorage()
	if err := ms.Append(ents(1, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	held, _ := ms.Entries(1, 4, 1<<30)
	if err := ms.Append(ents(2, 2, 2)); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{1, 1, 1}; !slices.Equal(terms(held), want) {
		t.Fatalf("entries a caller held changed to %v", terms(held))
	}
}

func TestMemoryStorageSnapshotAndCompact(t *testing.T) {
	ms := NewMemoryStorage()
	if err := ms.Append(ents(1, 1, 1, 2, 2, 3)); err != nil {
		t.Fatal(err)
	}
	cs := raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	if _, err := ms.CreateSnapshot(4, cs, []byte("sm@4")); err != nil {
		t.Fatal(err)
	}
	// The log may not be compacted past the snapshot: the configuration is
	// rebuilt from the snapshot plus the entries after it.
	if err := ms.Compact(5); err == nil {
		t.Fatal("compact past the snapshot succeeded")
	}
	if err := ms.Compact(3); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Entries(3, 4, 1<<30); !errors.Is(err, ErrCompacted) {
		t.Fatalf("reading a compacted entry: %v, want ErrCompacted", err)
	}
	if term, err := ms.Term(3); err != nil || term != 2 {
		t.Fatalf("term at the compaction point: %d, %v; want 2", term, err)
	}
	if first, _ := ms.FirstIndex(); first != 4 {
		t.Fatalf("first index %d, want 4", first)
	}
	if _, err := ms.CreateSnapshot(4, cs, nil); !errors.Is(err, ErrSnapOutOfDate) {
		t.Fatalf("older snapshot: %v, want ErrSnapOutOfDate", err)
	}
	_, gotCS, _ := ms.InitialState()
	if !gotCS.Equal(cs) {
		t.Fatalf("initial conf %v, want %v", gotCS, cs)
	}
	// Installing a leader's snapshot replaces the whole log.
	snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 10, Term: 4, ConfState: cs}}
	if err := ms.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if first, _ := ms.FirstIndex(); first != 11 {
		t.Fatalf("first index after snapshot %d, want 11", first)
	}
	if last, _ := ms.LastIndex(); last != 10 {
		t.Fatalf("last index after snapshot %d, want 10", last)
	}
}

func TestLimitSize(t *testing.T) {
	es := []raftpb.Entry{{Data: make([]byte, 10)}, {Data: make([]byte, 10)}, {Data: make([]byte, 10)}}
	for _, tc := range []struct {
		max  uint64
		want int
	}{{0, 1}, {5, 1}, {10, 1}, {19, 1}, {20, 2}, {30, 3}, {1 << 30, 3}} {
		if got := len(limitSize(es, tc.max)); got != tc.want {
			t.Errorf("limitSize(max=%d) kept %d entries, want %d", tc.max, got, tc.want)
		}
	}
}

// newTestLog returns a log whose storage holds stored and whose unstable
// part holds unstable (appended after).
func newTestLog(t *testing.T, stored, unstable []raftpb.Entry) *raftLog {
	t.Helper()
	ms := NewMemoryStorage()
	if err := ms.Append(stored); err != nil {
		t.Fatal(err)
	}
	l, err := newLog(ms, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(unstable) > 0 {
		l.append(unstable...)
	}
	return l
}

func TestLogFindConflict(t *testing.T) {
	l := newTestLog(t, ents(1, 1, 2, 3), nil)
	for _, tc := range []struct {
		in   []raftpb.Entry
		want uint64
	}{
		{nil, 0},
		{ents(1, 1, 2, 3), 0},       // all match
		{ents(2, 2, 3, 4, 4), 4},    // new entries from 4
		{ents(2, 2, 4), 3},          // conflict at 3
		{ents(1, 4, 4, 4, 4, 4), 1}, // conflict at once
	} {
		if got := l.findConflict(tc.in); got != tc.want {
			t.Errorf("findConflict(%v) = %d, want %d", DescribeEntries(tc.in), got, tc.want)
		}
	}
}

// TestLogFindConflictByTerm: the hint a follower returns (and the leader
// uses) skips every entry whose term is above the probe's.
func TestLogFindConflictByTerm(t *testing.T) {
	// Indexes 1..8 with terms 1 1 1 4 4 5 5 5 (see the doc comment).
	l := newTestLog(t, ents(1, 1, 1, 1, 4, 4, 5, 5, 5), nil)
	for _, tc := range []struct {
		index, term       uint64
		wantIndex, wantTm uint64
	}{
		{8, 3, 3, 1},
		{8, 5, 8, 5},
		{8, 4, 5, 4},
		{6, 4, 5, 4},
		{2, 9, 2, 1},
		{8, 0, 0, 0},
	} {
		i, tm := l.findConflictByTerm(tc.index, tc.term)
		if i != tc.wantIndex || tm != tc.wantTm {
			t.Errorf("findConflictByTerm(%d, %d) = (%d, %d), want (%d, %d)", tc.index, tc.term, i, tm, tc.wantIndex, tc.wantTm)
		}
	}
}

func TestLogMaybeAppend(t *testing.T) {
	// prev entry (3, term 3) matches: entries after it are appended and the
	// commit index follows the leader's, but never past the last new entry.
	l := newTestLog(t, ents(1, 1, 2, 3), nil)
	lastNew, from, ok, _ := l.maybeAppend(3, 3, 10, ents(4, 4, 4))
	if !ok || lastNew != 5 || from != 4 || l.committed != 5 {
		t.Fatalf("maybeAppend = (%d, %d, %v), committed %d; want (5, 4, true), 5", lastNew, from, ok, l.committed)
	}
	// A mismatch at the prev entry is refused and changes nothing.
	if _, _, ok, _ := l.maybeAppend(3, 2, 10, ents(4, 5)); ok {
		t.Fatal("maybeAppend accepted a mismatched prev entry")
	}
	// Entries already present are not rewritten (no conflict, from == 0).
	if _, from, ok, _ := l.maybeAppend(1, 1, 5, ents(2, 2, 3)); !ok || from != 0 {
		t.Fatalf("re-appending present entries: from %d ok %v", from, ok)
	}
	// The commit index never passes the last entry the message vouched for:
	// beyond it our log may hold a stale suffix from an older leader.
	// Here 5 and 6 are stale term-4 entries; the leader's message covers
	// only 4 (max message size), and its commit index is 9.
	l = newTestLog(t, ents(1, 1, 2, 3, 4, 4, 4), nil)
	if lastNew, _, ok, _ := l.maybeAppend(3, 3, 9, ents(4, 4)); !ok || lastNew != 4 || l.committed != 4 {
		t.Fatalf("maybeAppend with a stale suffix: lastNew %d ok %v committed %d, want 4 true 4", lastNew, ok, l.committed)
	}
	// Entries replacing a committed entry are refused and change nothing.
	before, _ := l.slice(1, l.lastIndex()+1, 1<<30)
	committed := l.committed
	if _, _, _, err := l.maybeAppend(1, 1, 5, ents(2, 9)); !errors.Is(err, errConflictsWithCommitted) {
		t.Fatalf("overwriting a committed entry: %v, want errConflictsWithCommitted", err)
	}
	after, _ := l.slice(1, l.lastIndex()+1, 1<<30)
	if !slices.Equal(terms(before), terms(after)) || l.committed != committed {
		t.Fatalf("refused append changed the log: terms %v -> %v, committed %d -> %d", terms(before), terms(after), committed, l.committed)
	}
}

func TestLogSliceSpansStableAndUnstable(t *testing.T) {
	stored := ents(1, 1, 1, 1)
	l := newTestLog(t, stored, ents(4, 2, 2))
	got, err := l.slice(2, 6, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{1, 1, 2, 2}; !slices.Equal(terms(got), want) {
		t.Fatalf("slice terms %v, want %v", terms(got), want)
	}
	// Appending to the result must not scribble on the log.
	_ = append(got, raftpb.Entry{Index: 6, Term: 9})
	if tm, _ := l.term(5); tm != 2 {
		t.Fatal("appending to a slice changed the log")
	}
	// Unstable entries that truncate the stored suffix shadow it.
	l.append(ents(3, 3)...)
	if last := l.lastIndex(); last != 3 {
		t.Fatalf("last index %d after truncating append, want 3", last)
	}
	if got := l.stableLastIndex(); got != 2 {
		t.Fatalf("stable last index %d, want 2 (3 is being replaced)", got)
	}
	// stableTo for an entry that was replaced in between is ignored.
	if l.unstable.stableTo(5, 2) {
		t.Fatal("stableTo accepted a replaced entry")
	}
	if !l.unstable.stableTo(3, 3) {
		t.Fatal("stableTo refused the current entry")
	}
}

func TestInflights(t *testing.T) {
	in := newInflights(3, 100)
	in.add(5, 10)
	in.add(7, 10)
	if in.full() {
		t.Fatal("full after 2 of 3")
	}
	in.add(9, 10)
	if !in.full() {
		t.Fatal("not full after 3 of 3")
	}
	in.freeLE(7)
	if in.count != 1 || in.bytes != 10 {
		t.Fatalf("after freeLE(7): count %d bytes %d, want 1, 10", in.count, in.bytes)
	}
	// Wrap around the ring.
	in.add(11, 10)
	in.add(13, 10)
	in.freeFirst()
	if in.count != 2 || in.buffer[in.start].index != 11 {
		t.Fatalf("after freeFirst: count %d first %d, want 2, 11", in.count, in.buffer[in.start].index)
	}
	// The byte bound fills the window too.
	in.reset()
	in.add(1, 100)
	if !in.full() {
		t.Fatal("not full at the byte bound")
	}
}

func TestApplyConfChange(t *testing.T) {
	cs := func(voters, learners []uint64) raftpb.ConfState {
		return raftpb.ConfState{Voters: voters, Learners: learners}
	}
	base := cs([]uint64{1, 2, 3}, nil)
	for _, tc := range []struct {
		name    string
		in      raftpb.ConfState
		cc      raftpb.ConfChange
		want    raftpb.ConfState
		wantErr bool
	}{
		{"add voter", base, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 4}, cs([]uint64{1, 2, 3, 4}, nil), false},
		{"add learner", base, raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 4}, cs([]uint64{1, 2, 3}, []uint64{4}), false},
		{"promote", cs([]uint64{1}, []uint64{2}), raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 2}, cs([]uint64{1, 2}, nil), false},
		{"demote", base, raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 2}, cs([]uint64{1, 3}, []uint64{2}), false},
		{"remove voter", base, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 1}, cs([]uint64{2, 3}, nil), false},
		{"remove learner", cs([]uint64{1}, []uint64{2}), raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 2}, cs([]uint64{1}, nil), false},
		{"voter twice", base, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 2}, base, true},
		{"learner twice", cs([]uint64{1}, []uint64{2}), raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 2}, cs([]uint64{1}, []uint64{2}), true},
		{"remove stranger", base, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 9}, base, true},
		{"remove last voter", cs([]uint64{1}, nil), raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 1}, cs([]uint64{1}, nil), true},
		{"demote last voter", cs([]uint64{1}, nil), raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 1}, cs([]uint64{1}, nil), true},
		{"node 0", base, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter}, base, true},
		{"update voter", base, raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: 2}, base, false},
		{"update learner", cs([]uint64{1}, []uint64{2}), raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: 2}, cs([]uint64{1}, []uint64{2}), false},
		{"update stranger", base, raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: 9}, base, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.in.Clone()
			got, err := ApplyConfChange(tc.in, tc.cc)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfChange) {
				t.Fatalf("err = %v, want ErrInvalidConfChange", err)
			}
			if !got.Equal(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if !tc.in.Equal(before) {
				t.Fatalf("input modified: %v, was %v", tc.in, before)
			}
		})
	}
}

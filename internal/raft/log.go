package raft

import (
	"errors"
	"fmt"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// unstable holds what the core has accepted but the caller has not yet
// confirmed durable: a snapshot received from a leader and/or entries.
type unstable struct {
	// snapshot, if not nil, is an incoming snapshot not yet persisted.
	snapshot *raftpb.Snapshot
	// entries hold indexes [offset, offset+len(entries)).
	entries []raftpb.Entry
	offset  uint64
}

func (u *unstable) maybeFirstIndex() (uint64, bool) {
	if u.snapshot != nil {
		return u.snapshot.Metadata.Index + 1, true
	}
	return 0, false
}

func (u *unstable) maybeLastIndex() (uint64, bool) {
	if n := len(u.entries); n != 0 {
		return u.offset + uint64(n) - 1, true
	}
	if u.snapshot != nil {
		return u.snapshot.Metadata.Index, true
	}
	return 0, false
}

func (u *unstable) maybeTerm(i uint64) (uint64, bool) {
	if i < u.offset {
		if u.snapshot != nil && u.snapshot.Metadata.Index == i {
			return u.snapshot.Metadata.Term, true
		}
		return 0, false
	}
	last, ok := u.maybeLastIndex()
	if !ok || i > last {
		return 0, false
	}
	return u.entries[i-u.offset].Term, true
}

// stableTo drops the entries up to i once the caller has persisted them,
// unless the entry at i has since been replaced (its term differs).
func (u *unstable) stableTo(i, t uint64) bool {
	gt, ok := u.maybeTerm(i)
	if !ok || gt != t || i < u.offset {
		return false
	}
	n := i + 1 - u.offset
	// Copy the rest so the persisted prefix's backing array can be freed.
	u.entries = append([]raftpb.Entry(nil), u.entries[n:]...)
	u.offset = i + 1
	return true
}

// stableToHandedOut marks durable the entries handed out for persisting (in
// one Ready) that are still part of the log, and returns the last of them.
// If a new leader replaced a suffix of them in the meantime, the prefix it
// left alone is durable all the same: by Log Matching an entry with the
// same index and term is the same entry. Marking only the last handed-out
// entry would re-hand that prefix out, and rewriting durable, committed
// entries is what a torn write can then lose.
func (u *unstable) stableToHandedOut(handed []raftpb.Entry) (uint64, bool) {
	for k := len(handed) - 1; k >= 0; k-- {
		e := handed[k]
		if e.Index < u.offset {
			return 0, false // already stable
		}
		if u.stableTo(e.Index, e.Term) {
			return e.Index, true
		}
	}
	return 0, false
}

func (u *unstable) stableSnapTo(i uint64) {
	if u.snapshot != nil && u.snapshot.Metadata.Index == i {
		u.snapshot = nil
	}
}

func (u *unstable) restore(s raftpb.Snapshot) {
	u.offset = s.Metadata.Index + 1
	u.entries = nil
	u.snapshot = &s
}

func (u *unstable) truncateAndAppend(ents []raftpb.Entry) {
	after := ents[0].Index
	switch {
	case after == u.offset+uint64(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case after <= u.offset:
		// Replaces everything unstable; the caller's storage gets the new
		// entries from `after` on, which truncates its stale suffix.
		u.offset = after
		u.entries = append([]raftpb.Entry(nil), ents...)
	default:
		kept := u.entries[:after-u.offset]
		u.entries = append(append(make([]raftpb.Entry, 0, len(kept)+len(ents)), kept...), ents...)
	}
}

// raftLog is the log as the core sees it: storage (durable) followed by
// unstable (accepted, not yet durable).
//
// Invariant: applied <= committed <= lastIndex().
type raftLog struct {
	storage  Storage
	unstable unstable
	// committed is the highest index known to be stored on a quorum.
	committed uint64
	// applied is the highest index the caller has applied (acknowledged via
	// Advance).
	applied uint64
	// maxApplyingBytes bounds the committed entries handed out in one Ready.
	maxApplyingBytes uint64
}

func newLog(storage Storage, maxApplyingBytes uint64) (*raftLog, error) {
	first, err := storage.FirstIndex()
	if err != nil {
		return nil, err
	}
	last, err := storage.LastIndex()
	if err != nil {
		return nil, err
	}
	return &raftLog{
		storage:          storage,
		unstable:         unstable{offset: last + 1},
		committed:        first - 1,
		applied:          first - 1,
		maxApplyingBytes: maxApplyingBytes,
	}, nil
}

func (l *raftLog) String() string {
	return fmt.Sprintf("committed=%d applied=%d unstable.offset=%d len(unstable)=%d",
		l.committed, l.applied, l.unstable.offset, len(l.unstable.entries))
}

func (l *raftLog) firstIndex() uint64 {
	if i, ok := l.unstable.maybeFirstIndex(); ok {
		return i
	}
	i, err := l.storage.FirstIndex()
	if err != nil {
		panic(err)
	}
	return i
}

func (l *raftLog) lastIndex() uint64 {
	if i, ok := l.unstable.maybeLastIndex(); ok {
		return i
	}
	i, err := l.storage.LastIndex()
	if err != nil {
		panic(err)
	}
	return i
}

func (l *raftLog) lastTerm() uint64 {
	t, err := l.term(l.lastIndex())
	if err != nil {
		panic(fmt.Sprintf("raft: term of last index: %v", err))
	}
	return t
}

// stableLastIndex is the last index the caller has confirmed durable and
// that is still part of the log (storage may hold a stale suffix that the
// unstable entries are about to overwrite).
func (l *raftLog) stableLastIndex() uint64 {
	if l.unstable.snapshot != nil {
		return 0
	}
	last, err := l.storage.LastIndex()
	if err != nil {
		panic(err)
	}
	return min(last, l.unstable.offset-1)
}

// term returns the term of entry i, or an error if i is outside
// [firstIndex()-1, lastIndex()].
func (l *raftLog) term(i uint64) (uint64, error) {
	if t, ok := l.unstable.maybeTerm(i); ok {
		return t, nil
	}
	if i+1 < l.firstIndex() {
		return 0, ErrCompacted
	}
	if i > l.lastIndex() {
		return 0, ErrUnavailable
	}
	t, err := l.storage.Term(i)
	if err == nil {
		return t, nil
	}
	if errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
		return 0, err
	}
	panic(err)
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	gt, err := l.term(i)
	return err == nil && gt == t
}

// zeroTermOnOutOfRange turns a compacted or unavailable term lookup into 0.
func (l *raftLog) zeroTermOnOutOfRange(i uint64) uint64 {
	t, err := l.term(i)
	if err != nil {
		return 0
	}
	return t
}

// isUpToDate reports whether a log ending at (lasti, term) is at least as
// up to date as ours (§5.4.1).
func (l *raftLog) isUpToDate(lasti, term uint64) bool {
	lt := l.lastTerm()
	return term > lt || (term == lt && lasti >= l.lastIndex())
}

// errConflictsWithCommitted: entries that would replace a committed entry.
// A correct leader holds every committed entry (Leader Completeness), so
// only a broken or hostile peer sends them.
var errConflictsWithCommitted = errors.New("entries conflict with the committed log")

// maybeAppend appends ents after (index, logTerm) if our log matches there,
// and raises the commit index to min(committed, last new index). It returns
// the last new index and whether the log matched, and the index from which
// the log changed (0 if nothing was written). Entries that would replace a
// committed entry change nothing and return errConflictsWithCommitted.
func (l *raftLog) maybeAppend(index, logTerm, committed uint64, ents []raftpb.Entry) (lastNew, from uint64, ok bool, err error) {
	if !l.matchTerm(index, logTerm) {
		return 0, 0, false, nil
	}
	lastNew = index + uint64(len(ents))
	ci := l.findConflict(ents)
	switch {
	case ci == 0:
	case ci <= l.committed:
		return 0, 0, true, fmt.Errorf("%w: entry %d (committed %d)", errConflictsWithCommitted, ci, l.committed)
	default:
		l.append(ents[ci-index-1:]...)
		from = ci
	}
	l.commitTo(min(committed, lastNew))
	return lastNew, from, true, nil
}

// append adds ents to the unstable log, replacing any suffix they overlap.
func (l *raftLog) append(ents ...raftpb.Entry) uint64 {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	if after := ents[0].Index - 1; after < l.committed {
		panic(fmt.Sprintf("raft: append after %d is below committed %d", after, l.committed))
	}
	l.unstable.truncateAndAppend(ents)
	return l.lastIndex()
}

// findConflict returns the index of the first entry of ents that is not
// in our log with the same term (a conflict, or new), or 0 if all are.
func (l *raftLog) findConflict(ents []raftpb.Entry) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= index whose term is <=
// term, and that term. It is how a rejection carries a useful hint: every
// entry after the returned index is known not to match the leader's log.
// Example: our log has terms [1 1 1 4 4 5 5 5] at indexes 1..8 and the
// leader probes (index 8, term 3): we answer (3, 1), skipping the entries
// of terms 4 and 5 at once instead of one per round trip.
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	for ; index > 0; index-- {
		t, err := l.term(index)
		if err != nil {
			// Compacted (or past the end): nothing better is known.
			return index, 0
		}
		if t <= term {
			return index, t
		}
	}
	return 0, 0
}

func (l *raftLog) unstableEntries() []raftpb.Entry {
	return l.unstable.entries
}

func (l *raftLog) hasNextCommittedEnts() bool {
	if l.unstable.snapshot != nil {
		// Apply the snapshot first.
		return false
	}
	return l.committed > l.applied
}

// nextCommittedEnts returns committed, unapplied entries, at most
// maxApplyingBytes of payload (at least one).
func (l *raftLog) nextCommittedEnts() []raftpb.Entry {
	if !l.hasNextCommittedEnts() {
		return nil
	}
	lo := max(l.applied+1, l.firstIndex())
	ents, err := l.slice(lo, l.committed+1, l.maxApplyingBytes)
	if err != nil {
		panic(fmt.Sprintf("raft: committed entries [%d, %d] unavailable: %v", lo, l.committed, err))
	}
	return ents
}

func (l *raftLog) snapshot() (raftpb.Snapshot, error) {
	if l.unstable.snapshot != nil {
		return *l.unstable.snapshot, nil
	}
	return l.storage.Snapshot()
}

func (l *raftLog) commitTo(toCommit uint64) {
	if l.committed >= toCommit {
		return // never decrease
	}
	if last := l.lastIndex(); last < toCommit {
		panic(fmt.Sprintf("raft: commit %d is out of range [last index %d]", toCommit, last))
	}
	l.committed = toCommit
}

func (l *raftLog) appliedTo(i uint64) {
	if i == 0 {
		return
	}
	if l.committed < i || i < l.applied {
		panic(fmt.Sprintf("raft: applied %d is out of range [prev applied %d, committed %d]", i, l.applied, l.committed))
	}
	l.applied = i
}

// maybeCommit commits up to maxIndex if that entry is from term (§5.4.2: a
// leader counts replicas only for entries of its own term).
func (l *raftLog) maybeCommit(maxIndex, term uint64) bool {
	if maxIndex > l.committed && l.zeroTermOnOutOfRange(maxIndex) == term {
		l.commitTo(maxIndex)
		return true
	}
	return false
}

func (l *raftLog) restore(s raftpb.Snapshot) {
	l.committed = s.Metadata.Index
	l.unstable.restore(s)
}

// entries returns entries from i on, at most maxBytes of payload.
func (l *raftLog) entries(i, maxBytes uint64) ([]raftpb.Entry, error) {
	if i > l.lastIndex() {
		return nil, nil
	}
	return l.slice(i, l.lastIndex()+1, maxBytes)
}

// slice returns entries [lo, hi), at most maxBytes of payload (at least one).
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]raftpb.Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		panic(fmt.Sprintf("raft: slice [%d, %d) out of range [%d, %d]", lo, hi, l.firstIndex(), l.lastIndex()))
	}
	var ents []raftpb.Entry
	if lo < l.unstable.offset {
		stored, err := l.storage.Entries(lo, min(hi, l.unstable.offset), maxBytes)
		if errors.Is(err, ErrCompacted) {
			return nil, err
		} else if err != nil {
			panic(err)
		}
		if uint64(len(stored)) < min(hi, l.unstable.offset)-lo {
			return stored, nil // cut by maxBytes
		}
		ents = stored
	}
	if hi > l.unstable.offset {
		lo2 := max(lo, l.unstable.offset)
		u := l.unstable.entries[lo2-l.unstable.offset : hi-l.unstable.offset]
		if len(ents) > 0 {
			ents = append(append([]raftpb.Entry(nil), ents...), u...)
		} else {
			ents = u
		}
	}
	ents = limitSize(ents, maxBytes)
	return ents[:len(ents):len(ents)], nil
}

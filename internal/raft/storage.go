package raft

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

var (
	// ErrCompacted: the requested index is older than the log's first index.
	ErrCompacted = errors.New("raft: requested index is unavailable due to compaction")
	// ErrUnavailable: the requested index is past the log's last index.
	ErrUnavailable = errors.New("raft: requested entry is unavailable")
	// ErrSnapOutOfDate: a snapshot older than the one already held.
	ErrSnapOutOfDate = errors.New("raft: requested index is older than the existing snapshot")
	// ErrSnapshotTemporarilyUnavailable: the storage is preparing a snapshot;
	// raft asks again later.
	ErrSnapshotTemporarilyUnavailable = errors.New("raft: snapshot is temporarily unavailable")
)

// Storage is the durable log as the raft core reads it. The core never
// writes to it: the caller writes what Ready tells it to persist, then
// calls Advance. Only the driver goroutine calls these methods.
//
// Invariant: the entries after Snapshot().Metadata.Index are all held
// (FirstIndex() <= Snapshot().Metadata.Index+1), because the configuration
// is rebuilt on restart from the snapshot's ConfState plus the
// configuration changes in those entries.
type Storage interface {
	// InitialState returns the saved HardState and the configuration as of
	// the latest snapshot.
	InitialState() (raftpb.HardState, raftpb.ConfState, error)
	// Entries returns entries [lo, hi), at most maxBytes of payload but at
	// least one entry if any is in range.
	Entries(lo, hi, maxBytes uint64) ([]raftpb.Entry, error)
	// Term returns the term of entry i, which must be in
	// [FirstIndex()-1, LastIndex()].
	Term(i uint64) (uint64, error)
	// LastIndex returns the index of the last entry (the snapshot's index
	// if there are none).
	LastIndex() (uint64, error)
	// FirstIndex returns the index of the first entry held.
	FirstIndex() (uint64, error)
	// Snapshot returns the latest snapshot.
	Snapshot() (raftpb.Snapshot, error)
}

// MemoryStorage is a Storage held in memory. The simulator uses one per
// member as its "disk" (it survives a simulated crash); the server keeps one
// as the cache of its WAL.
type MemoryStorage struct {
	mu struct {
		sync.Mutex
		hardState raftpb.HardState
		snapshot  raftpb.Snapshot
		// offset is the index just before ents[0]: the log holds
		// (offset, offset+len(ents)]. offsetTerm is the term at offset.
		// Invariant: offset <= snapshot.Metadata.Index || ents is empty and
		// offset == snapshot.Metadata.Index.
		offset     uint64
		offsetTerm uint64
		ents       []raftpb.Entry
	}
}

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{} }

// InitialState implements Storage.
func (ms *MemoryStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mu.hardState, ms.mu.snapshot.Metadata.ConfState.Clone(), nil
}

// HardState returns the saved hard state.
func (ms *MemoryStorage) HardState() raftpb.HardState {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mu.hardState
}

// SetHardState saves the hard state.
func (ms *MemoryStorage) SetHardState(hs raftpb.HardState) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.mu.hardState = hs
}

// Entries implements Storage.
func (ms *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]raftpb.Entry, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if lo <= ms.mu.offset {
		return nil, ErrCompacted
	}
	last := ms.lastIndexLocked()
	if hi > last+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) past last index %d", ErrUnavailable, lo, hi, last)
	}
	if lo >= hi {
		return nil, nil
	}
	ents := ms.mu.ents[lo-ms.mu.offset-1 : hi-ms.mu.offset-1]
	ents = limitSize(ents, maxBytes)
	// The caller may append to the result; never let that scribble on ours.
	return ents[:len(ents):len(ents)], nil
}

// Term implements Storage.
func (ms *MemoryStorage) Term(i uint64) (uint64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if i < ms.mu.offset {
		return 0, ErrCompacted
	}
	if i == ms.mu.offset {
		return ms.mu.offsetTerm, nil
	}
	if i > ms.lastIndexLocked() {
		return 0, ErrUnavailable
	}
	return ms.mu.ents[i-ms.mu.offset-1].Term, nil
}

// LastIndex implements Storage.
func (ms *MemoryStorage) LastIndex() (uint64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.lastIndexLocked(), nil
}

// REQUIRES: ms.mu held.
func (ms *MemoryStorage) lastIndexLocked() uint64 { return ms.mu.offset + uint64(len(ms.mu.ents)) }

// FirstIndex implements Storage.
func (ms *MemoryStorage) FirstIndex() (uint64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mu.offset + 1, nil
}

// Snapshot implements Storage.
func (ms *MemoryStorage) Snapshot() (raftpb.Snapshot, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mu.snapshot, nil
}

// ApplySnapshot replaces the whole log with snap (a follower installing a
// snapshot from its leader).
func (ms *MemoryStorage) ApplySnapshot(snap raftpb.Snapshot) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if snap.Metadata.Index <= ms.mu.snapshot.Metadata.Index {
		return ErrSnapOutOfDate
	}
	ms.mu.snapshot = snap
	ms.mu.offset = snap.Metadata.Index
	ms.mu.offsetTerm = snap.Metadata.Term
	ms.mu.ents = nil
	return nil
}

// CreateSnapshot records that the state machine was captured at index i
// with configuration cs. It does not drop entries: Compact does.
func (ms *MemoryStorage) CreateSnapshot(i uint64, cs raftpb.ConfState, data []byte) (raftpb.Snapshot, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if i <= ms.mu.snapshot.Metadata.Index {
		return raftpb.Snapshot{}, ErrSnapOutOfDate
	}
	if i > ms.lastIndexLocked() {
		return raftpb.Snapshot{}, fmt.Errorf("%w: snapshot index %d past last index %d", ErrUnavailable, i, ms.lastIndexLocked())
	}
	term := ms.mu.offsetTerm
	if i > ms.mu.offset {
		term = ms.mu.ents[i-ms.mu.offset-1].Term
	}
	ms.mu.snapshot = raftpb.Snapshot{
		Metadata: raftpb.SnapshotMetadata{Index: i, Term: term, ConfState: cs.Clone()},
		Data:     data,
	}
	return ms.mu.snapshot, nil
}

// Compact drops the entries up to and including i. i must not pass the
// latest snapshot (see the Storage invariant).
func (ms *MemoryStorage) Compact(i uint64) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if i <= ms.mu.offset {
		return ErrCompacted
	}
	if i > ms.mu.snapshot.Metadata.Index {
		return fmt.Errorf("raft: compact %d past snapshot %d", i, ms.mu.snapshot.Metadata.Index)
	}
	n := i - ms.mu.offset
	ms.mu.offsetTerm = ms.mu.ents[n-1].Term
	// A copy, so the compacted entries' payloads can be freed; with room
	// to grow to twice the entries kept before Append must copy again.
	rest := ms.mu.ents[n:]
	ms.mu.ents = append(make([]raftpb.Entry, 0, max(2*len(rest), minLogCap)), rest...)
	ms.mu.offset = i
	return nil
}

// minLogCap is the least room for entries a compaction leaves.
const minLogCap = 1024

// appendEntries appends ents to held, doubling its capacity when full.
// Go's append grows a large slice by a quarter at a time: a log that grows
// by ten thousand entries between compactions was copied five times over,
// a tenth of what a follower allocated per put.
func appendEntries(held, ents []raftpb.Entry) []raftpb.Entry {
	if n := len(held) + len(ents); n > cap(held) {
		grown := make([]raftpb.Entry, len(held), max(2*cap(held), n, minLogCap))
		copy(grown, held)
		held = grown
	}
	return append(held, ents...)
}

// Append writes entries, replacing any held entries from ents[0].Index on
// (a follower's log conflicting with its new leader's is cut there).
func (ms *MemoryStorage) Append(ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	first := ents[0].Index
	if first <= ms.mu.offset {
		// Entries already covered by the snapshot are not ours to rewrite.
		skip := ms.mu.offset + 1 - first
		if skip >= uint64(len(ents)) {
			return nil
		}
		ents = ents[skip:]
		first = ents[0].Index
	}
	last := ms.lastIndexLocked()
	if first > last+1 {
		return fmt.Errorf("raft: append at %d leaves a gap after last index %d", first, last)
	}
	if first == last+1 {
		ms.mu.ents = appendEntries(ms.mu.ents, ents)
		return nil
	}
	// Truncation: copy, so slices handed out by Entries never change under
	// their holders.
	kept := ms.mu.ents[:first-ms.mu.offset-1]
	ms.mu.ents = append(append(make([]raftpb.Entry, 0, len(kept)+len(ents)), kept...), ents...)
	return nil
}

// limitSize returns the longest prefix of ents whose payload fits maxBytes,
// but always at least one entry.
func limitSize(ents []raftpb.Entry, maxBytes uint64) []raftpb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := ents[0].PayloadSize()
	for i := 1; i < len(ents); i++ {
		size += ents[i].PayloadSize()
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}

// payloadSize is the total payload of ents.
func payloadSize(ents []raftpb.Entry) uint64 {
	var s uint64
	for i := range ents {
		s += ents[i].PayloadSize()
	}
	return s
}

package wal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/invariants"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

var (
	// ErrCorrupt is damage that is not a torn tail: the WAL refuses to open
	// rather than drop a record that may have been acknowledged.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrExist is returned by Create when the directory already holds a WAL.
	ErrExist = errors.New("wal: already exists")
	// ErrNotExist is returned by Open when the directory holds no WAL.
	ErrNotExist = errors.New("wal: does not exist")
	// ErrSnapshotNotFound means the WAL holds no record of the snapshot
	// Open was asked to start from (or no longer holds the segments after
	// it).
	ErrSnapshotNotFound = errors.New("wal: snapshot not found")
	// ErrSnapshotMismatch means the WAL recorded a snapshot at the index
	// asked for, but with another term.
	ErrSnapshotMismatch = errors.New("wal: snapshot term mismatch")
	// ErrSnapshotSuperseded means the log was replaced by an installed
	// snapshot newer than the one Open was asked to start from: the entries
	// in between are gone, so recovery must start from that snapshot.
	ErrSnapshotSuperseded = errors.New("wal: log replaced by a newer installed snapshot")
	// ErrEntryGap is returned by Save for entries that do not continue the
	// log, or that would rewrite what a snapshot covers: written, they
	// would read back as another log.
	ErrEntryGap = errors.New("wal: entries do not continue the log")
	// ErrSnapshotPastLog is returned by SaveSnapshot for a snapshot of
	// entries the log does not have.
	ErrSnapshotPastLog = errors.New("wal: snapshot past the end of the log")
	// ErrRecordTooLarge is returned by Save for an entry over MaxRecordBytes.
	ErrRecordTooLarge = errors.New("wal: record too large")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("wal: closed")
)

// Metadata identifies the member a WAL belongs to. It is written at the
// start of every segment; Open refuses a WAL whose segments disagree.
type Metadata struct {
	MemberID  uint64
	ClusterID uint64
}

// Snapshot is a snapshot's position in the log, as the WAL records it.
type Snapshot struct {
	Index uint64
	Term  uint64
}

// State is what Open reads back: everything persisted after the snapshot
// it started from.
type State struct {
	Metadata  Metadata
	HardState raftpb.HardState
	// Entries follow the snapshot without a gap: Entries[0].Index is the
	// snapshot's index + 1.
	Entries []raftpb.Entry
}

// Options tune a WAL. The zero value is usable.
type Options struct {
	// SegmentBytes is the size segments are preallocated to and cut at.
	// Default 64 MiB.
	SegmentBytes int64
	// KeepReleased is how many segments older than the latest snapshot
	// Release keeps, so that older snapshots recorded in them stay valid
	// to open from (see ValidSnapshots) should the newest snapshot file
	// turn out unreadable. Default 0.
	KeepReleased int
	// KeepSegments is how many segments Release leaves on disk at least,
	// live ones included: released segments go, oldest first, only while
	// more than KeepSegments remain (etcd's --max-wals; math.MaxInt keeps
	// every segment, as --max-wals=0 does). Default 0: every released
	// segment beyond KeepReleased goes. Segments a snapshot still needs
	// are never removed, however many there are.
	KeepSegments int
	// Logger receives repairs and releases. Default: no logging.
	Logger *zap.Logger
	// Metrics count writes and fsyncs. Default: metrics of the WAL's own,
	// not registered.
	Metrics *Metrics
}

func (o Options) withDefaults() Options {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	// Records are 8-byte aligned; so is the end of a segment, so that the
	// zeros after the last record can always hold a (zero) header.
	o.SegmentBytes = (o.SegmentBytes + 7) &^ 7
	if o.KeepReleased < 0 {
		o.KeepReleased = 0
	}
	if o.KeepSegments < 0 {
		o.KeepSegments = 0
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return o
}

// WAL is an open write-ahead log, positioned to append after its last
// valid record. It is safe for concurrent use, though the server calls it
// from its one Ready loop (and Release from the snapshotter).
type WAL struct {
	fs   vfs.FS
	dir  string
	opts Options
	md   Metadata

	mu struct {
		sync.Mutex
		// err is the first write or sync failure (or ErrClosed). Once set,
		// every call returns it: what reached the disk is unknown.
		err error
		// segments are the live segments, oldest first. The last is tail.
		segments []segment
		tail     vfs.File
		// offset is where the next record goes in tail.
		// Invariant: offset <= allocated.
		offset    int64
		allocated int64
		// crc is the chain's value after the last record written.
		crc uint32
		// lastIndex is the index of the last entry in the log (or of the
		// snapshot the log starts from).
		lastIndex uint64
		// snapIndex is the newest snapshot's index: entries at or below it
		// are never written again. Invariant: snapIndex <= lastIndex.
		snapIndex uint64
		// state is the last HardState written.
		state raftpb.HardState
		// snaps are the snapshots recorded in the live segments, less
		// those an installed snapshot replaced, in record order: what
		// the package's ValidSnapshots reads from the disk, kept as the
		// records are written (see (*WAL).ValidSnapshots).
		snaps snapshotList
		// unsynced is set when tail has writes that are not yet synced.
		unsynced bool
		// dropped is where tail's pages from the start were let go from
		// the page cache (dropSyncedLocked). Invariant: dropped <= offset.
		dropped int64
		buf     []byte
	}
}

// Exists reports whether dir holds a WAL, or anything like one: a damaged
// WAL exists too, and must be opened (and refused), never written over.
func Exists(fs vfs.FS, dir string) (bool, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".wal") }), nil
}

// Create makes a new WAL in dir (created if missing), for the member md.
// The first segment records an empty snapshot at {0, 0}, so the WAL can
// be opened from Snapshot{}.
func Create(fs vfs.FS, dir string, md Metadata, opts Options) (*WAL, error) {
	opts = opts.withDefaults()
	exists, err := Exists(fs, dir)
	if err != nil {
		return nil, err
	}
	if exists {
		return nil, fmt.Errorf("%w: %s", ErrExist, dir)
	}
	// The directory's own name must be durable before anything in it is.
	if err := vfs.MkdirAllDurable(fs, dir); err != nil {
		return nil, err
	}
	if err := removeTemps(fs, dir); err != nil {
		return nil, err
	}
	w := &WAL{fs: fs, dir: dir, opts: opts, md: md}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.startSegmentLocked(segment{seq: 0, index: 0}, func(buf []byte, crc uint32) ([]byte, uint32) {
		return appendRecord(buf, crc, snapshotType, snapshotPayload(Snapshot{}, snapshotTaken))
	}); err != nil {
		return nil, err
	}
	w.mu.snaps = snapshotList{{}} // in segment 0
	return w, nil
}

// Open reads the WAL in dir from the snapshot snap (Snapshot{} for none),
// repairs a torn tail, and returns the WAL positioned to append, with the
// state it read. snap must be a snapshot the WAL recorded (see
// ValidSnapshots).
func Open(fs vfs.FS, dir string, snap Snapshot, opts Options) (*WAL, State, error) {
	opts = opts.withDefaults()
	if err := removeTemps(fs, dir); err != nil {
		return nil, State{}, err
	}
	segs, err := listSegments(fs, dir)
	if err != nil {
		return nil, State{}, err
	}
	if len(segs) == 0 {
		return nil, State{}, fmt.Errorf("%w: %s", ErrNotExist, dir)
	}
	// Start at the last segment that can hold entries at or below the
	// snapshot's index: everything after the snapshot is there or later.
	start := -1
	for i, s := range segs {
		if s.index <= snap.Index {
			start = i
		}
	}
	if start < 0 {
		return nil, State{}, fmt.Errorf("%w: %+v: the oldest segment, %s, starts after it",
			ErrSnapshotNotFound, snap, filepath.Join(dir, segs[0].name()))
	}

	var (
		st        State
		haveMD    bool
		found     bool
		readErr   error
		lastState raftpb.HardState
		snaps     snapshotList
	)
	if start > 0 {
		// The snapshots recorded before the one opened from, for
		// (*WAL).ValidSnapshots: only their records are read.
		_, err := scan(fs, dir, segs[:start], false, func(seg segment, rec record) error {
			if rec.typ != snapshotType {
				return nil
			}
			m, kind, err := decodeSnapshot(rec.payload)
			if err == nil {
				snaps = snaps.add(m, kind, seg.seq)
			}
			return err
		})
		if err != nil {
			return nil, State{}, err
		}
	}
	// The entries in st.Entries are those after base = snap.Index.
	base := snap.Index
	snapIndex := snap.Index // the newest snapshot recorded
	end, err := scan(fs, dir, segs[start:], true, func(s segment, rec record) error {
		switch rec.typ {
		case metadataType:
			md, err := decodeMetadata(rec.payload)
			if err != nil {
				return err
			}
			if haveMD && md != st.Metadata {
				return fmt.Errorf("%w: metadata %+v differs from %+v", ErrCorrupt, md, st.Metadata)
			}
			st.Metadata, haveMD = md, true
		case entryType:
			var e raftpb.Entry
			if err := e.Unmarshal(rec.payload); err != nil {
				return fmt.Errorf("%w: entry: %v", ErrCorrupt, err)
			}
			if e.Index <= base {
				// Covered by the snapshot.
				return nil
			}
			up := e.Index - base - 1
			if up > uint64(len(st.Entries)) {
				return fmt.Errorf("%w: entry %d follows entry %d", ErrCorrupt, e.Index, base+uint64(len(st.Entries)))
			}
			// An entry at index i replaces everything from i on.
			st.Entries = append(st.Entries[:up], e)
		case stateType:
			if err := lastState.Unmarshal(rec.payload); err != nil {
				return fmt.Errorf("%w: state: %v", ErrCorrupt, err)
			}
			st.HardState = lastState
		case snapshotType:
			m, kind, err := decodeSnapshot(rec.payload)
			if err != nil {
				return err
			}
			if kind == snapshotInstalled {
				if m.Index > base {
					// Fatal for this open, but keep it apart from damage.
					readErr = fmt.Errorf("%w: %s: snapshot %+v installed after %+v", ErrSnapshotSuperseded, filepath.Join(dir, s.name()), m, snap)
					return errStopScan
				}
				// Everything before this record above m was replaced; the
				// entries held are all above base >= m.
				st.Entries = st.Entries[:0]
				st.HardState.Commit = max(st.HardState.Commit, m.Index)
			}
			snapIndex = max(snapIndex, m.Index)
			snaps = snaps.add(m, kind, s.seq)
			if m.Index == snap.Index {
				if m.Term != snap.Term {
					readErr = fmt.Errorf("%w: %s recorded %+v, asked for %+v", ErrSnapshotMismatch, filepath.Join(dir, s.name()), m, snap)
					return errStopScan
				}
				found = true
			}
		}
		return nil
	})
	if readErr != nil {
		return nil, State{}, readErr
	}
	if err != nil {
		return nil, State{}, err
	}
	if !found {
		return nil, State{}, fmt.Errorf("%w: %+v is not recorded in %s", ErrSnapshotNotFound, snap, dir)
	}
	lastIndex := base + uint64(len(st.Entries))
	if st.HardState.Commit > lastIndex {
		return nil, State{}, fmt.Errorf("%w: %s: commit %d is past the last entry %d", ErrCorrupt, dir, st.HardState.Commit, lastIndex)
	}

	w := &WAL{fs: fs, dir: dir, opts: opts, md: st.Metadata}
	tailSeg := segs[len(segs)-1]
	tail, err := fs.OpenReadWrite(filepath.Join(dir, tailSeg.name()))
	if err != nil {
		return nil, State{}, err
	}
	fi, err := tail.Stat()
	if err != nil {
		tail.Close()
		return nil, State{}, err
	}
	if end.dropped != nil {
		opts.Logger.Warn("wal: dropping the bytes after the last valid record (an unsynced write cut by a crash, or damage)",
			zap.String("file", filepath.Join(dir, tailSeg.name())),
			zap.Int64("offset", end.offset),
			zap.NamedError("reason", end.dropped))
	}
	// Even a tail that ended cleanly (in zeros) can have pieces of an
	// unsynced write after it, in sectors that reached the disk when the one
	// before them did not. Zero everything after the last record, durably,
	// before appending: else the next records could end up followed by
	// stale bytes that read as records.
	allocated := max(fi.Size(), opts.SegmentBytes)
	if err := resetTail(tail, end.offset, allocated); err != nil {
		tail.Close()
		return nil, State{}, fmt.Errorf("wal: zeroing %s after offset %d: %w", filepath.Join(dir, tailSeg.name()), end.offset, err)
	}
	w.mu.segments = segs
	w.mu.snaps = snaps
	w.mu.tail = tail
	w.mu.offset = end.offset
	w.mu.dropped = 0
	w.mu.allocated = allocated
	w.mu.crc = end.crc
	w.mu.lastIndex = lastIndex
	w.mu.snapIndex = min(snapIndex, lastIndex)
	w.mu.state = st.HardState
	return w, st, nil
}

// resetTail cuts a segment at its last valid record and zeroes what
// follows, durably, so the next append starts clean. Truncating and
// preallocating again is a metadata operation: nothing is written out.
func resetTail(f vfs.File, offset, size int64) error {
	if err := f.Truncate(offset); err != nil {
		return err
	}
	if err := f.Preallocate(size); err != nil {
		return err
	}
	return f.Sync()
}

// ValidSnapshots returns, in the order they were recorded, the snapshots
// the WAL in dir can be opened from: those recorded in its segments whose
// index is committed, that no later installed snapshot replaced, and that
// the live segments still reach back to. The caller restores from the
// newest one whose snapshot file it can read.
func ValidSnapshots(fs vfs.FS, dir string) ([]Snapshot, error) {
	segs, err := listSegments(fs, dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, dir)
	}
	var (
		snaps  snapshotList
		commit uint64
	)
	_, err = scan(fs, dir, segs, false, func(seg segment, rec record) error {
		switch rec.typ {
		case stateType:
			var hs raftpb.HardState
			if err := hs.Unmarshal(rec.payload); err != nil {
				return fmt.Errorf("%w: state: %v", ErrCorrupt, err)
			}
			commit = hs.Commit
		case snapshotType:
			m, kind, err := decodeSnapshot(rec.payload)
			if err != nil {
				return err
			}
			if kind == snapshotInstalled {
				commit = max(commit, m.Index)
			}
			snaps = snaps.add(m, kind, seg.seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return snaps.valid(commit, segs), nil
}

// ValidSnapshots is the package's ValidSnapshots for this WAL's directory,
// from memory: the WAL keeps the list as it writes its records (it read
// the records before its own at Open), where the package's function reads
// every live segment. A member takes a snapshot every --snapshot-count
// entries and purges old snapshot files after each; reading 64-128 MiB of
// segments back from the disk every time competed with the WAL's fsyncs.
func (w *WAL) ValidSnapshots() ([]Snapshot, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil {
		return nil, w.mu.err
	}
	// Released segments take their records with them.
	first := w.mu.segments[0].seq
	w.mu.snaps = slices.DeleteFunc(w.mu.snaps, func(s recordedSnapshot) bool { return s.seq < first })
	return w.mu.snaps.valid(w.mu.state.Commit, w.mu.segments), nil
}

// snapshotList is the snapshots recorded in a run of records, in order,
// less those an installed snapshot replaced.
type snapshotList []recordedSnapshot

// recordedSnapshot is a snapshot and the segment (its seq) recording it.
type recordedSnapshot struct {
	Snapshot
	seq uint64
}

// add is the record of snapshot m, of kind snapshotTaken or
// snapshotInstalled, in the segment numbered seq.
func (l snapshotList) add(m Snapshot, kind uint8, seq uint64) snapshotList {
	if kind == snapshotInstalled {
		// Opening from an older snapshot would meet this record.
		l = slices.DeleteFunc(l, func(s recordedSnapshot) bool { return s.Index < m.Index })
	}
	return append(l, recordedSnapshot{m, seq})
}

// valid returns a new list of the snapshots that can be opened from, with
// commit the last commit index recorded and segs the live segments.
func (l snapshotList) valid(commit uint64, segs []segment) []Snapshot {
	// Segment indexes are not monotonic (an installed snapshot rewinds
	// the log): the lowest of them bounds where Open can start.
	lowest := slices.MinFunc(segs, func(a, b segment) int { return cmp.Compare(a.index, b.index) }).index
	var valid []Snapshot
	for _, s := range l {
		// Open starts at a segment whose index is at most the snapshot's.
		if s.Index <= commit && s.Index >= lowest {
			valid = append(valid, s.Snapshot)
		}
	}
	return valid
}

// maxKeptBuffer bounds the encoding buffer a WAL keeps between writes: a
// few large entries' worth, so that a run of large puts does not allocate
// (and zero) a buffer per write.
const maxKeptBuffer = 4 << 20

// Save appends entries and then the HardState (if not empty and changed),
// and syncs if mustSync. Entries must continue the log: the first at most
// one past the last entry saved (lower indexes replace the suffix from
// there on), the rest consecutive.
//
// An error from Save is fatal (see the package doc).
func (w *WAL) Save(hs raftpb.HardState, ents []raftpb.Entry, mustSync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil {
		return w.mu.err
	}
	// need sizes the buffer for the whole write, one allocation: grown
	// entry by entry, a batch of large entries was copied over and over
	// (a 1 MiB put's entry cost more in regrowing than in encoding).
	need := 0
	if len(ents) > 0 {
		if first := ents[0].Index; first <= w.mu.snapIndex || first > w.mu.lastIndex+1 {
			return fmt.Errorf("%w: entry %d, with the log at %d and its snapshot at %d",
				ErrEntryGap, first, w.mu.lastIndex, w.mu.snapIndex)
		}
		for i := range ents {
			if i > 0 && ents[i].Index != ents[i-1].Index+1 {
				return fmt.Errorf("%w: entry %d after entry %d", ErrEntryGap, ents[i].Index, ents[i-1].Index)
			}
			size := ents[i].Size() + 1
			if size > MaxRecordBytes {
				return fmt.Errorf("%w: entry %d is %d bytes, over %d", ErrRecordTooLarge, ents[i].Index, size, MaxRecordBytes)
			}
			need += frameBytes(size)
		}
	}
	writeState := !hs.IsEmpty() && hs != w.mu.state
	if writeState {
		need += frameBytes(hs.Size() + 1)
	}
	buf, crc := slices.Grow(w.mu.buf[:0], need), w.mu.crc
	for i := range ents {
		buf, crc = appendRecord(buf, crc, entryType, ents[i].MarshalTo)
	}
	if writeState {
		buf, crc = appendRecord(buf, crc, stateType, hs.MarshalTo)
	}
	if len(buf) > 0 {
		if err := w.writeLocked(buf, crc); err != nil {
			return err
		}
		if len(ents) > 0 {
			w.mu.lastIndex = ents[len(ents)-1].Index
		}
		if writeState {
			w.mu.state = hs
		}
	}
	if cap(buf) <= maxKeptBuffer {
		w.mu.buf = buf
	}
	if w.mu.offset >= w.opts.SegmentBytes {
		// cutLocked syncs the segment it closes.
		return w.cutLocked()
	}
	if mustSync {
		return w.syncLocked()
	}
	return nil
}

// SaveSnapshot records that this member took a snapshot of its own applied
// state at snap, and syncs. The log after snap.Index stays; segments before
// it can then be released. Save the snapshot file first: the WAL's record
// is what makes the file eligible to restore from.
func (w *WAL) SaveSnapshot(snap Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil {
		return w.mu.err
	}
	if snap.Index > w.mu.lastIndex {
		return fmt.Errorf("%w: snapshot at %d, last entry %d", ErrSnapshotPastLog, snap.Index, w.mu.lastIndex)
	}
	return w.saveSnapshotLocked(snap, snapshotTaken)
}

// ResetToSnapshot records that the log was replaced by snap, a snapshot
// received from the leader (raft's Ready.Snapshot), and syncs: entries
// after snap.Index saved before it are discarded, and the next entry saved
// must be snap.Index+1. Save the snapshot file first.
func (w *WAL) ResetToSnapshot(snap Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil {
		return w.mu.err
	}
	return w.saveSnapshotLocked(snap, snapshotInstalled)
}

// REQUIRES: w.mu held.
func (w *WAL) saveSnapshotLocked(snap Snapshot, kind uint8) error {
	buf, crc := appendRecord(w.mu.buf[:0], w.mu.crc, snapshotType, snapshotPayload(snap, kind))
	if err := w.writeLocked(buf, crc); err != nil {
		return err
	}
	w.mu.snaps = w.mu.snaps.add(snap, kind, w.mu.segments[len(w.mu.segments)-1].seq)
	if kind == snapshotInstalled {
		// Before any cut: a segment started after this record must start
		// above the snapshot, or Open from it would begin after the
		// record; and its header's HardState must not take back the
		// commit the record implies.
		w.mu.lastIndex = snap.Index
		w.mu.state.Commit = max(w.mu.state.Commit, snap.Index)
	}
	w.mu.snapIndex = max(w.mu.snapIndex, snap.Index)
	if w.mu.offset >= w.opts.SegmentBytes {
		return w.cutLocked()
	}
	return w.syncLocked()
}

// Sync makes everything saved so far durable.
func (w *WAL) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil {
		return w.mu.err
	}
	return w.syncLocked()
}

// Release removes the segments that only hold what precedes the snapshot
// at index (which must be recorded by SaveSnapshot or ResetToSnapshot
// first), except the newest Options.KeepReleased of them, oldest first and
// only while more than Options.KeepSegments segments remain. It returns how
// many it removed. The segment being appended to is never removed. The
// removals happen outside the WAL's lock: Save goes on meanwhile.
func (w *WAL) Release(index uint64) (int, error) {
	w.mu.Lock()
	if err := w.mu.err; err != nil {
		w.mu.Unlock()
		return 0, err
	}
	// Open from a snapshot at index starts at the last segment whose index
	// is at most index; keep that one and everything after.
	start := 0
	for i, s := range w.mu.segments {
		if s.index <= index {
			start = i
		}
	}
	n := min(start-w.opts.KeepReleased, len(w.mu.segments)-w.opts.KeepSegments)
	if n <= 0 {
		w.mu.Unlock()
		return 0, nil
	}
	released := slices.Clone(w.mu.segments[:n])
	w.mu.segments = slices.Delete(w.mu.segments, 0, n)
	w.mu.Unlock()

	// Oldest first, so a crash midway leaves the survivors consecutive.
	for _, s := range released {
		if err := w.fs.Remove(filepath.Join(w.dir, s.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("wal: releasing %s: %w", s.name(), err)
		}
	}
	if err := vfs.SyncDir(w.fs, w.dir); err != nil {
		return 0, fmt.Errorf("wal: releasing: %w", err)
	}
	w.opts.Logger.Info("wal: released segments",
		zap.String("first", released[0].name()), zap.String("last", released[n-1].name()))
	return n, nil
}

// Close syncs and closes the WAL.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err == ErrClosed {
		return ErrClosed
	}
	// A WAL that failed reports it again: what it holds is unknown.
	err := w.mu.err
	if err == nil {
		err = w.syncLocked()
	}
	if cerr := w.mu.tail.Close(); err == nil {
		err = cerr
	}
	w.mu.err = ErrClosed
	return err
}

// LastIndex returns the index of the last entry saved.
func (w *WAL) LastIndex() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.lastIndex
}

// Segments returns the names of the live segments, oldest first.
func (w *WAL) Segments() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, len(w.mu.segments))
	for i, s := range w.mu.segments {
		names[i] = s.name()
	}
	return names
}

// writeLocked appends framed records at the tail; crc is the chain's value
// after them. A failure is sticky.
//
// REQUIRES: w.mu held.
func (w *WAL) writeLocked(buf []byte, crc uint32) error {
	end := w.mu.offset + int64(len(buf))
	if end > w.mu.allocated {
		if err := w.mu.tail.Preallocate(end); err != nil {
			return w.failLocked(fmt.Errorf("wal: preallocating: %w", err))
		}
		w.mu.allocated = end
	}
	start := time.Now()
	n, err := w.mu.tail.WriteAt(buf, w.mu.offset)
	w.opts.Metrics.writeSeconds.Observe(time.Since(start).Seconds())
	w.opts.Metrics.writeBytes.Add(float64(n))
	if err != nil {
		// Part of buf may sit in the page cache, to be written back
		// later: a record cut short, which the next Open could not tell
		// from damage. Drop it (best effort; the WAL is failed anyway).
		_ = resetTail(w.mu.tail, w.mu.offset, w.mu.allocated)
		return w.failLocked(fmt.Errorf("wal: writing: %w", err))
	}
	w.mu.offset = end
	if invariants.Enabled && w.mu.offset > w.mu.allocated {
		panic(fmt.Sprintf("wal: wrote to %d, past the %d bytes allocated", w.mu.offset, w.mu.allocated))
	}
	w.mu.crc = crc
	w.mu.unsynced = true
	return nil
}

// REQUIRES: w.mu held.
func (w *WAL) syncLocked() error {
	if !w.mu.unsynced {
		return nil
	}
	start := time.Now()
	if err := w.mu.tail.Sync(); err != nil {
		return w.failLocked(fmt.Errorf("wal: syncing: %w", err))
	}
	w.opts.Metrics.fsyncSeconds.Observe(time.Since(start).Seconds())
	w.mu.unsynced = false
	w.dropSyncedLocked()
	return nil
}

// dropEvery is how many synced bytes of the tail accumulate before their
// pages are let go from the page cache.
const dropEvery = 1 << 20

// dropSyncedLocked lets go of the page cache's copy of the tail's synced
// whole pages, a megabyte at a time. The WAL is read back only when the
// member starts (and off the raft loop to find snapshots), so its pages
// only crowd out pebble's tables, and each new page the cache takes costs
// a page allocation (on a virtual machine, memory the host may have to
// fault in: there, writing a 1 MiB entry cost several times the CPU of
// writing over freed pages). PostgreSQL lets go of WAL segments likewise.
// The last, partial page stays: the next record fills it, and dropping
// it would make that write read it back.
//
// REQUIRES: w.mu held; the tail synced up to offset.
func (w *WAL) dropSyncedLocked() {
	end := w.mu.offset &^ (pageBytes - 1)
	if end-w.mu.dropped < dropEvery {
		return
	}
	w.dropLocked(w.mu.tail, w.mu.dropped, end)
	w.mu.dropped = end
	if invariants.Enabled && w.mu.dropped > w.mu.offset {
		panic(fmt.Sprintf("wal: dropped the cache up to %d, past the tail's end %d", w.mu.dropped, w.mu.offset))
	}
}

// dropLocked drops f's cached pages in [from, to), if f can.
func (w *WAL) dropLocked(f vfs.File, from, to int64) {
	if d, ok := f.(vfs.CacheDropper); ok && to > from {
		// Only a hint: a failure costs memory, not data.
		_ = d.DropCache(from, to-from)
	}
}

// pageBytes is the page size dropSyncedLocked assumes (4 KiB: on larger
// pages it drops less, the partial page's neighbours kept).
const pageBytes = 4 << 10

// REQUIRES: w.mu held.
func (w *WAL) failLocked(err error) error {
	w.mu.err = err
	return err
}

// cutLocked syncs the tail and starts the next segment after it.
//
// REQUIRES: w.mu held.
func (w *WAL) cutLocked() error {
	if err := w.syncLocked(); err != nil {
		return err
	}
	last := w.mu.segments[len(w.mu.segments)-1]
	next := segment{seq: last.seq + 1, index: w.mu.lastIndex + 1}
	state := w.mu.state
	old, oldDropped, oldEnd := w.mu.tail, w.mu.dropped, w.mu.offset
	if err := w.startSegmentLocked(next, func(buf []byte, crc uint32) ([]byte, uint32) {
		if state.IsEmpty() {
			return buf, crc
		}
		return appendRecord(buf, crc, stateType, state.MarshalTo)
	}); err != nil {
		return w.failLocked(err)
	}
	// Everything in it is durable (and never written again): its pages
	// can go, and a failure to close loses nothing.
	w.dropLocked(old, oldDropped, oldEnd)
	if err := old.Close(); err != nil {
		w.opts.Logger.Warn("wal: closing a finished segment", zap.String("segment", last.name()), zap.Error(err))
	}
	return nil
}

// startSegmentLocked creates segment s durably, with its header records
// (crc and metadata, then whatever more adds), and makes it the tail.
//
// REQUIRES: w.mu held.
func (w *WAL) startSegmentLocked(s segment, more func([]byte, uint32) ([]byte, uint32)) error {
	name := filepath.Join(w.dir, s.name())
	tmp := name + ".tmp"
	f, err := w.fs.Create(tmp)
	if err != nil {
		return err
	}
	chain := w.mu.crc
	buf, _ := appendRecord(w.mu.buf[:0], 0, crcType, func(b []byte) []byte {
		return binary.LittleEndian.AppendUint32(b, chain)
	})
	buf, crc := appendRecord(buf, chain, metadataType, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint64(b, w.md.MemberID)
		return binary.LittleEndian.AppendUint64(b, w.md.ClusterID)
	})
	buf, crc = more(buf, crc)
	size := max(w.opts.SegmentBytes, int64(len(buf)))
	err = f.Preallocate(size)
	if err == nil {
		_, err = f.WriteAt(buf, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = w.fs.Rename(tmp, name)
	}
	if err == nil {
		err = vfs.SyncDir(w.fs, w.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("wal: starting segment %s: %w", s.name(), err)
	}
	w.mu.segments = append(w.mu.segments, s)
	w.mu.tail = f
	w.mu.offset = int64(len(buf))
	w.mu.dropped = 0
	w.mu.allocated = size
	w.mu.crc = crc
	w.mu.unsynced = false
	return nil
}

const (
	snapshotTaken     uint8 = 0
	snapshotInstalled uint8 = 1
)

func snapshotPayload(s Snapshot, kind uint8) func([]byte) []byte {
	return func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint64(b, s.Index)
		b = binary.LittleEndian.AppendUint64(b, s.Term)
		return append(b, kind)
	}
}

func decodeSnapshot(p []byte) (Snapshot, uint8, error) {
	if len(p) != 17 || p[16] > snapshotInstalled {
		return Snapshot{}, 0, fmt.Errorf("%w: bad snapshot record (%d bytes)", ErrCorrupt, len(p))
	}
	return Snapshot{Index: binary.LittleEndian.Uint64(p), Term: binary.LittleEndian.Uint64(p[8:])}, p[16], nil
}

func decodeMetadata(p []byte) (Metadata, error) {
	if len(p) != 16 {
		return Metadata{}, fmt.Errorf("%w: bad metadata record (%d bytes)", ErrCorrupt, len(p))
	}
	return Metadata{MemberID: binary.LittleEndian.Uint64(p), ClusterID: binary.LittleEndian.Uint64(p[8:])}, nil
}

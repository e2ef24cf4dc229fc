package wal

import (
	"errors"
	"slices"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// Regression tests for bugs a review found; each says what it proves.

// flipBit flips one bit of a MemFS file, durably.
func flipBit(t *testing.T, fs *vfs.MemFS, path string, off int64) {
	t.Helper()
	f, err := fs.OpenReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x04
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func tailPath(w *WAL) string {
	segs := w.Segments()
	return w.dir + "/" + segs[len(segs)-1]
}

// An installed snapshot whose record fills a segment starts the next one
// with a HardState that keeps the commit the install implies: otherwise,
// after a restart, the install is not a valid snapshot and nothing is.
func TestInstallThatCutsKeepsCommit(t *testing.T) {
	probe := func(fs vfs.FS, segmentBytes int64) int64 {
		w := mustCreate(t, fs, "/wal", Options{SegmentBytes: segmentBytes})
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, ents(1, 10, 1))
		off := w.mu.offset
		if err := w.ResetToSnapshot(Snapshot{Index: 100, Term: 2}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil { // a crash before raft's next Save
			t.Fatal(err)
		}
		return off
	}
	off := probe(vfs.NewMem(), 1<<20)
	fs := vfs.NewMem()
	probe(fs, off+8) // the install record crosses SegmentBytes
	valid, err := ValidSnapshots(fs, "/wal")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Snapshot{{100, 2}}; !slices.Equal(valid, want) {
		t.Fatalf("ValidSnapshots = %v, want %v", valid, want)
	}
	_, st := mustOpen(t, fs, "/wal", valid[0], Options{})
	if st.HardState.Commit != 100 || len(st.Entries) != 0 {
		t.Fatalf("state %+v, entries %s", st.HardState, describe(st.Entries))
	}
}

// A damaged WAL still exists: Create must not write a new one over it (a
// server choosing between Create and Open would start over, forgetting its
// term and vote).
func TestCreateRefusesDamagedWAL(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{SegmentBytes: 4096}
	w := mustCreate(t, fs, "/wal", opts)
	for i := uint64(1); i <= 200; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
	}
	segs := w.Segments()
	w.Close()
	if err := fs.Remove("/wal/" + segs[1]); err != nil {
		t.Fatal(err)
	}
	if exists, err := Exists(fs, "/wal"); err != nil || !exists {
		t.Fatalf("Exists = %v, %v", exists, err)
	}
	if _, err := Create(fs, "/wal", testMD, opts); !errors.Is(err, ErrExist) {
		t.Fatalf("Create over a damaged WAL: got %v, want ErrExist", err)
	}
	if _, _, err := Open(fs, "/wal", Snapshot{}, opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: got %v, want ErrCorrupt", err)
	}
}

// Create makes every directory it creates durable, not just the last.
func TestCreateMakesParentsDurable(t *testing.T) {
	fs := vfs.NewMem()
	w := mustCreate(t, fs, "/data/member/wal", Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 1}, ents(1, 1, 1))
	fs.Crash()
	_, st := mustOpen(t, fs, "/data/member/wal", Snapshot{}, Options{})
	checkEntries(t, st.Entries, ents(1, 1, 1))
}

// A bit flip in a record whose data ends in zeros spilling a few bytes into
// the next sector is corruption when more records follow in that sector: a
// torn write would have zeroed the whole sector.
func TestBitFlipBeforeAFewTrailingZeros(t *testing.T) {
	fs := vfs.NewMem()
	w := mustCreate(t, fs, "/wal", Options{SegmentBytes: 1 << 20})
	mustSave(t, w, raftpb.HardState{Term: 1}, ents(1, 3, 1))
	off := w.mu.offset
	// Find a data length that ends the record 1 to 7 bytes into a sector.
	var e raftpb.Entry
	for n := 1; ; n++ {
		e = raftpb.Entry{Index: 4, Term: 1, Data: make([]byte, n)}
		end := off + headerBytes + 1 + int64(e.Size())
		if end%sectorBytes >= 1 && end%sectorBytes <= 7 && end-off > sectorBytes {
			break
		}
	}
	// Zeros only in the bytes past the sector boundary: a whole sector of
	// zeros in the data would be indistinguishable from a torn write.
	for j := range e.Data {
		e.Data[j] = 0xab
	}
	clear(e.Data[len(e.Data)-8:])
	mustSave(t, w, raftpb.HardState{Term: 1}, []raftpb.Entry{e})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, ents(5, 10, 1))
	path := tailPath(w)
	w.Close()
	flipBit(t, fs, path, off+headerBytes+2)
	if _, _, err := Open(fs, "/wal", Snapshot{}, Options{SegmentBytes: 1 << 20}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

// A bit flip in the last record is corruption even when the record ends in
// a zero byte (an empty entry, a snapshot record, a HardState with commit
// 0): trailing zeros are no evidence of a torn write.
func TestBitFlipInLastRecordEndingInZero(t *testing.T) {
	fs := vfs.NewMem()
	w := mustCreate(t, fs, "/wal", Options{SegmentBytes: 1 << 20})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 1}, ents(1, 3, 1))
	off := w.mu.offset
	mustSave(t, w, raftpb.HardState{}, []raftpb.Entry{{Index: 4, Term: 2}})
	path := tailPath(w)
	w.Close()
	flipBit(t, fs, path, off+headerBytes+2)
	if _, _, err := Open(fs, "/wal", Snapshot{}, Options{SegmentBytes: 1 << 20}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

// Every snapshot ValidSnapshots lists can be opened from, after releases
// too: a lagging snapshot recorded in a segment that starts above it is
// not valid once the segments before are gone.
func TestValidSnapshotsAfterRelease(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{SegmentBytes: 4096}
	w := mustCreate(t, fs, "/wal", opts)
	i := uint64(0)
	saveUntil := func(segments int) {
		for len(w.Segments()) < segments {
			i++
			mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
		}
	}
	saveUntil(2)
	lagging := Snapshot{Index: i - 5, Term: 1}
	if err := w.SaveSnapshot(lagging); err != nil {
		t.Fatal(err)
	}
	saveUntil(3)
	newer := Snapshot{Index: i, Term: 1}
	if err := w.SaveSnapshot(newer); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Release(newer.Index); err != nil {
		t.Fatal(err)
	}
	w.Close()
	valid, err := ValidSnapshots(fs, "/wal")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(valid, lagging) || !slices.Contains(valid, newer) {
		t.Fatalf("ValidSnapshots = %v (lagging %v, newer %v)", valid, lagging, newer)
	}
	for _, s := range valid {
		w, _ := mustOpen(t, fs, "/wal", s, opts)
		w.Close()
	}
}

// Entries at or below a snapshot would read back as another log; Save
// refuses them.
func TestSaveRefusesEntriesUnderSnapshot(t *testing.T) {
	fs := vfs.NewMem()
	w := mustCreate(t, fs, "/wal", Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, ents(1, 10, 1))
	if err := w.SaveSnapshot(Snapshot{Index: 5, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(raftpb.HardState{Term: 2, Commit: 5}, ents(4, 4, 2), true); !errors.Is(err, ErrEntryGap) {
		t.Fatalf("Save below the snapshot: got %v, want ErrEntryGap", err)
	}
	if err := w.SaveSnapshot(Snapshot{Index: 11, Term: 1}); !errors.Is(err, ErrSnapshotPastLog) {
		t.Fatalf("SaveSnapshot past the log: got %v, want ErrSnapshotPastLog", err)
	}
	w.Close()
	w, _ = mustOpen(t, fs, "/wal", Snapshot{Index: 5, Term: 1}, Options{})
	if err := w.Save(raftpb.HardState{Term: 2, Commit: 5}, ents(5, 5, 2), true); !errors.Is(err, ErrEntryGap) {
		t.Fatalf("Save at the snapshot after Open: got %v, want ErrEntryGap", err)
	}
	if err := w.ResetToSnapshot(Snapshot{Index: 20, Term: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(raftpb.HardState{Term: 3, Commit: 20}, ents(20, 20, 3), true); !errors.Is(err, ErrEntryGap) {
		t.Fatalf("Save at an installed snapshot: got %v, want ErrEntryGap", err)
	}
	mustSave(t, w, raftpb.HardState{Term: 3, Commit: 20}, ents(21, 21, 3))
	w.Close()
}

// Records dropped after a zeroed header (damage that reads as a clean end)
// are at least reported.
func TestDroppedRecordsAreLogged(t *testing.T) {
	fs := vfs.NewMem()
	w := mustCreate(t, fs, "/wal", Options{SegmentBytes: 1 << 20})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 1}, ents(1, 3, 1))
	off := w.mu.offset
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, ents(4, 10, 1))
	path := tailPath(w)
	w.Close()
	f, _ := fs.OpenReadWrite(path)
	f.WriteAt(make([]byte, headerBytes), off)
	f.Sync()
	f.Close()

	core, logs := observer.New(zap.WarnLevel)
	w, st := mustOpen(t, fs, "/wal", Snapshot{}, Options{SegmentBytes: 1 << 20, Logger: zap.New(core)})
	w.Close()
	checkEntries(t, st.Entries, ents(1, 3, 1))
	if logs.Len() != 1 || logs.All()[0].ContextMap()["offset"] != off {
		t.Fatalf("log lines: %v", logs.All())
	}
	// Once dropped, they are gone: no second warning.
	core, logs = observer.New(zap.WarnLevel)
	w, _ = mustOpen(t, fs, "/wal", Snapshot{}, Options{SegmentBytes: 1 << 20, Logger: zap.New(core)})
	w.Close()
	if logs.Len() != 0 {
		t.Fatalf("log lines on a clean open: %v", logs.All())
	}
}

// SegmentBytes need not be a multiple of 8, and may change between opens.
func TestOddSegmentBytes(t *testing.T) {
	fs := vfs.NewMem()
	w := mustCreate(t, fs, "/wal", Options{SegmentBytes: 1001})
	for i := uint64(1); i <= 20; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
	}
	w.Close()
	w, _ = mustOpen(t, fs, "/wal", Snapshot{}, Options{SegmentBytes: 16})
	for i := uint64(21); i <= 25; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
	}
	w.Close()
	_, st := mustOpen(t, fs, "/wal", Snapshot{}, Options{SegmentBytes: 333})
	checkEntries(t, st.Entries, ents(1, 25, 1))
}

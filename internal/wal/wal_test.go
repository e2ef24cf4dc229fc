package wal

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

var testMD = Metadata{MemberID: 0x1a, ClusterID: 0xc1}

// ents makes entries lo..hi (inclusive) of the given term, each with a
// payload naming it.
func ents(lo, hi, term uint64) []raftpb.Entry {
	var es []raftpb.Entry
	for i := lo; i <= hi; i++ {
		es = append(es, raftpb.Entry{Index: i, Term: term, Data: fmt.Appendf(nil, "entry %d of term %d", i, term)})
	}
	return es
}

func mustCreate(t *testing.T, fs vfs.FS, dir string, opts Options) *WAL {
	t.Helper()
	w, err := Create(fs, dir, testMD, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustSave(t *testing.T, w *WAL, hs raftpb.HardState, es []raftpb.Entry) {
	t.Helper()
	if err := w.Save(hs, es, true); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, fs vfs.FS, dir string, snap Snapshot, opts Options) (*WAL, State) {
	t.Helper()
	w, st, err := Open(fs, dir, snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w, st
}

func checkEntries(t *testing.T, got, want []raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries (%s), want %d (%s)", len(got), describe(got), len(want), describe(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || string(g.Data) != string(w.Data) {
			t.Fatalf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

func describe(es []raftpb.Entry) string {
	if len(es) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d/%d", e.Index, e.Term)
	}
	return b.String()
}

func TestSaveAndReadBack(t *testing.T) {
	fs, dir := vfs.OS(), filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, fs, dir, Options{})
	if _, err := Create(fs, dir, testMD, Options{}); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create: got %v, want ErrExist", err)
	}
	hs := raftpb.HardState{Term: 2, Vote: 3, Commit: 4}
	mustSave(t, w, hs, ents(1, 5, 2))
	// A commit-only change need not be synced but is written.
	hs.Commit = 5
	if err := w.Save(hs, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(hs, nil, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: got %v, want ErrClosed", err)
	}

	w, st := mustOpen(t, fs, dir, Snapshot{}, Options{})
	defer w.Close()
	if st.Metadata != testMD || st.HardState != hs {
		t.Fatalf("got metadata %+v state %+v, want %+v %+v", st.Metadata, st.HardState, testMD, hs)
	}
	checkEntries(t, st.Entries, ents(1, 5, 2))
	if w.LastIndex() != 5 {
		t.Fatalf("LastIndex %d, want 5", w.LastIndex())
	}
}

func TestOpenMissing(t *testing.T) {
	_, _, err := Open(vfs.OS(), filepath.Join(t.TempDir(), "nothing"), Snapshot{}, Options{})
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

// A follower that truncates a conflicting suffix rewrites from the
// conflict on; reading back yields the log as it was last.
func TestOverwrittenEntries(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	w := mustCreate(t, fs, dir, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 2}, ents(1, 10, 1))
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 2}, ents(6, 8, 2))
	// Rewriting an identical entry changes nothing.
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 3}, ents(8, 8, 2))
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 3}, ents(9, 9, 2))
	w.Close()

	_, st := mustOpen(t, fs, dir, Snapshot{}, Options{})
	want := append(ents(1, 5, 1), ents(6, 9, 2)...)
	checkEntries(t, st.Entries, want)
}

func TestSaveRefusesGaps(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	w := mustCreate(t, fs, dir, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1}, ents(1, 3, 1))
	for _, es := range [][]raftpb.Entry{ents(5, 6, 1), ents(0, 1, 1), {ents(4, 4, 1)[0], ents(6, 6, 1)[0]}} {
		if err := w.Save(raftpb.HardState{Term: 1}, es, true); !errors.Is(err, ErrEntryGap) {
			t.Fatalf("Save(%s): got %v, want ErrEntryGap", describe(es), err)
		}
	}
	// The refusals wrote nothing and did not poison the WAL.
	mustSave(t, w, raftpb.HardState{Term: 1}, ents(4, 4, 1))
	w.Close()
	_, st := mustOpen(t, fs, dir, Snapshot{}, Options{})
	checkEntries(t, st.Entries, ents(1, 4, 1))
}

func TestSaveRefusesHugeEntry(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	w := mustCreate(t, fs, dir, Options{})
	defer w.Close()
	huge := raftpb.Entry{Index: 1, Term: 1, Data: make([]byte, MaxRecordBytes)}
	if err := w.Save(raftpb.HardState{Term: 1}, []raftpb.Entry{huge}, true); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("got %v, want ErrRecordTooLarge", err)
	}
	mustSave(t, w, raftpb.HardState{Term: 1}, ents(1, 1, 1))
}

// Segments are cut at SegmentBytes; reading crosses them, checking the
// chain, and the header of each new segment carries the HardState.
func TestSegments(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	opts := Options{SegmentBytes: 4096}
	w := mustCreate(t, fs, dir, opts)
	for i := uint64(1); i <= 600; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i - 1}, ents(i, i, 1))
	}
	segs := w.Segments()
	if len(segs) < 5 {
		t.Fatalf("600 entries in 4 KiB segments made only %d segments", len(segs))
	}
	prev := segment{}
	for i, name := range segs {
		s, ok := parseSegmentName(name)
		if !ok || s.seq != uint64(i) || s.index < prev.index {
			t.Fatalf("segment %d is named %q, after %s", i, name, prev.name())
		}
		prev = s
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < 4096 {
			t.Fatalf("segment %s is %d bytes, not preallocated", name, fi.Size())
		}
	}
	w.Close()
	_, st := mustOpen(t, fs, dir, Snapshot{}, opts)
	checkEntries(t, st.Entries, ents(1, 600, 1))
	if st.HardState.Commit != 599 {
		t.Fatalf("commit %d, want 599", st.HardState.Commit)
	}
}

func TestSnapshots(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	opts := Options{SegmentBytes: 4096}
	w := mustCreate(t, fs, dir, opts)
	for i := uint64(1); i <= 100; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
		if i%40 == 0 {
			if err := w.SaveSnapshot(Snapshot{Index: i - 5, Term: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.SaveSnapshot(Snapshot{Index: 101, Term: 1}); err == nil {
		t.Fatal("SaveSnapshot past the last entry succeeded")
	}
	w.Close()

	valid, err := ValidSnapshots(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Snapshot{{0, 0}, {35, 1}, {75, 1}}; !slices.Equal(valid, want) {
		t.Fatalf("ValidSnapshots = %v, want %v", valid, want)
	}
	for _, snap := range valid {
		w, st := mustOpen(t, fs, dir, snap, opts)
		checkEntries(t, st.Entries, ents(snap.Index+1, 100, 1))
		w.Close()
	}
	if _, _, err := Open(fs, dir, Snapshot{Index: 36, Term: 1}, opts); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("Open at an unrecorded snapshot: got %v, want ErrSnapshotNotFound", err)
	}
	if _, _, err := Open(fs, dir, Snapshot{Index: 35, Term: 2}, opts); !errors.Is(err, ErrSnapshotMismatch) {
		t.Fatalf("Open at a snapshot with the wrong term: got %v, want ErrSnapshotMismatch", err)
	}
}

// Only committed snapshots are valid: a snapshot record can reach the disk
// before the HardState that commits it.
func TestValidSnapshotsNeedCommit(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	w := mustCreate(t, fs, dir, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, ents(1, 10, 1))
	if err := w.SaveSnapshot(Snapshot{Index: 8, Term: 1}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	valid, err := ValidSnapshots(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Snapshot{{0, 0}}; !slices.Equal(valid, want) {
		t.Fatalf("ValidSnapshots = %v, want %v", valid, want)
	}
}

// A snapshot installed from the leader replaces the log, including a
// longer stale suffix written before it.
func TestResetToSnapshot(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	w := mustCreate(t, fs, dir, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 3}, ents(1, 20, 1))
	if err := w.ResetToSnapshot(Snapshot{Index: 10, Term: 5}); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(raftpb.HardState{Term: 5, Commit: 10}, ents(12, 12, 5), true); !errors.Is(err, ErrEntryGap) {
		t.Fatalf("Save after a reset with a gap: got %v, want ErrEntryGap", err)
	}
	w.Close()

	// Before the HardState that follows it is saved, the installed
	// snapshot is already committed; and it replaced the log after {0, 0}.
	valid, err := ValidSnapshots(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Snapshot{{10, 5}}; !slices.Equal(valid, want) {
		t.Fatalf("ValidSnapshots = %v, want %v", valid, want)
	}
	w, st := mustOpen(t, fs, dir, Snapshot{Index: 10, Term: 5}, Options{})
	checkEntries(t, st.Entries, nil)
	if st.HardState.Commit != 10 {
		t.Fatalf("commit %d after an installed snapshot at 10", st.HardState.Commit)
	}
	mustSave(t, w, raftpb.HardState{Term: 5, Commit: 11}, ents(11, 12, 5))
	w.Close()

	_, st = mustOpen(t, fs, dir, Snapshot{Index: 10, Term: 5}, Options{})
	checkEntries(t, st.Entries, ents(11, 12, 5))
	// The entries between {0, 0} and the installed snapshot are gone.
	if _, _, err := Open(fs, dir, Snapshot{}, Options{}); !errors.Is(err, ErrSnapshotSuperseded) {
		t.Fatalf("Open from before the installed snapshot: got %v, want ErrSnapshotSuperseded", err)
	}
}

func TestRelease(t *testing.T) {
	for _, keep := range []int{0, 2} {
		t.Run(fmt.Sprintf("keep=%d", keep), func(t *testing.T) {
			fs, dir := vfs.OS(), t.TempDir()
			opts := Options{SegmentBytes: 4096, KeepReleased: keep}
			w := mustCreate(t, fs, dir, opts)
			for i := uint64(1); i <= 500; i++ {
				mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
			}
			snap := Snapshot{Index: 450, Term: 1}
			if err := w.SaveSnapshot(snap); err != nil {
				t.Fatal(err)
			}
			before := w.Segments()
			n, err := w.Release(snap.Index)
			if err != nil {
				t.Fatal(err)
			}
			after := w.Segments()
			if n == 0 || len(after) != len(before)-n || !slices.Equal(after, before[n:]) {
				t.Fatalf("Release removed %d: before %v, after %v", n, before, after)
			}
			onDisk, _ := fs.List(dir)
			if !slices.Equal(onDisk, after) {
				t.Fatalf("on disk %v, WAL says %v", onDisk, after)
			}
			// The first segment kept, past KeepReleased, is the one that
			// reading from the snapshot starts with.
			start, _ := parseSegmentName(after[keep])
			next, _ := parseSegmentName(after[keep+1])
			if start.index > snap.Index || next.index <= snap.Index {
				t.Fatalf("kept from %s (then %s) for a snapshot at %d", after[keep], after[keep+1], snap.Index)
			}
			mustSave(t, w, raftpb.HardState{Term: 1, Commit: 501}, ents(501, 501, 1))
			w.Close()

			_, st := mustOpen(t, fs, dir, snap, opts)
			checkEntries(t, st.Entries, ents(451, 501, 1))
			if _, _, err := Open(fs, dir, Snapshot{}, opts); !errors.Is(err, ErrSnapshotNotFound) {
				t.Fatalf("Open from a released snapshot: got %v, want ErrSnapshotNotFound", err)
			}
		})
	}
}

// Metadata is written into every segment and must agree.
func TestMetadataInEverySegment(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	opts := Options{SegmentBytes: 4096}
	w := mustCreate(t, fs, dir, opts)
	for i := uint64(1); i <= 100; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
	}
	if err := w.SaveSnapshot(Snapshot{Index: 90, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Release(90); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// Read from the last segments alone: the metadata is still there.
	_, st := mustOpen(t, fs, dir, Snapshot{Index: 90, Term: 1}, opts)
	if st.Metadata != testMD {
		t.Fatalf("metadata %+v, want %+v", st.Metadata, testMD)
	}
}

// KeepSegments bounds what Release leaves (etcd's --max-wals): released
// segments go oldest first while more remain, and a segment the snapshot
// still needs stays, however many that makes.
func TestReleaseKeepSegments(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keep      int
		snapIndex uint64
	}{
		{"few", 5, 450},
		{"all", math.MaxInt, 450},
		{"needed beyond the bound", 2, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, dir := vfs.OS(), t.TempDir()
			opts := Options{SegmentBytes: 4096, KeepSegments: tc.keep}
			w := mustCreate(t, fs, dir, opts)
			for i := uint64(1); i <= 500; i++ {
				mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents(i, i, 1))
			}
			snap := Snapshot{Index: tc.snapIndex, Term: 1}
			if err := w.SaveSnapshot(snap); err != nil {
				t.Fatal(err)
			}
			before := w.Segments()
			// needed: the segment reading from snap starts with, and after.
			needed := 0
			for i, name := range before {
				if s, _ := parseSegmentName(name); s.index <= snap.Index {
					needed = len(before) - i
				}
			}
			if len(before) <= max(needed, 5) {
				t.Fatalf("only %d segments (%d needed): the test needs more", len(before), needed)
			}
			if _, err := w.Release(snap.Index); err != nil {
				t.Fatal(err)
			}
			after, _ := fs.List(dir)
			want := max(needed, min(tc.keep, len(before)))
			if len(after) != want || !slices.Equal(after, before[len(before)-want:]) {
				t.Fatalf("kept %d segments %v of %v, want the newest %d (%d needed)", len(after), after, before, want, needed)
			}
			w.Close()
			_, st := mustOpen(t, fs, dir, snap, opts)
			checkEntries(t, st.Entries, ents(snap.Index+1, 500, 1))
		})
	}
}

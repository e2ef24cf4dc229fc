package snap

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

func snapshot(term, index uint64) raftpb.Snapshot {
	return raftpb.Snapshot{
		Metadata: raftpb.SnapshotMetadata{
			Index:     index,
			Term:      term,
			ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
		},
		Data: fmt.Appendf(nil, "checkpoint-%d", index),
	}
}

func equal(a, b raftpb.Snapshot) bool {
	return a.Metadata.Index == b.Metadata.Index && a.Metadata.Term == b.Metadata.Term &&
		a.Metadata.ConfState.Equal(b.Metadata.ConfState) && bytes.Equal(a.Data, b.Data)
}

func mustNew(t *testing.T, fs vfs.FS, dir string, logger *zap.Logger) *Snapshotter {
	t.Helper()
	s, err := New(fs, dir, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSaveLoad(t *testing.T) {
	s := mustNew(t, vfs.OS(), filepath.Join(t.TempDir(), "snap"), nil)
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Load from an empty directory: got %v, want ErrNoSnapshot", err)
	}
	if err := s.Save(raftpb.Snapshot{}); err == nil {
		t.Fatal("saving an empty snapshot succeeded")
	}
	for _, sn := range []raftpb.Snapshot{snapshot(1, 10), snapshot(2, 25), snapshot(2, 40)} {
		if err := s.Save(sn); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load()
	if err != nil || !equal(got, snapshot(2, 40)) {
		t.Fatalf("Load = %+v, %v; want the newest", got, err)
	}
	// The WAL decides which snapshots are usable.
	got, err = s.LoadNewestAvailable(func(m raftpb.SnapshotMetadata) bool { return m.Index <= 30 })
	if err != nil || !equal(got, snapshot(2, 25)) {
		t.Fatalf("LoadNewestAvailable(<=30) = %+v, %v", got, err)
	}
	if _, err := s.LoadNewestAvailable(func(raftpb.SnapshotMetadata) bool { return false }); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("LoadNewestAvailable(none) = %v, want ErrNoSnapshot", err)
	}
}

// A damaged newest snapshot falls back to the one before, with a log line,
// and is set aside so it is not tried again.
func TestDamagedSnapshotFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"bit flip", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-5] }},
		{"empty", func([]byte) []byte { return nil }},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"extended", func(b []byte) []byte { return append(b, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			core, logs := observer.New(zap.WarnLevel)
			s := mustNew(t, vfs.OS(), dir, zap.New(core))
			for _, sn := range []raftpb.Snapshot{snapshot(1, 10), snapshot(1, 20)} {
				if err := s.Save(sn); err != nil {
					t.Fatal(err)
				}
			}
			newest := filepath.Join(dir, snapName(1, 20))
			data, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(newest, tc.damage(data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load()
			if err != nil || !equal(got, snapshot(1, 10)) {
				t.Fatalf("Load = %+v, %v; want the older snapshot", got, err)
			}
			if logs.Len() != 1 || logs.All()[0].ContextMap()["file"] != newest {
				t.Fatalf("log lines: %v", logs.All())
			}
			if _, err := os.Stat(newest + brokenSuffix); err != nil {
				t.Fatalf("the damaged file was not set aside: %v", err)
			}
			if _, err := os.Stat(newest); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the damaged file is still in place: %v", err)
			}
		})
	}
}

// A snapshot whose file name and contents disagree is damaged too.
func TestMisnamedSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, vfs.OS(), dir, nil)
	if err := s.Save(snapshot(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, snapName(1, 10)), filepath.Join(dir, snapName(1, 11))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("got %v, want ErrNoSnapshot", err)
	}
}

func TestPurge(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, vfs.OS(), dir, nil)
	for i := uint64(1); i <= 5; i++ {
		if err := s.Save(snapshot(1, i*10)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveDB(i*10, bytes.NewReader([]byte("image")), nil); err != nil {
			t.Fatal(err)
		}
	}
	all := func(raftpb.SnapshotMetadata) bool { return true }
	if _, err := s.Purge(0, all); err == nil {
		t.Fatal("Purge(0) succeeded")
	}
	removed, err := s.Purge(2, all)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{snapName(1, 10), snapName(1, 20), snapName(1, 30), dbName(10), dbName(20), dbName(30)}
	if !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	names, _ := vfs.OS().List(dir)
	if want := []string{snapName(1, 40), snapName(1, 50), dbName(40), dbName(50)}; !slices.Equal(names, want) {
		t.Fatalf("left %v, want %v", names, want)
	}
}

// lazyReader produces n pseudo-random bytes without holding them.
type lazyReader struct {
	rng *rand.Rand
	n   int64
}

func (r *lazyReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	for i := range p {
		p[i] = byte(r.rng.Uint32())
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// Images are streamed through in both directions: a 64 MiB image costs a
// few MiB of memory, and reads back byte for byte.
func TestDBStreams(t *testing.T) {
	s := mustNew(t, vfs.OS(), t.TempDir(), nil)
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := s.SaveDB(7, &lazyReader{rng: rand.New(rand.NewPCG(1, 2)), n: size}, nil)
	runtime.ReadMemStats(&after)
	if err != nil || info.Size != size {
		t.Fatalf("SaveDB = %+v, %v", info, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("SaveDB of %d MiB allocated %d MiB", size>>20, alloc>>20)
	}

	r, opened, err := s.OpenDB(7)
	if err != nil || opened != info {
		t.Fatalf("OpenDB = %+v, %v; SaveDB said %+v", opened, err, info)
	}
	want := crc32.New(castagnoli)
	io.Copy(want, &lazyReader{rng: rand.New(rand.NewPCG(1, 2)), n: size})
	got := crc32.New(castagnoli)
	runtime.ReadMemStats(&before)
	if _, err := io.Copy(got, r); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	r.Close()
	if got.Sum32() != want.Sum32() {
		t.Fatal("the image read back differs")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("reading %d MiB allocated %d MiB", size>>20, alloc>>20)
	}
}

// A damaged image is reported at the end of reading it, or when opening it
// if its trailer is wrong.
func TestDamagedDB(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, vfs.OS(), dir, nil)
	image := bytes.Repeat([]byte("image bytes "), 10000)
	for _, tc := range []struct {
		name       string
		damage     func([]byte) []byte
		failToOpen bool
	}{
		{"bit flip in the image", func(b []byte) []byte { b[5000] ^= 1; return b }, false},
		{"bit flip in the checksum", func(b []byte) []byte { b[len(image)] ^= 1; return b }, false},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }, true},
		{"too short for a trailer", func(b []byte) []byte { return b[:10] }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.SaveDB(1, bytes.NewReader(image), nil); err != nil {
				t.Fatal(err)
			}
			path := s.dbPath(1)
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(path, tc.damage(data), 0o600); err != nil {
				t.Fatal(err)
			}
			r, _, err := s.OpenDB(1)
			if tc.failToOpen {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("OpenDB: got %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading: got %v, want ErrCorrupt", err)
			}
		})
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

// An image whose stream breaks leaves nothing behind.
func TestSaveDBBrokenStream(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, vfs.OS(), dir, nil)
	if _, err := s.SaveDB(3, &failingReader{n: 1 << 20}, nil); err == nil {
		t.Fatal("SaveDB of a broken stream succeeded")
	}
	if names, _ := vfs.OS().List(dir); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
}

// Crash test: saves and purges on the crashable file system, with injected
// failures, crashing at random points. After each crash Load returns the
// newest snapshot whose Save returned nil, or a newer one whose Save was
// interrupted but reached the disk whole; never a damaged one, and never an
// error while any completed snapshot is kept.
func TestCrash(t *testing.T) {
	ops := []vfs.Op{vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpRemove}
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x5a))
		mem := vfs.NewMem()
		efs := vfs.NewErrorFS(mem)
		var saved []raftpb.Snapshot // completed saves, oldest first
		next := uint64(1)
		for cycle := range 3 {
			s, err := New(efs, "/snap", nil, nil)
			if err != nil {
				t.Fatalf("seed %d cycle %d: New: %v", seed, cycle, err)
			}
			if rng.IntN(2) == 0 {
				efs.FailNth(ops[rng.IntN(len(ops))], 1+rng.IntN(10), nil)
			}
			var attempted []raftpb.Snapshot
			for range 1 + rng.IntN(6) {
				sn := snapshot(1+next/5, next*10)
				next++
				attempted = append(attempted, sn)
				if err := s.Save(sn); err != nil {
					break
				}
				saved = append(saved, sn)
				if rng.IntN(3) == 0 {
					if _, err := s.Purge(2, func(raftpb.SnapshotMetadata) bool { return true }); err != nil {
						break
					}
					if len(saved) > 2 {
						saved = saved[len(saved)-2:]
					}
				}
			}
			for _, op := range ops {
				efs.FailNth(op, 1<<30, nil)
			}
			if rng.IntN(2) == 0 {
				mem.Crash()
			} else {
				mem.CrashRandom(rng)
			}
			s, err = New(efs, "/snap", nil, nil)
			if err != nil {
				t.Fatalf("seed %d cycle %d: New after crash: %v", seed, cycle, err)
			}
			got, err := s.Load()
			if len(saved) == 0 {
				// Only an interrupted save could be there.
				if err == nil && !slices.ContainsFunc(attempted, func(a raftpb.Snapshot) bool { return equal(a, got) }) {
					t.Fatalf("seed %d cycle %d: Load returned %+v, never saved", seed, cycle, got)
				}
				continue
			}
			if err != nil {
				t.Fatalf("seed %d cycle %d: Load: %v (saved %d)", seed, cycle, err, len(saved))
			}
			newest := saved[len(saved)-1]
			if got.Metadata.Index < newest.Metadata.Index {
				t.Fatalf("seed %d cycle %d: Load returned index %d, but %d was saved", seed, cycle, got.Metadata.Index, newest.Metadata.Index)
			}
			if !slices.ContainsFunc(attempted, func(a raftpb.Snapshot) bool { return equal(a, got) }) && !equal(got, newest) {
				t.Fatalf("seed %d cycle %d: Load returned %+v, never saved", seed, cycle, got)
			}
			// Adopt what survived as the newest saved.
			if !equal(got, newest) {
				saved = append(saved, got)
			}
		}
	}
}

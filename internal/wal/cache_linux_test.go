package wal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// residentPages counts the pages of name in [from, to) that the page
// cache holds (mincore over a mapping, which reads nothing in).
func residentPages(t *testing.T, name string, from, to int64) int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, int(to), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	vec := make([]byte, (to+pageBytes-1)/pageBytes)
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec[from/pageBytes:] {
		n += int(v & 1)
	}
	return n
}

// The WAL lets go of the page cache's copy of what it synced, a megabyte
// at a time, and of a whole segment once it is cut: the WAL is read back
// only at start-up, which still finds every entry.
func TestSyncedPagesLeaveThePageCache(t *testing.T) {
	var st syscall.Statfs_t
	dir := t.TempDir()
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == 0x01021994 { // TMPFS_MAGIC: its pages are the file
		t.Skipf("%s is on tmpfs, whose pages cannot be dropped", dir)
	}
	opts := Options{SegmentBytes: 8 << 20}
	w := mustCreate(t, vfs.OS(), dir, opts)
	value := make([]byte, 256<<10)
	var all []raftpb.Entry
	for i := uint64(1); i <= 48; i++ { // 12 MiB: a cut at 8
		e := raftpb.Entry{Term: 1, Index: i, Data: value}
		all = append(all, e)
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, []raftpb.Entry{e})
	}
	segs := w.Segments()
	if len(segs) != 2 {
		t.Fatalf("segments %v, want two", segs)
	}
	first, tail := filepath.Join(dir, segs[0]), filepath.Join(dir, segs[1])
	if n := residentPages(t, first, 0, opts.SegmentBytes); n != 0 {
		t.Fatalf("%d pages of the cut segment still cached", n)
	}
	w.mu.Lock()
	dropped, offset := w.mu.dropped, w.mu.offset
	w.mu.Unlock()
	if offset-dropped >= dropEvery+pageBytes || dropped == 0 {
		t.Fatalf("tail dropped up to %d of %d, want within a megabyte and a page", dropped, offset)
	}
	if n := residentPages(t, tail, 0, dropped); n != 0 {
		t.Fatalf("%d pages of the tail's first %d bytes still cached", n, dropped)
	}
	w.Close()
	_, state := mustOpen(t, vfs.OS(), dir, Snapshot{}, opts)
	checkEntries(t, state.Entries, all)
}

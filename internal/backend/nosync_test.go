package backend

import (
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// syncCountingFS counts the syncs that reach its files, however opened.
type syncCountingFS struct {
	vfs.FS
	syncs *atomic.Int64
}

func (fs syncCountingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return syncCountingFile{f, fs.syncs}, nil
}

func (fs syncCountingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}
func (fs syncCountingFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.Open(name, opts...))
}
func (fs syncCountingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}
func (fs syncCountingFS) OpenDir(name string) (vfs.File, error) { return fs.wrap(fs.FS.OpenDir(name)) }
func (fs syncCountingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, c))
}

type syncCountingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f syncCountingFile) Sync() error     { f.syncs.Add(1); return f.File.Sync() }
func (f syncCountingFile) SyncData() error { f.syncs.Add(1); return f.File.SyncData() }
func (f syncCountingFile) SyncTo(n int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(n)
}

// With NoSyncFS (--unsafe-no-fsync) no sync reaches the disk: not the
// backend's own (Sync, Close), nor pebble's (creating the store, flushing
// a memtable); and what was written is still read back after a clean
// close. Without it the same work syncs, so the count is not zero by
// accident.
func TestNoSyncReachesNoDisk(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		var syncs atomic.Int64
		var fs vfs.FS = syncCountingFS{vfs.NewMem(), &syncs}
		if noSync {
			fs = NoSyncFS(fs)
		}
		b, err := Open("/db", Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(1); i <= 100; i++ {
			commit(t, b, i, "k", string(rune('a'+i%26)))
		}
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := b.db.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if n := syncs.Load(); noSync != (n == 0) {
			t.Fatalf("NoSyncFS=%v: %d syncs reached the disk", noSync, n)
		}
		b, err = Open("/db", Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		if index, _ := b.ConsistentIndex(); index != 100 {
			t.Fatalf("NoSyncFS=%v: consistent index %d after a clean close, want 100", noSync, index)
		}
		b.Close()
	}
}

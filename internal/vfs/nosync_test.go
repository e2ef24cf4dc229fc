package vfs

import (
	"path/filepath"
	"testing"
)

// NoSync's files and directories reach the disk's Sync never, whichever
// way they were opened; everything else passes through.
func TestNoSyncSkipsEverySync(t *testing.T) {
	counted := NewErrorFS(NewMem())
	fs := NoSync(counted)
	dir := "/d"
	if err := MkdirAllDurable(fs, dir); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "f")
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, open := range []func(string) (File, error){fs.Open, fs.OpenReadWrite} {
		f, err := open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := SyncDir(fs, dir); err != nil {
		t.Fatal(err)
	}
	if n := counted.Count(OpSync); n != 0 {
		t.Fatalf("%d syncs reached the file system under NoSync", n)
	}
	if n := counted.Count(OpWrite); n != 1 {
		t.Fatalf("%d writes reached the file system, want 1", n)
	}
}

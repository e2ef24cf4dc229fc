package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// FS is the file system as the WAL and snapshot packages use it. Names are
// slash-separated paths; every implementation accepts what filepath.Join
// produces.
type FS interface {
	// Create creates the named file for reading and writing, truncating it
	// if it exists.
	Create(name string) (File, error)
	// Open opens the named file for reading.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing.
	OpenReadWrite(name string) (File, error)
	// OpenDir opens a directory so that it can be synced.
	OpenDir(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes a path and everything under it; a missing path is
	// not an error.
	RemoveAll(name string) error
	// Rename renames oldname to newname, replacing newname if it is a file.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names of a directory's entries, sorted.
	List(dir string) ([]string, error)
	// Stat describes the named file.
	Stat(name string) (os.FileInfo, error)
}

// File is an open file (or, from OpenDir, a directory: only Sync and Close
// apply to those).
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's contents durable (rule 1 in the package doc).
	Sync() error
	// Truncate changes the file's size; growing it adds zeros.
	Truncate(size int64) error
	// Preallocate reserves space so the file is at least size bytes long,
	// reading as zeros beyond what was written, without later writes
	// having to allocate blocks or change the size.
	Preallocate(size int64) error
	Stat() (os.FileInfo, error)
}

// CacheDropper is a File whose cached pages can be let go: DropCache tells
// the OS that [off, off+n), written and synced, will not be read again
// soon (posix_fadvise DONTNEED), so its pages return to the free memory at
// once rather than crowding the page cache. Only real files have it; a
// caller treats its absence as a no-op.
type CacheDropper interface {
	DropCache(off, n int64) error
}

// ErrInjected is the error ErrorFS returns from an operation it was told to
// fail.
var ErrInjected = errors.New("vfs: injected error")

// Exists reports whether name exists in fs.
func Exists(fs FS, name string) bool {
	_, err := fs.Stat(name)
	return err == nil
}

// SyncDir syncs a directory, making the names created, renamed or removed
// in it durable.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// MkdirAllDurable creates dir and any missing parents, and syncs every
// directory on the way from the root to dir's parent, so that dir's path
// survives a crash. It syncs even those that existed already: an earlier
// call may have created them and failed, or been killed, before syncing.
func MkdirAllDurable(fs FS, dir string) error {
	dir = filepath.Clean(dir)
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var parents []string
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		parents = append(parents, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	// Top down: a name is durable only if its parent's name is.
	for i := len(parents) - 1; i >= 0; i-- {
		if err := SyncDir(fs, parents[i]); err != nil {
			return err
		}
	}
	return nil
}

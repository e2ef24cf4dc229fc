package vfs

import (
	"fmt"
	"os"
	"sync"
)

// Op is a kind of operation ErrorFS counts and can fail.
type Op int

const (
	OpCreate Op = iota + 1 // FS.Create and FS.MkdirAll
	OpWrite                // File.Write and File.WriteAt
	OpSync                 // File.Sync, on files and directories
	OpRename               // FS.Rename
	OpRemove               // FS.Remove and FS.RemoveAll
	numOps
)

func (op Op) String() string {
	switch op {
	case OpCreate:
		return "create"
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpRename:
		return "rename"
	case OpRemove:
		return "remove"
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// ErrorFS wraps an FS, and the Files it opens, to fail chosen operations.
// It is safe for concurrent use.
//
// A failed operation has the effect a real failure could have, at its
// most awkward:
//
//   - a failed Write or WriteAt writes the first half of the buffer
//     (rounded down) and returns that count with the error, as a disk
//     that filled up or failed mid-write would;
//   - a failed Sync makes nothing durable;
//   - a failed Create, MkdirAll, Rename, Remove or RemoveAll does nothing.
//
// Errors are *os.PathError (*os.LinkError from Rename) wrapping the error
// given to FailNth, ErrInjected by default.
//
// To fail each operation of a workload in turn, run it once and read
// Count, then run it again on a fresh FS for every n up to that count
// with FailNth(op, n, nil).
type ErrorFS struct {
	fs FS

	mu struct {
		sync.Mutex
		// attempts counts the operations of each kind tried so far, the
		// failed ones included.
		attempts [numOps]int
		// failAt is the value of attempts[op] at which an operation of
		// kind op fails, or 0 if none is armed.
		// Invariant: failAt[op] == 0 || failAt[op] > attempts[op].
		failAt [numOps]int
		// failErr is what the armed operation fails with.
		failErr [numOps]error
	}
}

var _ FS = (*ErrorFS)(nil)

// NewErrorFS wraps fs. Nothing fails until FailNth says so.
func NewErrorFS(fs FS) *ErrorFS {
	return &ErrorFS{fs: fs}
}

// FailNth arms the n-th operation of kind op from now on (n = 1 is the
// next one) to fail with err, or with ErrInjected if err is nil. It fails
// once; the operations after it succeed unless FailNth is called again. A
// second call for the same op replaces the first. It panics if n < 1 or op
// is not one of the Op constants, which is a bug in the test.
func (e *ErrorFS) FailNth(op Op, n int, err error) {
	if op < OpCreate || op >= numOps || n < 1 {
		panic(fmt.Sprintf("vfs: FailNth(%v, %d): want a valid op and n >= 1", op, n))
	}
	if err == nil {
		err = ErrInjected
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.failAt[op] = e.mu.attempts[op] + n
	e.mu.failErr[op] = err
}

// Count returns how many operations of kind op have been attempted so far,
// the failed ones included.
func (e *ErrorFS) Count(op Op) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.attempts[op]
}

// attempt counts an operation of kind op and returns the error it must
// fail with, or nil if it must go ahead.
func (e *ErrorFS) attempt(op Op) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.attempts[op]++
	if e.mu.attempts[op] != e.mu.failAt[op] {
		return nil
	}
	e.mu.failAt[op] = 0
	return e.mu.failErr[op]
}

func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.attempt(OpCreate); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := e.fs.Create(name)
	return e.wrap(name, f, err)
}

func (e *ErrorFS) Open(name string) (File, error) {
	f, err := e.fs.Open(name)
	return e.wrap(name, f, err)
}

func (e *ErrorFS) OpenReadWrite(name string) (File, error) {
	f, err := e.fs.OpenReadWrite(name)
	return e.wrap(name, f, err)
}

func (e *ErrorFS) OpenDir(name string) (File, error) {
	f, err := e.fs.OpenDir(name)
	return e.wrap(name, f, err)
}

func (e *ErrorFS) wrap(name string, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, name: name}, nil
}

func (e *ErrorFS) Remove(name string) error {
	if err := e.attempt(OpRemove); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return e.fs.Remove(name)
}

func (e *ErrorFS) RemoveAll(name string) error {
	if err := e.attempt(OpRemove); err != nil {
		return &os.PathError{Op: "removeall", Path: name, Err: err}
	}
	return e.fs.RemoveAll(name)
}

func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.attempt(OpRename); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return e.fs.Rename(oldname, newname)
}

func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.attempt(OpCreate); err != nil {
		return &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	return e.fs.MkdirAll(dir, perm)
}

func (e *ErrorFS) List(dir string) ([]string, error)     { return e.fs.List(dir) }
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) { return e.fs.Stat(name) }

// errorFile is a File whose writes and syncs an ErrorFS can fail; the
// other methods pass through.
type errorFile struct {
	File
	fs   *ErrorFS
	name string // as opened, for errors
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.attempt(OpWrite); err != nil {
		// What the partial write itself returns does not matter: the
		// caller must see the injected error, and n says how far it got.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, f.pathError("write", err)
	}
	return f.File.Write(p)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.attempt(OpWrite); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, f.pathError("write", err)
	}
	return f.File.WriteAt(p, off)
}

func (f *errorFile) Sync() error {
	if err := f.fs.attempt(OpSync); err != nil {
		return f.pathError("sync", err)
	}
	return f.File.Sync()
}

func (f *errorFile) pathError(op string, err error) error {
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

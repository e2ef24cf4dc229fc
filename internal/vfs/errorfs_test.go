package vfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestOpString(t *testing.T) {
	got := fmt.Sprint(OpCreate, OpWrite, OpSync, OpRename, OpRemove, Op(0), numOps)
	if want := "create write sync rename remove Op(0) Op(6)"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

// TestErrorFSFailNth: for each kind of operation, the n-th one from the
// FailNth call fails with the injected error and has no effect (writes are
// in TestErrorFSPartialWrite); the ones before and after it succeed.
func TestErrorFSFailNth(t *testing.T) {
	// Each case's op is called with i = 1, 2, 3 and FailNth(op, 2).
	// effect reports whether the i-th call did what it should.
	for _, tc := range []struct {
		op     Op
		setup  func(t *testing.T, fs FS)
		call   func(fs FS, i int) error
		effect func(fs *MemFS, i int) bool
	}{{
		op:     OpCreate,
		call:   func(fs FS, i int) error { return second(fs.Create(fmt.Sprintf("/f%d", i))) },
		effect: func(fs *MemFS, i int) bool { return Exists(fs, fmt.Sprintf("/f%d", i)) },
	}, {
		op:     OpCreate,
		call:   func(fs FS, i int) error { return fs.MkdirAll(fmt.Sprintf("/d%d/e", i), 0o755) },
		effect: func(fs *MemFS, i int) bool { return Exists(fs, fmt.Sprintf("/d%d", i)) },
	}, {
		op: OpSync,
		setup: func(t *testing.T, fs FS) {
			for i := 1; i <= 3; i++ {
				mustWriteFile(t, fs, fmt.Sprintf("/f%d", i), nil, false)
			}
			if err := SyncDir(fs, "/"); err != nil {
				t.Fatal(err)
			}
		},
		call: func(fs FS, i int) error {
			f, err := fs.OpenReadWrite(fmt.Sprintf("/f%d", i))
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.Write([]byte("data")); err != nil {
				return err
			}
			return f.Sync()
		},
		effect: func(fs *MemFS, i int) bool {
			return !strings.Contains(fs.String(), fmt.Sprintf("f%d size=4 [unsynced", i))
		},
	}, {
		op: OpSync,
		call: func(fs FS, i int) error {
			if err := fs.MkdirAll(fmt.Sprintf("/d%d", i), 0o755); err != nil {
				return err
			}
			return SyncDir(fs, "/")
		},
		effect: func(fs *MemFS, i int) bool {
			return !strings.Contains(fs.String(), fmt.Sprintf("d%d/ [new name]", i))
		},
	}, {
		op: OpRename,
		setup: func(t *testing.T, fs FS) {
			for i := 1; i <= 3; i++ {
				mustWriteFile(t, fs, fmt.Sprintf("/f%d", i), nil, false)
			}
		},
		call:   func(fs FS, i int) error { return fs.Rename(fmt.Sprintf("/f%d", i), fmt.Sprintf("/g%d", i)) },
		effect: func(fs *MemFS, i int) bool { return Exists(fs, fmt.Sprintf("/g%d", i)) },
	}, {
		op: OpRemove,
		setup: func(t *testing.T, fs FS) {
			for i := 1; i <= 3; i++ {
				mustWriteFile(t, fs, fmt.Sprintf("/f%d", i), nil, false)
			}
		},
		call:   func(fs FS, i int) error { return fs.Remove(fmt.Sprintf("/f%d", i)) },
		effect: func(fs *MemFS, i int) bool { return !Exists(fs, fmt.Sprintf("/f%d", i)) },
	}, {
		op: OpRemove,
		setup: func(t *testing.T, fs FS) {
			for i := 1; i <= 3; i++ {
				if err := fs.MkdirAll(fmt.Sprintf("/d%d/e", i), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		},
		call:   func(fs FS, i int) error { return fs.RemoveAll(fmt.Sprintf("/d%d", i)) },
		effect: func(fs *MemFS, i int) bool { return !Exists(fs, fmt.Sprintf("/d%d", i)) },
	}} {
		mem := NewMem()
		efs := NewErrorFS(mem)
		if tc.setup != nil {
			tc.setup(t, efs)
		}
		efs.FailNth(tc.op, 2, nil)
		for i := 1; i <= 3; i++ {
			err := tc.call(efs, i)
			if i == 2 {
				var pathErr *os.PathError
				var linkErr *os.LinkError
				if !errors.Is(err, ErrInjected) || !(errors.As(err, &pathErr) || errors.As(err, &linkErr)) {
					t.Errorf("%v call %d: %v, want an *os.PathError or *os.LinkError wrapping ErrInjected", tc.op, i, err)
				}
				if tc.effect(mem, i) {
					t.Errorf("%v call %d failed but took effect:\n%s", tc.op, i, mem)
				}
				continue
			}
			if err != nil {
				t.Errorf("%v call %d: %v", tc.op, i, err)
			}
			if !tc.effect(mem, i) {
				t.Errorf("%v call %d succeeded without effect:\n%s", tc.op, i, mem)
			}
		}
	}
}

// TestErrorFSPartialWrite: a failed Write or WriteAt writes the first half
// of its buffer, rounded down, and says so.
func TestErrorFSPartialWrite(t *testing.T) {
	mem := NewMem()
	efs := NewErrorFS(mem)
	f, err := efs.Create("/f")
	if err != nil {
		t.Fatal(err)
	}
	efs.FailNth(OpWrite, 1, nil)
	if n, err := f.Write([]byte("0123456")); n != 3 || !errors.Is(err, ErrInjected) {
		t.Fatalf("Write: %d, %v; want 3, ErrInjected", n, err)
	}
	if got := memCat(t, mem, "/f"); got != "012" {
		t.Fatalf("after a failed write /f holds %q", got)
	}
	// The handle's offset moved past the partial write, as on a real file.
	if n, err := f.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	efs.FailNth(OpWrite, 1, nil)
	if n, err := f.WriteAt([]byte("ABCDEFGH"), 1); n != 4 || !errors.Is(err, ErrInjected) {
		t.Fatalf("WriteAt: %d, %v; want 4, ErrInjected", n, err)
	}
	if got := memCat(t, mem, "/f"); got != "0ABCDc" {
		t.Fatalf("after a failed WriteAt /f holds %q", got)
	}
	efs.FailNth(OpWrite, 1, nil)
	if n, err := f.Write([]byte("x")); n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("one-byte Write: %d, %v; want 0, ErrInjected", n, err)
	}
}

// TestErrorFSFailedSyncIsNotDurable: a crash after a failed Sync loses what
// it should have made durable.
func TestErrorFSFailedSyncIsNotDurable(t *testing.T) {
	mem := NewMem()
	efs := NewErrorFS(mem)
	mustWriteFile(t, efs, "/f", []byte("synced"), true)
	f, err := efs.OpenReadWrite("/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("SYNCED"), 0); err != nil {
		t.Fatal(err)
	}
	efs.FailNth(OpSync, 1, nil)
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Sync: %v", err)
	}
	mem.Crash()
	if got := memCat(t, mem, "/f"); got != "synced" {
		t.Fatalf("after a failed Sync and a crash /f holds %q", got)
	}
}

// TestErrorFSCount: Count counts attempts, failed ones included, so a test
// can count a workload's operations once and then fail each in turn.
func TestErrorFSCount(t *testing.T) {
	workload := func(fs FS) error {
		if err := fs.MkdirAll("/d", 0o755); err != nil {
			return err
		}
		for i := range 3 {
			f, err := fs.Create(fmt.Sprintf("/d/%d.tmp", i))
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("data")); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := fs.Rename(fmt.Sprintf("/d/%d.tmp", i), fmt.Sprintf("/d/%d", i)); err != nil {
				return err
			}
		}
		if err := SyncDir(fs, "/d"); err != nil {
			return err
		}
		return fs.RemoveAll("/d/0")
	}
	efs := NewErrorFS(NewMem())
	if err := workload(efs); err != nil {
		t.Fatal(err)
	}
	want := map[Op]int{OpCreate: 4, OpWrite: 3, OpSync: 4, OpRename: 3, OpRemove: 1}
	for op, n := range want {
		if got := efs.Count(op); got != n {
			t.Errorf("Count(%v) = %d, want %d", op, got, n)
		}
	}
	for op, count := range want {
		for n := 1; n <= count; n++ {
			efs := NewErrorFS(NewMem())
			custom := fmt.Errorf("disk on fire (%v %d)", op, n)
			efs.FailNth(op, n, custom)
			if err := workload(efs); !errors.Is(err, custom) {
				t.Errorf("FailNth(%v, %d): the workload returned %v", op, n, err)
			}
			// Attempts stop at the failure, which is counted.
			if got := efs.Count(op); got != n {
				t.Errorf("FailNth(%v, %d): Count = %d", op, n, got)
			}
		}
	}
}

// TestErrorFSRearm: an armed failure fires once; a later FailNth counts
// from its own call, and replaces an earlier one for the same op.
func TestErrorFSRearm(t *testing.T) {
	efs := NewErrorFS(NewMem())
	create := func(i int) error { return second(efs.Create(fmt.Sprintf("/f%d", i))) }
	efs.FailNth(OpCreate, 1, nil)
	if err := create(1); !errors.Is(err, ErrInjected) {
		t.Fatalf("first create: %v", err)
	}
	for i := 2; i < 5; i++ {
		if err := create(i); err != nil {
			t.Fatalf("create %d after the failure: %v", i, err)
		}
	}
	efs.FailNth(OpCreate, 3, nil)
	efs.FailNth(OpCreate, 2, nil)
	for i := 5; i < 10; i++ {
		if err := create(i); (err != nil) != (i == 6) {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	// Other ops are unaffected by an armed create.
	efs.FailNth(OpCreate, 1, nil)
	if err := efs.Rename("/f2", "/g2"); err != nil {
		t.Fatal(err)
	}
}

// TestErrorFSConcurrent: with writers on many goroutines, exactly one
// write fails (run with -race).
func TestErrorFSConcurrent(t *testing.T) {
	efs := NewErrorFS(NewMem())
	efs.FailNth(OpWrite, 150, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures, others int
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := efs.Create(fmt.Sprintf("/f%d", i))
			if err != nil {
				mu.Lock()
				others++
				mu.Unlock()
				return
			}
			defer f.Close()
			for range 100 {
				_, err := f.Write([]byte("x"))
				mu.Lock()
				switch {
				case errors.Is(err, ErrInjected):
					failures++
				case err != nil:
					others++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failures != 1 || others != 0 || efs.Count(OpWrite) != 400 {
		t.Fatalf("%d injected failures, %d other errors, %d writes; want 1, 0, 400", failures, others, efs.Count(OpWrite))
	}
}

func TestErrorFSFailNthPanicsOnMisuse(t *testing.T) {
	for _, tc := range []struct {
		op Op
		n  int
	}{{OpWrite, 0}, {Op(0), 1}, {numOps, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("FailNth(%v, %d) did not panic", tc.op, tc.n)
				}
			}()
			NewErrorFS(NewMem()).FailNth(tc.op, tc.n, nil)
		}()
	}
}

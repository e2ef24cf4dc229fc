package backend

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func mustOpen(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func commit(t *testing.T, b *Backend, index uint64, kvs ...string) {
	t.Helper()
	wb := b.NewBatch()
	for i := 0; i < len(kvs); i += 2 {
		if kvs[i+1] == "" {
			wb.Delete([]byte(kvs[i]))
		} else {
			wb.Set([]byte(kvs[i]), []byte(kvs[i+1]))
		}
	}
	if err := wb.Commit(index, 1); err != nil {
		t.Fatal(err)
	}
}

// scanAll returns the view's keys and values as "k=v" strings.
func scanAll(t *testing.T, r *ReadView, reverse bool) []string {
	t.Helper()
	var out []string
	fn := func(k, v []byte) bool { out = append(out, string(k)+"="+string(v)); return true }
	var err error
	if reverse {
		err = r.ScanReverse(nil, nil, fn)
	} else {
		err = r.Scan(nil, nil, fn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The consistent index is committed with the batch and survives a restart;
// the backend's own keys never show in a scan and cannot be written.
func TestBatchesCarryTheConsistentIndex(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir)
	if i, _ := b.ConsistentIndex(); i != 0 {
		t.Fatalf("a new backend at index %d", i)
	}
	commit(t, b, 5, "a", "1", "b", "2")
	commit(t, b, 6, "a", "", "c", "3")
	wb := b.NewBatch()
	wb.Set([]byte("\x00consistent_index"), []byte("boom"))
	if err := wb.Commit(7, 1); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("writing a reserved key: got %v, want ErrReservedKey", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = mustOpen(t, dir)
	defer b.Close()
	if i, term := b.ConsistentIndex(); i != 6 || term != 1 {
		t.Fatalf("consistent index %d/%d after restart, want 6/1", i, term)
	}
	r := b.NewReadView()
	defer r.Close()
	if got := strings.Join(scanAll(t, r, false), " "); got != "b=2 c=3" {
		t.Fatalf("scan: %s", got)
	}
	if got := strings.Join(scanAll(t, r, true), " "); got != "c=3 b=2" {
		t.Fatalf("reverse scan: %s", got)
	}
}

// A read view sees the database as it was when made, whatever commits
// after.
func TestReadViewIsolation(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	commit(t, b, 1, "a", "1")
	r := b.NewReadView()
	defer r.Close()
	commit(t, b, 2, "a", "2", "b", "2")
	v, ok, err := r.Get([]byte("a"))
	if err != nil || !ok || string(v) != "1" {
		t.Fatalf("Get(a) = %q, %v, %v", v, ok, err)
	}
	if _, ok, _ := r.Get([]byte("b")); ok {
		t.Fatal("the view sees a key committed after it was made")
	}
	// Bounds: [b, d).
	commit(t, b, 3, "c", "3", "d", "4")
	r2 := b.NewReadView()
	defer r2.Close()
	var keys []string
	r2.Scan([]byte("b"), []byte("d"), func(k, _ []byte) bool { keys = append(keys, string(k)); return true })
	if strings.Join(keys, ",") != "b,c" {
		t.Fatalf("scan [b, d) = %v", keys)
	}
}

// The applier applies each raft entry once, in order: an older index is
// refused (a panic under the invariants tag, an error without).
func TestCommitRefusesAnOlderIndex(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	commit(t, b, 10)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return b.NewBatch().Commit(9, 1)
	}()
	if err == nil {
		t.Fatal("committing index 9 after 10 succeeded")
	}
	if i, _ := b.ConsistentIndex(); i != 10 {
		t.Fatalf("consistent index %d after a refused commit", i)
	}
}

// A checkpoint opens as a backend holding exactly what was committed
// before it, with its consistent index.
func TestCheckpoint(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	for i := uint64(1); i <= 100; i++ {
		commit(t, b, i, fmt.Sprintf("key%03d", i), fmt.Sprint(i))
	}
	cp := filepath.Join(t.TempDir(), "checkpoint")
	index, _, err := b.Checkpoint(cp)
	if err != nil || index != 100 {
		t.Fatalf("Checkpoint = %d, %v", index, err)
	}
	commit(t, b, 101, "key101", "101")

	c := mustOpen(t, cp)
	defer c.Close()
	if i, _ := c.ConsistentIndex(); i != 100 {
		t.Fatalf("the checkpoint is at index %d, want 100", i)
	}
	r := c.NewReadView()
	defer r.Close()
	if got := scanAll(t, r, false); len(got) != 100 || got[99] != "key100=100" {
		t.Fatalf("the checkpoint holds %d keys, last %q", len(got), got[len(got)-1])
	}
}

// killChild commits batches for ever: batch i sets "key<i>" and records
// index i; after every 10th it syncs and prints "synced i".
func killChild(dir string) {
	b, err := Open(dir, Options{})
	if err != nil {
		panic(err)
	}
	out := bufio.NewWriter(os.Stdout)
	start, _ := b.ConsistentIndex()
	for i := start + 1; ; i++ {
		wb := b.NewBatch()
		wb.Set(fmt.Appendf(nil, "key%08d", i), fmt.Appendf(nil, "value %d", i))
		wb.Set([]byte("last"), fmt.Appendf(nil, "%d", i))
		if err := wb.Commit(i, 1); err != nil {
			panic(err)
		}
		if i%10 == 0 {
			if err := b.Sync(); err != nil {
				panic(err)
			}
			fmt.Fprintf(out, "synced %d\n", i)
			out.Flush()
		}
	}
}

// TestKillKeepsBatchesWhole SIGKILLs a process committing batches, three
// times over one database: after each kill the consistent index covers
// every synced batch, and the data is exactly that of the batches up to
// it, none torn, none missing, none extra.
func TestKillKeepsBatchesWhole(t *testing.T) {
	if dir := os.Getenv("CAIRN_BACKEND_KILL_CHILD"); dir != "" {
		killChild(dir)
		return
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillKeepsBatchesWhole$")
		cmd.Env = append(os.Environ(), "CAIRN_BACKEND_KILL_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		var synced uint64
		scanner := bufio.NewScanner(stdout)
		for n := 0; n < 20+round*15 && scanner.Scan(); n++ {
			synced, _ = strconv.ParseUint(strings.TrimPrefix(scanner.Text(), "synced "), 10, 64)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if synced == 0 {
			t.Fatalf("round %d: the child synced nothing", round)
		}

		b := mustOpen(t, dir)
		index, _ := b.ConsistentIndex()
		if index < synced {
			t.Fatalf("round %d: consistent index %d, but %d was synced", round, index, synced)
		}
		r := b.NewReadView()
		last, _, _ := r.Get([]byte("last"))
		if string(last) != fmt.Sprint(index) {
			t.Fatalf("round %d: index %d but the last batch applied says %q", round, index, last)
		}
		n := uint64(0)
		r.Scan([]byte("key"), []byte("key\xff"), func(k, v []byte) bool {
			n++
			if want := fmt.Sprintf("key%08d", n); string(k) != want || string(v) != fmt.Sprintf("value %d", n) {
				t.Fatalf("round %d: key %d is %s=%s", round, n, k, v)
			}
			return true
		})
		if n != index {
			t.Fatalf("round %d: %d keys for index %d", round, n, index)
		}
		r.Close()
		b.Close()
		t.Logf("round %d: synced %d, recovered %d", round, synced, index)
	}
}

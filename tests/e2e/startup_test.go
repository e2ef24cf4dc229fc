package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Storage that cannot be opened stops a start with exit status 1 and one
// error line naming the file or directory and the cause: never a Go panic,
// which hides the cause under a stack trace (a corrupt pebble log used to
// end in a nil-pointer SIGSEGV in bootstrap's cleanup).

// startExpectingFailure starts m, which must exit on its own with status
// 1, and returns what this start wrote (stderr: cairn logs nothing on
// stdout). It checks that the output has no panic and exactly one error
// line, which contains every want, and returns that line.
func startExpectingFailure(t *testing.T, m *member, want ...string) string {
	t.Helper()
	before := int64(0)
	if fi, err := os.Stat(m.logPath); err == nil {
		before = fi.Size()
	}
	m.start()
	const within = 60 * time.Second
	select {
	case <-m.proc.exited:
	case <-time.After(within):
		m.kill()
		t.Fatalf("%s still running %v after a start that should fail; killed it", m.name, within)
	}
	exitStatus := m.proc.err
	data, err := os.ReadFile(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	out := string(data[before:])
	var exit *exec.ExitError
	if !errors.As(exitStatus, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("%s exited with %v, want exit status 1; output:\n%s", m.name, exitStatus, out)
	}
	for _, bad := range []string{"panic", "SIGSEGV", "goroutine "} {
		if strings.Contains(out, bad) {
			t.Fatalf("%s's output has %q:\n%s", m.name, bad, out)
		}
	}
	var errLines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"fatal"`) || strings.HasPrefix(l, "cairn: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("%s wrote %d error lines, want 1; output:\n%s", m.name, len(errLines), out)
	}
	for _, w := range want {
		if !strings.Contains(errLines[0], w) {
			t.Fatalf("%s's error line does not mention %q:\n%s", m.name, w, errLines[0])
		}
	}
	t.Logf("%s: %s", m.name, errLines[0])
	return errLines[0]
}

// xorMiddle flips 64 bytes in the middle of path's first n bytes.
func xorMiddle(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n = min(n, len(data))
	mid := max(0, n/2-32)
	for i := mid; i < min(mid+64, len(data)); i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// usedBytes is where a preallocated file's non-zero bytes end.
func usedBytes(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(data)
	for n > 0 && data[n-1] == 0 {
		n--
	}
	return n
}

// Garbage in the middle of pebble's manifest (the record of its tables,
// which a start reads whole; pebble's own WAL is off, see the backend's
// doc): the start fails, never serving the older state. Pebble reads a
// manifest record it cannot check as the manifest's end, so what it
// reports is either the corruption or a table that the lost records had
// replaced and that is gone, both naming the database directory; or, when
// every table of that older state is still there (flushed tables are
// moved down, not rewritten: see the backend's doc, Keys), pebble opens
// at it, and the member refuses a backend older than its raft snapshot,
// whose entries the WAL no longer holds.
func TestStartupCorruptPebbleManifest(t *testing.T) {
	// A raft snapshot every 100 entries flushes pebble's memtables, and
	// each flush adds a record to the manifest.
	c := newCluster(t, 1, "--snapshot-count", "100")
	m := c.members[0]
	cli := m.client()
	for i := range 1000 {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("k%04d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	m.kill()
	dbDir := filepath.Join(m.dataDir, "member", "db")
	manifests, err := filepath.Glob(filepath.Join(dbDir, "MANIFEST-*"))
	if err != nil || len(manifests) != 1 {
		t.Fatalf("manifests %v, %v; want one", manifests, err)
	}
	xorMiddle(t, manifests[0], usedBytes(t, manifests[0]))
	line := startExpectingFailure(t, m)
	switch {
	case strings.Contains(line, "backend: opening "+dbDir) && (strings.Contains(line, "corrupt") ||
		strings.Contains(line, "(type sstable) unknown to the objstorage provider: file does not exist")):
	case strings.Contains(line, "the backend (index ") && strings.Contains(line, ") is older than the snapshot (index "):
	default:
		t.Fatalf("the error names neither the corruption, nor a missing table, nor a backend older than the snapshot: %s", line)
	}
}

// A data directory that is a file, not a directory.
func TestStartupDataDirIsFile(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	m.kill()
	if err := os.RemoveAll(m.dataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.dataDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	startExpectingFailure(t, m, m.dataDir, "not a directory")
}

// Garbage in the middle of the raft WAL's synced records: the start fails
// naming the segment and the damage (see internal/wal's damage tests for
// what is told apart from a torn tail).
func TestStartupCorruptWAL(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	for i := range 100 {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("k%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	m.kill()
	segs, err := filepath.Glob(filepath.Join(m.dataDir, "member", "wal", "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("WAL segments %v, %v; want one", segs, err)
	}
	// The middle of the records (all acknowledged, so synced), not of the
	// preallocated zeros after them.
	xorMiddle(t, segs[0], usedBytes(t, segs[0]))
	startExpectingFailure(t, m, segs[0], "wal: corrupt")
}

// A member that caught up through a snapshot from the leader has no log
// before that snapshot: if the snapshot file is damaged, nothing older can
// stand in for it, and the start fails naming the snapshot directory.
func TestStartupCorruptInstalledSnapshot(t *testing.T) {
	_, _, behind, _ := catchUpThroughSnapshot(t)
	snapDir := filepath.Join(behind.dataDir, "member", "snap")
	behind.kill()
	snaps, err := filepath.Glob(filepath.Join(snapDir, "*.snap"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("snapshot files %v, %v", snaps, err)
	}
	for _, s := range snaps {
		xorMiddle(t, s, usedBytes(t, s))
	}
	startExpectingFailure(t, behind, snapDir, "no readable snapshot file")
}

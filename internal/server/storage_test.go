package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func globCount(t *testing.T, pattern string) int {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// --wal-dir: the WAL lives there and nowhere else, and a restart finds
// it there.
func TestDedicatedWALDir(t *testing.T) {
	walDir := filepath.Join(t.TempDir(), "wal")
	c := newTestCluster(t, 1, func(_ int, cfg *Config) { cfg.WALDir = walDir })
	c.waitLeader(0)
	mustPut(t, c.members[0].s, "k", "v")
	c.stop(0)
	if n := globCount(t, filepath.Join(walDir, "*.wal")); n == 0 {
		t.Fatalf("no WAL segment in --wal-dir %s", walDir)
	}
	if _, err := os.Stat(filepath.Join(c.cfgs[0].DataDir, "member", "wal")); !os.IsNotExist(err) {
		t.Fatalf("member/wal exists beside --wal-dir: %v", err)
	}
	c.start(0)
	c.waitLeader(0)
	if got := mustGet(t, c.members[0].s, "k"); got != "v" {
		t.Fatalf("k = %q after a restart, want v", got)
	}
}

// --max-snapshots bounds the snapshot files kept (their images too);
// 0 keeps every one.
func TestMaxSnapshots(t *testing.T) {
	for _, max := range []int{2, 0} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			c := newTestCluster(t, 1, func(_ int, cfg *Config) {
				cfg.SnapshotCount, cfg.MaxSnapshots = 10, max
			})
			c.waitLeader(0)
			for i := range 80 {
				mustPut(t, c.members[0].s, fmt.Sprintf("k%d", i), "v")
			}
			snapDir := filepath.Join(c.cfgs[0].DataDir, "member", "snap")
			// Purges run in the background after each snapshot: wait for
			// the count to settle at the bound.
			deadline := time.Now().Add(waitTimeout)
			for {
				n := globCount(t, filepath.Join(snapDir, "*.snap"))
				if max == 0 && n >= 7 || max > 0 && n == max {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d snapshot files with --max-snapshots=%d after 80 writes, one snapshot every 10", n, max)
				}
				time.Sleep(10 * time.Millisecond) // a polling interval
			}
			c.stop(0)
			c.start(0)
			c.waitLeader(0)
			if got := mustGet(t, c.members[0].s, "k79"); got != "v" {
				t.Fatalf("k79 = %q after a restart, want v", got)
			}
		})
	}
}

// A member with --unsafe-no-fsync serves writes and finds them again
// after a clean restart (that no fsync reaches the disk is tested in
// packages member and backend).
func TestUnsafeNoFsyncServes(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) { cfg.UnsafeNoFsync = true })
	c.waitLeader(0)
	for i := range 10 {
		mustPut(t, c.members[0].s, fmt.Sprintf("k%d", i), "v")
	}
	c.stop(0)
	c.start(0)
	c.waitLeader(0)
	if got := mustGet(t, c.members[0].s, "k9"); got != "v" {
		t.Fatalf("k9 = %q after a restart, want v", got)
	}
}

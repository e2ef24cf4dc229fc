package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// waitGlobCount waits until the number of files matching pattern
// satisfies settled, as background purges bring it there, and fails the
// test with what after waitTimeout.
func waitGlobCount(t *testing.T, pattern string, settled func(n int) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		n := globCount(t, pattern)
		if settled(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s", n, what)
		}
		time.Sleep(10 * time.Millisecond) // a polling interval
	}
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
			waitGlobCount(t, filepath.Join(snapDir, "*.snap"), func(n int) bool { return max == 0 && n >= 7 || max > 0 && n == max },
				fmt.Sprintf("snapshot files with --max-snapshots=%d after 80 writes, one snapshot every 10", max))
			c.stop(0)
			c.start(0)
			c.waitLeader(0)
			if got := mustGet(t, c.members[0].s, "k79"); got != "v" {
				t.Fatalf("k79 = %q after a restart, want v", got)
			}
		})
	}
}

// --max-wals: WAL segments no recovery needs go (all but those from the
// newest snapshot on and one before it), fewer than the bound; 0 keeps
// every one, as etcd. Either way the member recovers its writes.
func TestMaxWALs(t *testing.T) {
	for _, max := range []int{5, 0} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			c := newTestCluster(t, 1, func(_ int, cfg *Config) {
				cfg.SnapshotCount, cfg.MaxSnapshots, cfg.MaxWALs = 10, 5, max
				cfg.WALSegmentBytes = 64 << 10
			})
			c.waitLeader(0)
			// About 1 KiB an entry: 7 segments' worth, a snapshot every 10.
			value := strings.Repeat("v", 1000)
			for i := range 450 {
				mustPut(t, c.members[0].s, fmt.Sprintf("k%d", i), value)
			}
			walDir := filepath.Join(c.cfgs[0].DataDir, "member", "wal")
			// Segments go as snapshots are taken, after the puts' answers:
			// wait for the count to settle.
			waitGlobCount(t, filepath.Join(walDir, "*.wal"), func(n int) bool { return max == 0 && n >= 7 || max > 0 && n <= 2 },
				fmt.Sprintf("WAL segments with --max-wals=%d after 450 writes of 1 KiB, a snapshot every 10", max))
			c.stop(0)
			c.start(0)
			c.waitLeader(0)
			if got := mustGet(t, c.members[0].s, "k449"); got != value {
				t.Fatalf("k449 = %q after a restart, want the value written", got)
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

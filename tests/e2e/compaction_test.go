package e2e

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// waitCompacted polls until reading key at rev fails as compacted.
func waitCompacted(t *testing.T, cli *clientv3.Client, key string, rev int64, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		_, err := cli.Get(ctxT(t), key, clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return time.Since(start)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polling a real server's background work
	}
	t.Fatalf("revision %d not compacted within %v", rev, within)
	return 0
}

// Periodic auto-compaction keeps at least the retention of history, then
// compacts what is older.
func TestAutoCompactionPeriodic(t *testing.T) {
	c := newCluster(t, 1, "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s")
	cli := c.members[0].client()
	put, err := cli.Put(ctxT(t), "k", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctxT(t), "k", "v2"); err != nil {
		t.Fatal(err)
	}
	took := waitCompacted(t, cli, "k", put.Header.Revision, 15*time.Second)
	if took < 2*time.Second {
		t.Fatalf("compacted after %v, inside the 2s retention", took)
	}
	get, err := cli.Get(ctxT(t), "k")
	if err != nil || string(get.Kvs[0].Value) != "v2" {
		t.Fatalf("latest value after compaction: %+v, %v", get, err)
	}
}

// Revision auto-compaction keeps the last N revisions.
func TestAutoCompactionRevision(t *testing.T) {
	c := newCluster(t, 1, "--auto-compaction-mode", "revision", "--auto-compaction-retention", "5",
		"--auto-compaction-interval", "200ms")
	cli := c.members[0].client()
	for range 10 {
		if _, err := cli.Put(ctxT(t), "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	// Revision 11 now; compaction to 11-5 = 6.
	waitCompacted(t, cli, "k", 5, 10*time.Second)
	if _, err := cli.Get(ctxT(t), "k", clientv3.WithRev(6)); err != nil {
		t.Fatalf("revision 6 is within the retention: %v", err)
	}
}

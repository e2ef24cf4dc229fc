package e2e

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// waitCompacted polls until reading key at rev fails as compacted, for at
// most waitDeadline, and returns how long after since that was.
func waitCompacted(t *testing.T, cli *clientv3.Client, key string, rev int64, since time.Time) time.Duration {
	t.Helper()
	for deadline := time.Now().Add(waitDeadline); time.Now().Before(deadline); {
		_, err := cli.Get(ctxT(t), key, clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return time.Since(since)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polling a real server's background work
	}
	t.Fatalf("revision %d not compacted within %v", rev, waitDeadline)
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
	// The first revision can go once the second is 2s old: measured from
	// before the second put was sent, so that a slow answer to it does
	// not count as retention.
	sent := time.Now()
	if _, err := cli.Put(ctxT(t), "k", "v2"); err != nil {
		t.Fatal(err)
	}
	took := waitCompacted(t, cli, "k", put.Header.Revision, sent)
	t.Logf("compacted %v after the second put was sent", took.Round(time.Millisecond))
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
	waitCompacted(t, cli, "k", 5, time.Now())
	if _, err := cli.Get(ctxT(t), "k", clientv3.WithRev(6)); err != nil {
		t.Fatalf("revision 6 is within the retention: %v", err)
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rssBytes is a process's resident set size.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestWatchSlowConsumer: a client that opens watchers and never reads
// does not hold up writes, and the server's memory stays bounded however
// much is written; once it reads, it gets every revision exactly once, in
// order (caught up from the backend).
//
// It measures puts/s without the stuck reader, with it, and without it
// again, and logs the slowdown (the mean of the two without is the
// baseline: on an idle machine, under 2x). It is a measurement, not a
// bound: other work on the machine comes and goes between the phases.
// The server's RSS is compared before and after the stuck phase.
func TestWatchSlowConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	// Frequent snapshots: the raft log kept in memory between snapshots
	// (up to --snapshot-count entries, as in etcd) would otherwise grow
	// with every phase and hide what the watchers cost.
	c := newCluster(t, 1, "--snapshot-count", "300", "--snapshot-catchup-entries", "100")
	m := c.members[0]
	cli := m.client()
	const (
		workers = 8
		// A phase writes more than twice a pebble memtable (32 MiB,
		// see internal/backend's doc), whose fill and rotation move
		// the RSS by up to one memtable whatever the watchers do.
		puts      = 2400
		valueSize = 32 << 10
		watchers  = 10
	)
	value := strings.Repeat("x", valueSize)
	var seq int
	phase := func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), commandDeadline)
		defer cancel()
		start := time.Now()
		var wg sync.WaitGroup
		keys := make(chan string, puts)
		for range puts {
			seq++
			keys <- fmt.Sprintf("sc/%06d", seq)
		}
		close(keys)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range keys {
					if _, err := cli.Put(ctx, k, value); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return puts / time.Since(start).Seconds()
	}
	warm := phase()
	base1 := phase()
	rss1 := rssBytes(t, m.proc.cmd.Process.Pid)

	// The stuck reader: small flow-control windows (no BDP growth), so
	// the server's sends block once 64 KiB are in flight.
	conn, err := grpc.NewClient(strings.TrimPrefix(m.clientURL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commandDeadline)
	defer cancel()
	stream, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get, err := cli.Get(ctxT(t), "sc/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	from := get.Header.Revision + 1
	for range watchers {
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte("sc/"), RangeEnd: []byte("sc0"), PrevKv: true}}}); err != nil {
			t.Fatal(err)
		}
	}
	waitMetric(t, m, "etcd_debugging_mvcc_watcher_total", watchers)

	stuck := phase()
	rss2 := rssBytes(t, m.proc.cmd.Process.Pid)
	slow := metric(t, m, "etcd_debugging_mvcc_slow_watcher_total")
	to := from + puts - 1

	// Now read: every watcher gets every revision once, in order.
	next := map[int64]int64{}
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.Created {
			next[r.WatchId] = from
			continue
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next[r.WatchId] {
				t.Fatalf("watcher %d: got revision %d, want %d", r.WatchId, ev.Kv.ModRevision, next[r.WatchId])
			}
			if ev.PrevKv != nil {
				t.Fatalf("watcher %d: a fresh key with a previous value", r.WatchId)
			}
			next[r.WatchId]++
		}
		done := len(next) == watchers
		for _, n := range next {
			done = done && n > to
		}
		if done {
			break
		}
	}
	cancel()
	waitMetric(t, m, "etcd_debugging_mvcc_watcher_total", 0)
	base2 := phase()

	base := (base1 + base2) / 2
	ratio := base / stuck
	t.Logf("puts/s: warm-up %.0f, without %.0f and %.0f, with %d stuck watchers %.0f (slowdown %.2fx); "+
		"RSS %d MiB before, %d MiB after %d MiB written to the stuck watchers' range; %v slow watchers",
		warm, base1, base2, watchers, stuck, ratio, rss1>>20, rss2>>20, puts*valueSize>>20, slow)
	// Buffering what the stuck watchers were due would take at least the
	// volume written (75 MiB); the memtables alone move the RSS by up to
	// one memtable (32 MiB) either way.
	if grew, bound := rss2-rss1, int64(puts*valueSize*3/4); grew > bound {
		t.Errorf("the server's RSS grew %d MiB during the stuck phase; want under %d MiB", grew>>20, bound>>20)
	}
	if slow < 1 {
		t.Errorf("no watcher counted as slow while stuck")
	}
}

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/version"
)

// Three members: a write sent to a follower is carried to the leader, every
// member then serves it (linearizable reads on any member see it at once),
// and MemberList and Status describe the cluster.
func TestThreeMembers(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	follower := c.members[(lead+1)%3]
	ctx := ctxT(t)
	fcli := follower.client()
	put, err := fcli.Put(ctx, "via-follower", "v")
	if err != nil {
		t.Fatal(err)
	}
	st, err := fcli.Status(ctx, follower.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.MemberId != st.Header.MemberId || st.Leader == st.Header.MemberId ||
		st.Version != version.Etcd || st.StorageVersion != version.Storage || st.DowngradeInfo == nil || st.DowngradeInfo.Enabled {
		t.Fatalf("put header %+v, status %+v", put.Header, st)
	}
	for _, m := range c.members {
		get, err := m.client().Get(ctx, "via-follower")
		if err != nil || len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
			t.Fatalf("%s: %+v, %v", m.name, get, err)
		}
	}
	// A member publishes its name and client URLs through the log once
	// it is up, as in etcd: until then the list has it nameless.
	ml := waitMembersPublished(t, fcli, 3)
	byName := map[string]bool{}
	for _, m := range ml.Members {
		byName[m.Name] = true
		if len(m.PeerURLs) != 1 || len(m.ClientURLs) != 1 {
			t.Errorf("member %+v", m)
		}
	}
	if !byName["m0"] || !byName["m1"] || !byName["m2"] {
		t.Fatalf("members %+v", ml.Members)
	}
}

// waitMembersPublished polls MemberList until it lists n members, each
// with the name and client URLs it publishes when it starts, and returns
// that list.
func waitMembersPublished(t *testing.T, cli *clientv3.Client, n int) *clientv3.MemberListResponse {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		ml, err := cli.MemberList(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		published := len(ml.Members) == n
		for _, m := range ml.Members {
			published = published && m.Name != "" && len(m.ClientURLs) > 0
		}
		if published {
			return ml
		}
		if time.Now().After(deadline) {
			t.Fatalf("members not all published within %v: %+v", waitDeadline, ml.Members)
		}
		time.Sleep(20 * time.Millisecond) // polling a real cluster
	}
}

// catchUpThroughSnapshot starts three members that snapshot every 100
// entries and keep 10 for laggards, keeps one down while 400 puts go to
// the leader, starts it again, and checks that it caught up, holding every
// acknowledged put, through a snapshot image from the leader. It returns
// the cluster, a client of the leader, the member that caught up and the
// puts (key -> revision).
func catchUpThroughSnapshot(t *testing.T) (*cluster, *clientv3.Client, *member, map[string]int64) {
	t.Helper()
	c := newCluster(t, 3, "--snapshot-count", "100", "--snapshot-catchup-entries", "10")
	lead := c.waitLeader()
	behind := c.members[(lead+1)%3]
	behind.kill()
	cli := c.members[lead].client()
	acked := map[string]int64{}
	for i := range 400 {
		key := fmt.Sprintf("load/%04d", i)
		resp, err := cli.Put(ctxT(t), key, key)
		if err != nil {
			t.Fatal(err)
		}
		acked[key] = resp.Header.Revision
	}
	behind.start()
	bcli := behind.client()
	checkAcked(t, bcli, acked, false) // a linearizable read waits for it to catch up
	checkAcked(t, bcli, acked, true)
	images, err := filepath.Glob(filepath.Join(behind.dataDir, "member", "snap", "*.snap.db"))
	if err != nil || len(images) == 0 {
		t.Fatalf("the member caught up without receiving a snapshot image (%v)", err)
	}
	// The lines etcd's own tests wait for around a snapshot catch-up.
	waitLog(t, c.members[lead], "saved snapshot", 1)
	waitLog(t, c.members[lead], "sent database snapshot", 1)
	waitLog(t, behind, "received and saved database snapshot", 1)
	waitLog(t, behind, "applied snapshot", 1)
	return c, cli, behind, acked
}

// loadGen writes unique keys from several clients until stopped, and
// records which writes were acknowledged, at which revision.
type loadGen struct {
	mu    sync.Mutex
	acked map[string]int64 // key -> revision acknowledged
	stop  chan struct{}
	wg    sync.WaitGroup
	seq   atomic.Int64
}

func startLoad(cli *clientv3.Client, workers int) *loadGen {
	return startLoadPrefix(cli, workers, "load/")
}

// startLoadPrefix is startLoad writing keys under prefix.
func startLoadPrefix(cli *clientv3.Client, workers int, prefix string) *loadGen {
	g := &loadGen{acked: map[string]int64{}, stop: make(chan struct{})}
	for w := range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.stop:
					return
				default:
				}
				key := fmt.Sprintf("%s%d/%d", prefix, w, g.seq.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := cli.Put(ctx, key, key)
				cancel()
				if err == nil {
					g.mu.Lock()
					g.acked[key] = resp.Header.Revision
					g.mu.Unlock()
				}
			}
		}()
	}
	return g
}

// waitAcked waits until n writes are acknowledged, or for at most
// within, and returns how many are.
func (g *loadGen) waitAcked(n int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		g.mu.Lock()
		acked := len(g.acked)
		g.mu.Unlock()
		if acked >= n || time.Now().After(deadline) {
			return acked
		}
		time.Sleep(10 * time.Millisecond) // polling progress of real processes
	}
}

func (g *loadGen) halt() {
	close(g.stop)
	g.wg.Wait()
}

// checkAcked reads every acknowledged key from cli and checks it is there,
// with the revision it was acknowledged at.
func checkAcked(t *testing.T, cli *clientv3.Client, acked map[string]int64, serializable bool) {
	t.Helper()
	opts := []clientv3.OpOption{clientv3.WithFromKey()}
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	get, err := cli.Get(ctxT(t), "\x00", opts...)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int64{}
	for _, kv := range get.Kvs {
		found[string(kv.Key)] = kv.ModRevision
	}
	lost := 0
	for k, rev := range acked {
		if found[k] != rev {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged write %s at revision %d: found at %d", k, rev, found[k])
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
	}
}

// SIGKILL the leader under load: writes resume (within failoverDeadline:
// how soon is logged, not asserted; a loaded machine stretches it), and no
// acknowledged write is lost.
func TestLeaderKillUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	cli := c.client()
	g := startLoad(cli, 8)
	// Let the load run, then kill the leader.
	if n := g.waitAcked(200, waitDeadline); n < 200 {
		t.Fatalf("only %d writes acknowledged before the kill", n)
	}
	before, err := memberStatus(c.members[lead])
	if err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	c.members[lead].kill()
	// Probe a surviving member with fresh writes until one succeeds:
	// writes in flight when the leader died (forwarded to it and lost)
	// wait out their own timeouts, as in etcd, and say nothing about when
	// the cluster took writes again. A probe waits a second at most, so
	// that one forwarded to the dead leader does not hold up the next.
	probe := c.members[(lead+1)%3].client()
	var resumed time.Time
	for i := 0; resumed.IsZero() && time.Since(killedAt) < failoverDeadline; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := probe.Put(ctx, fmt.Sprintf("probe/%d", i), "x")
		cancel()
		if err == nil {
			resumed = time.Now()
			g.mu.Lock()
			g.acked[fmt.Sprintf("probe/%d", i)] = resp.Header.Revision
			g.mu.Unlock()
		}
	}
	if resumed.IsZero() {
		g.halt()
		t.Fatalf("no write succeeded within %v of killing the leader", failoverDeadline)
	}
	// Keep the load on across the new leader, until it has acknowledged
	// as many writes again as before the kill.
	g.mu.Lock()
	more := 2 * len(g.acked)
	g.mu.Unlock()
	acked := g.waitAcked(more, waitDeadline)
	g.halt()
	if acked < more {
		t.Fatalf("only %d of %d writes acknowledged after the new leader took over", acked, more)
	}
	after, err := memberStatus(c.members[(lead+1)%3])
	if err != nil {
		t.Fatal(err)
	}
	// How long failover takes is a measurement (3 election timeouts on
	// an idle machine, 2 more per split vote), not something this test
	// can hold a busy machine to.
	t.Logf("writes resumed %v after the leader was killed (%.1f election timeouts), %d election round(s) (%d acknowledged in all)",
		resumed.Sub(killedAt).Round(time.Millisecond), float64(resumed.Sub(killedAt))/float64(electionMs*time.Millisecond),
		after.Header.RaftTerm-before.Header.RaftTerm, len(g.acked))
	c.members[lead].start()
	c.waitLeader()
	for _, m := range c.members {
		// Linearizable first, so the member has caught up; then each
		// member's own copy, serializably.
		checkAcked(t, m.client(), g.acked, false)
		checkAcked(t, m.client(), g.acked, true)
	}
}

// SIGKILL every member, then restart them: all acknowledged data is there
// and no revision moves backwards.
func TestKillAllAndRestart(t *testing.T) {
	c := newCluster(t, 3, "--snapshot-count", "300", "--snapshot-catchup-entries", "50")
	cli := c.client()
	g := startLoad(cli, 8)
	g.waitAcked(1000, waitDeadline)
	for _, m := range c.members {
		m.kill()
	}
	g.halt()
	var maxAcked int64
	for _, rev := range g.acked {
		maxAcked = max(maxAcked, rev)
	}
	for _, m := range c.members {
		m.start()
	}
	c.waitLeader()
	for _, m := range c.members {
		checkAcked(t, m.client(), g.acked, false)
		get, err := m.client().Get(ctxT(t), "load/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
		if err != nil {
			t.Fatal(err)
		}
		if get.Header.Revision < maxAcked {
			t.Fatalf("%s: revision %d after restart, below %d acknowledged before", m.name, get.Header.Revision, maxAcked)
		}
	}
	t.Logf("%d acknowledged writes survived; highest acknowledged revision %d", len(g.acked), maxAcked)
}

// SIGTERM every member at the same moment, under load, twice (a cluster
// stopped whole, as Kubernetes stops a StatefulSet): each exits, with 0,
// within exitDeadline, and after a restart every acknowledged write is
// there. A member once hung for minutes in such a stop (a peer stream's
// send found the stream ended by the other member and waited on a second
// receive; a0e1191): the race is too narrow to hit on demand here (the
// transport's TestEndedStreamNeverReceivedTwice stages it), but a hang
// fails here.
func TestTerminateAllUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	acked := map[string]int64{}
	for round := range 2 {
		cli := c.client()
		g := startLoadPrefix(cli, 8, fmt.Sprintf("load%d/", round))
		if n := g.waitAcked(300, waitDeadline); n < 300 {
			g.halt()
			t.Fatalf("round %d: only %d writes acknowledged", round, n)
		}
		for _, m := range c.members {
			m.proc.cmd.Process.Signal(syscall.SIGTERM)
		}
		deadline := time.After(exitDeadline)
		for _, m := range c.members {
			select {
			case <-m.proc.exited:
			case <-deadline:
				g.halt()
				t.Fatalf("round %d: %s did not exit within %v of a SIGTERM to every member", round, m.name, exitDeadline)
			}
			if code := m.proc.exitCode(t); code != 0 {
				g.halt()
				t.Fatalf("round %d: %s exited %d after SIGTERM", round, m.name, code)
			}
			m.proc = nil
		}
		g.halt()
		cli.Close()
		for k, rev := range g.acked {
			acked[k] = rev
		}
		for _, m := range c.members {
			m.start()
		}
		c.waitLeader()
		for _, m := range c.members {
			checkAcked(t, m.client(), acked, false)
		}
	}
	t.Logf("%d acknowledged writes survived two whole-cluster stops", len(acked))
}

// A member that was down while the others snapshotted and compacted their
// logs catches up through a snapshot: the leader sends an image of its
// backend, and the member ends with every write.
func TestSnapshotCatchUp(t *testing.T) {
	c, cli, behind, acked := catchUpThroughSnapshot(t)
	bcli := behind.client()
	// And it keeps up afterwards, through the log.
	resp, err := cli.Put(ctxT(t), "after", "x")
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, bcli, map[string]int64{}, false)
	get, err := bcli.Get(ctxT(t), "after")
	if err != nil || len(get.Kvs) != 1 || get.Kvs[0].ModRevision != resp.Header.Revision {
		t.Fatalf("after catching up: %+v, %v", get, err)
	}
	// A restart of the caught-up member keeps it all.
	behind.restart()
	c.waitLeader()
	checkAcked(t, behind.client(), acked, false)
}

// A cluster that lost two of its three members for good comes back with
// etcd's --force-new-cluster: the survivor, SIGKILLed and restarted with
// the flag, leads alone with every acknowledged write, the same member and
// cluster IDs, and a member list of itself; it takes writes, and a restart
// without the flag keeps all of that.
func TestForceNewClusterSurvivor(t *testing.T) {
	c := newCluster(t, 3, "--snapshot-count", "200")
	cli := c.client()
	g := startLoad(cli, 4)
	g.waitAcked(500, waitDeadline)
	g.halt()
	survivor := c.members[0]
	before, err := memberStatus(survivor)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.members {
		m.kill()
	}
	survivor.args = append(survivor.args, "--force-new-cluster")
	survivor.start()
	for round := range 2 {
		c := &cluster{t: t, members: []*member{survivor}}
		c.waitLeader()
		mcli := survivor.client()
		checkAcked(t, mcli, g.acked, false)
		st, err := memberStatus(survivor)
		if err != nil {
			t.Fatal(err)
		}
		if st.Header.MemberId != before.Header.MemberId || st.Header.ClusterId != before.Header.ClusterId {
			t.Fatalf("round %d: member %x of cluster %x, was member %x of cluster %x", round,
				st.Header.MemberId, st.Header.ClusterId, before.Header.MemberId, before.Header.ClusterId)
		}
		ml, err := mcli.MemberList(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(ml.Members) != 1 || ml.Members[0].ID != before.Header.MemberId {
			t.Fatalf("round %d: member list %v, want only %x", round, ml.Members, before.Header.MemberId)
		}
		key := fmt.Sprintf("after-force-%d", round)
		put, err := mcli.Put(ctxT(t), key, "v")
		if err != nil {
			t.Fatalf("round %d: a write alone: %v", round, err)
		}
		g.acked[key] = put.Header.Revision
		// Then without the flag: the one-member configuration holds.
		survivor.args = slices.DeleteFunc(survivor.args, func(a string) bool { return a == "--force-new-cluster" })
		survivor.restart()
	}
}

package e2e

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestLeaseAPI covers every Lease call through the official client, on
// one member.
func TestLeaseAPI(t *testing.T) {
	c := newCluster(t, 1)
	cli := c.members[0].client()
	ctx := ctxT(t)

	requested := time.Now()
	g, err := cli.Grant(ctx, 60)
	if err != nil || g.TTL != 60 || g.ID == 0 {
		t.Fatalf("grant: %+v %v", g, err)
	}
	// The minimum TTL: 1.5 election timeouts (500ms here), rounded up.
	short, err := cli.Grant(ctx, 0)
	if err != nil || short.TTL != 1 {
		t.Fatalf("grant below the minimum: %+v %v", short, err)
	}
	cli.Revoke(ctx, short.ID)
	if _, err := cli.Grant(ctx, 9_000_000_001); err != rpctypes.ErrLeaseTTLTooLarge {
		t.Fatalf("grant above the maximum: %v", err)
	}
	// An ID the client chooses, and taking it twice.
	lc := clientv3.NewLease(cli)
	raw := pb.NewLeaseClient(cli.ActiveConnection())
	if r, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x1234, TTL: 30}); err != nil || r.ID != 0x1234 {
		t.Fatalf("grant with a chosen ID: %+v %v", r, err)
	}
	if _, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x1234, TTL: 30}); rpctypes.Error(err) != rpctypes.ErrLeaseExist {
		t.Fatalf("grant of a taken ID: %v", err)
	}
	if _, err := cli.Put(ctx, "k1", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k2", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k3", "v", clientv3.WithLease(12345)); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("put with an unknown lease: %v", err)
	}
	ttl, err := lc.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 60 || len(ttl.Keys) != 2 || string(ttl.Keys[0]) != "k1" || string(ttl.Keys[1]) != "k2" {
		t.Fatalf("time to live: %+v %v", ttl, err)
	}
	checkRemaining(t, ttl.TTL, 60, time.Since(requested))
	if ka, err := lc.KeepAliveOnce(ctx, g.ID); err != nil || ka.TTL != 60 {
		t.Fatalf("keep-alive: %+v %v", ka, err)
	}
	leases, err := lc.Leases(ctx)
	if err != nil || len(leases.Leases) != 2 {
		t.Fatalf("leases: %+v %v", leases, err)
	}
	// Overwriting a key with no lease detaches it.
	if _, err := cli.Put(ctx, "k2", "v2"); err != nil {
		t.Fatal(err)
	}
	rev, err := lc.Revoke(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	get, _ := cli.Get(ctx, "k", clientv3.WithPrefix())
	if len(get.Kvs) != 1 || string(get.Kvs[0].Key) != "k2" {
		t.Fatalf("after revoke: %v", get.Kvs)
	}
	if rev.Header.Revision != get.Header.Revision {
		t.Fatalf("revoke at %d, store at %d", rev.Header.Revision, get.Header.Revision)
	}
	if ttl, err := lc.TimeToLive(ctx, g.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("time to live of a revoked lease: %+v %v", ttl, err)
	}
	if _, err := lc.Revoke(ctx, g.ID); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("revoke twice: %v", err)
	}
	if _, err := lc.KeepAliveOnce(ctx, g.ID); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("keep-alive of a revoked lease: %v", err)
	}
}

// TestLeaseSeeds runs the seeds' lease examples as a user types them: the
// etcdctl commands (with stock etcdctl, when ../shared/tools built it),
// the two-client leader-key preemption, and the Go examples.
func TestLeaseSeeds(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()

	if ref := os.Getenv("REFERENCE_ETCD_BINARY"); ref != "" {
		etcdctl := filepath.Join(filepath.Dir(ref), "etcdctl")
		run := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(etcdctl, append([]string{"--endpoints=" + m.clientURL}, args...)...)
			cmd.Env = ctlEnv()
			stdout, stderr, code := runChild(t, cmd, commandDeadline)
			if code != 0 {
				t.Fatalf("etcdctl %v: exit %d\n%s%s", args, code, stdout, stderr)
			}
			return strings.TrimSpace(stdout)
		}
		// ../shared/seeds/000, section 3.
		requested := time.Now()
		out := run("lease", "grant", "60")
		id := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(60s\)$`).FindStringSubmatch(out)
		if id == nil {
			t.Fatalf("lease grant printed %q", out)
		}
		if out := run("put", "--lease="+id[1], "key", "value"); out != "OK" {
			t.Fatalf("put --lease printed %q", out)
		}
		out = run("lease", "timetolive", id[1])
		requireRemaining(t, out, `^lease `+id[1]+` granted with TTL\(60s\), remaining\((\d+)s\)$`, 60, time.Since(requested))
		// keep-alive runs until interrupted: its first line, then stop it.
		ka := startBg(t, exec.Command(etcdctl, "--endpoints="+m.clientURL, "lease", "keep-alive", id[1]), "")
		ka.waitFor(t, "first line", func(out string) bool { return strings.Contains(out, "\n") })
		ka.stop(t)
		if first, _, _ := strings.Cut(ka.stdout.String(), "\n"); first != "lease "+id[1]+" keepalived with TTL(60)" {
			t.Fatalf("lease keep-alive printed %q", ka.stdout.String())
		}
		if out := run("lease", "revoke", id[1]); out != "lease "+id[1]+" revoked" {
			t.Fatalf("lease revoke printed %q", out)
		}
		if out := run("get", "key"); out != "" {
			t.Fatalf("the key outlived its lease: %q", out)
		}
	} else {
		t.Log("REFERENCE_ETCD_BINARY is not set: the etcdctl commands are skipped (the client calls below are not)")
	}

	// The leader key, two clients (seed 000, "Etcdctl模拟租约抢占"): B's put
	// takes the key over, with its own lease.
	ctx := ctxT(t)
	a, _ := cli.Grant(ctx, 120)
	if _, err := cli.Put(ctx, "/leader", "A", clientv3.WithLease(a.ID)); err != nil {
		t.Fatal(err)
	}
	if ka, err := cli.KeepAliveOnce(ctx, a.ID); err != nil || ka.TTL != 120 {
		t.Fatalf("keep-alive: %+v %v", ka, err)
	}
	b, _ := m.client().Grant(ctx, 120)
	if _, err := m.client().Put(ctx, "/leader", "B", clientv3.WithLease(b.ID)); err != nil {
		t.Fatal(err)
	}
	get, _ := cli.Get(ctx, "/leader")
	if string(get.Kvs[0].Value) != "B" || get.Kvs[0].Lease != int64(b.ID) {
		t.Fatalf("/leader: %v", get.Kvs[0])
	}
	cli.Revoke(ctx, a.ID) // A's lease no longer holds the key
	if get, _ := cli.Get(ctx, "/leader"); len(get.Kvs) != 1 {
		t.Fatal("revoking A's lease deleted B's key")
	}
	cli.Revoke(ctx, b.ID)
	if get, _ := cli.Get(ctx, "/leader"); len(get.Kvs) != 0 {
		t.Fatal("B's key outlived B's lease")
	}

	// seed 000's Go example: a 10-second lease, a key attached.
	client := cli
	resp, err := client.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	leaseID := resp.ID
	if _, err := client.Put(ctx, "key", "value", clientv3.WithLease(leaseID)); err != nil {
		t.Fatal(err)
	}

	// seed 001's optimistic lock: a lease kept alive, a txn that puts the
	// lock key only if it does not exist; a second contender fails and
	// reads the holder's value; revoking releases it.
	lock := func(lease clientv3.Lease, kv clientv3.KV, value string) (clientv3.LeaseID, bool, string) {
		leaseGrantResp, err := lease.Grant(context.TODO(), 10)
		if err != nil {
			t.Fatal(err)
		}
		kctx, kcancel := context.WithCancel(context.TODO())
		t.Cleanup(kcancel)
		leaseKeepAliveRespChan, err := lease.KeepAlive(kctx, leaseGrantResp.ID)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // ends when the keep-alive stops
			for range leaseKeepAliveRespChan {
			}
		}()
		txn := kv.Txn(context.TODO())
		txn.If(clientv3.Compare(clientv3.CreateRevision("/cron/lock/job9"), "=", 0)).
			Then(clientv3.OpPut("/cron/lock/job9", value, clientv3.WithLease(leaseGrantResp.ID))).
			Else(clientv3.OpGet("/cron/lock/job9"))
		txnResp, err := txn.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if !txnResp.Succeeded {
			return leaseGrantResp.ID, false, string(txnResp.Responses[0].GetResponseRange().Kvs[0].Value)
		}
		return leaseGrantResp.ID, true, ""
	}
	first, ok, _ := lock(clientv3.NewLease(client), clientv3.NewKV(client), "job9lock")
	if !ok {
		t.Fatal("the first contender did not get the lock")
	}
	second := m.client()
	if _, ok, holder := lock(clientv3.NewLease(second), clientv3.NewKV(second), "other"); ok || holder != "job9lock" {
		t.Fatalf("the second contender: got=%v holder=%q", ok, holder)
	}
	client.Revoke(context.TODO(), first)
	if _, ok, _ := lock(clientv3.NewLease(second), clientv3.NewKV(second), "other"); !ok {
		t.Fatal("the lock was not free after the holder's lease was revoked")
	}
}

// TestLeaseExpiry: an expired lease's keys are deleted in one revision,
// watchers see the deletes, and the expiry comes no earlier than the TTL
// (how much later is logged: on an idle machine, under a second).
func TestLeaseExpiry(t *testing.T) {
	c := newCluster(t, 1)
	cli := c.members[0].client()
	ctx := ctxT(t)
	wch := cli.Watch(ctx, "exp/", clientv3.WithPrefix(), clientv3.WithFilterPut())
	// From before the grant is sent: its answer may be slow to come.
	requested := time.Now()
	g, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"exp/a", "exp/b", "exp/c"} {
		if _, err := cli.Put(ctx, k, "v", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
	}
	r := nextResp(t, wch)
	took := time.Since(requested)
	if len(r.Events) != 3 {
		t.Fatalf("%d delete events in the first response, want the 3 keys in one revision", len(r.Events))
	}
	for _, ev := range r.Events {
		if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != r.Events[0].Kv.ModRevision {
			t.Fatalf("events: %s", eventsString(r.Events))
		}
	}
	t.Logf("a 2s lease expired %v after it was requested", took.Round(time.Millisecond))
	if took < 2*time.Second {
		t.Fatalf("a 2s lease expired after %v", took)
	}
	if ttl, _ := cli.TimeToLive(ctx, g.ID); ttl.TTL != -1 {
		t.Fatalf("the expired lease is still there: %+v", ttl)
	}
}

// TestLeaseDurable: leases, and the keys they hold, survive a restart.
func TestLeaseDurable(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	ctx := ctxT(t)
	g, _ := cli.Grant(ctx, 600)
	if _, err := cli.Put(ctx, "d/1", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	m.restart()
	c.waitLeader()
	ttl, err := cli.TimeToLive(ctxT(t), g.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 600 || len(ttl.Keys) != 1 {
		t.Fatalf("after a restart: %+v %v", ttl, err)
	}
	if _, err := cli.Revoke(ctxT(t), g.ID); err != nil {
		t.Fatal(err)
	}
	if get, _ := cli.Get(ctxT(t), "d/1"); len(get.Kvs) != 0 {
		t.Fatal("the key outlived its lease after a restart")
	}
}

// TestLeaseAcrossLeaderKill: on three members, a key kept alive through a
// follower survives a leader SIGKILL; keep-alives and time-to-live sent
// to a follower reach the leader; once keep-alives stop, the key goes
// (on an idle machine within its TTL plus an election timeout and a
// second: logged), and every member deletes it at the same revision.
func TestLeaseAcrossLeaderKill(t *testing.T) {
	c := newCluster(t, 3, "--lease-checkpoint-interval", "500ms")
	lead := c.waitLeader()
	follower := c.members[(lead+1)%3]
	cli := follower.client()
	ctx := ctxT(t)
	g, err := cli.Grant(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "ka", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(context.Background())
	defer kcancel()
	kach, err := cli.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	acks := make(chan struct{}, 100)
	go func() { // ends when the keep-alive stops
		for range kach {
			select {
			case acks <- struct{}{}:
			default:
			}
		}
	}()
	c.members[lead].kill()
	// Three TTLs after the kill, with keep-alives going on, the key is there.
	deadline := time.After(9 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-acks:
		case <-deadline:
			waiting = false
		}
	}
	if get, err := cli.Get(ctxT(t), "ka"); err != nil || len(get.Kvs) != 1 {
		t.Fatalf("the kept-alive key is gone after the leader was killed: %v %v", get, err)
	}
	ttl, err := cli.TimeToLive(ctxT(t), g.ID)
	if err != nil || ttl.TTL < 1 || ttl.TTL > 3 {
		t.Fatalf("time to live through a follower: %+v %v", ttl, err)
	}
	stopped := time.Now()
	kcancel()
	wch := cli.Watch(ctxT(t), "ka", clientv3.WithFilterPut(), clientv3.WithRev(ttl.ResponseHeader.Revision+1))
	r := nextResp(t, wch)
	took := time.Since(stopped)
	if len(r.Events) != 1 || r.Events[0].Type != mvccpb.DELETE {
		t.Fatalf("events: %s", eventsString(r.Events))
	}
	t.Logf("keep-alives stopped; the key went %v later", took.Round(time.Millisecond))
	for i, m := range c.members {
		if i == lead {
			continue
		}
		get, err := m.client().Get(ctxT(t), "ka", clientv3.WithRev(r.Events[0].Kv.ModRevision-1))
		if err != nil || len(get.Kvs) != 1 {
			t.Fatalf("member %d, before the delete: %v %v", i, get, err)
		}
		if get, _ := m.client().Get(ctxT(t), "ka", clientv3.WithSerializable()); len(get.Kvs) != 0 {
			t.Fatalf("member %d still has the key", i)
		}
	}
}

// A lease kept alive, or asked its TTL, right after its grant, through
// a follower, is found: the follower answers the grant once it applied
// it, and the leader, which the keep-alive goes to, may not have applied
// it yet (concurrency.NewSession grants and keeps alive at once). On a
// busy machine (two processes spin here, one a core) the leader used to
// answer "requested lease not found" to a few in a hundred.
func TestLeaseKeepAliveRightAfterGrant(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	cli := c.members[(lead+1)%3].client()
	for range 2 {
		spin := startChild(t, exec.Command("sh", "-c", "while :; do :; done"))
		defer spin.kill(t)
	}
	for i := range 150 {
		g, err := cli.Grant(ctxT(t), 30)
		if err != nil {
			t.Fatal(err)
		}
		if ka, err := cli.KeepAliveOnce(ctxT(t), g.ID); err != nil || ka.TTL != 30 {
			t.Fatalf("grant %d: a keep-alive right after: %v, %v", i, ka, err)
		}
		if ttl, err := cli.TimeToLive(ctxT(t), g.ID); err != nil || ttl.TTL < 25 {
			t.Fatalf("grant %d: its TTL right after: %v, %v", i, ttl, err)
		}
	}
}

// TestLeaseCheckpointAcrossLeaderChange: a lease not kept alive keeps
// counting down across a leader change (checkpoints), instead of starting
// over at its TTL.
func TestLeaseCheckpointAcrossLeaderChange(t *testing.T) {
	c := newCluster(t, 3, "--lease-checkpoint-interval", "300ms")
	lead := c.waitLeader()
	cli := c.members[(lead+1)%3].client()
	g, err := cli.Grant(ctxT(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	// Let about 4s pass, checkpointed, then kill the leader.
	ttl, _ := cli.TimeToLive(ctxT(t), g.ID)
	for ttl.TTL > 6 {
		time.Sleep(200 * time.Millisecond) // polling a real clock, not synchronizing
		ttl, _ = cli.TimeToLive(ctxT(t), g.ID)
	}
	time.Sleep(600 * time.Millisecond) // two checkpoint intervals
	killed := time.Since(granted)
	c.members[lead].kill()
	c.waitLeader()
	after, err := cli.TimeToLive(ctxT(t), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(granted)
	t.Logf("%v after the grant and a leader change (the leader killed at %v), the 10s lease has %ds left",
		elapsed.Round(time.Millisecond), killed.Round(time.Millisecond), after.TTL)
	// Without checkpoints the new leader would have restarted it at 10s
	// plus the election timeout. With them it has what was left at the
	// last checkpoint before the kill (rounded up), plus the election
	// timeout, counting down since it took over: allow 2.5s over what was
	// left at the kill. (Measured from the kill, not from now: how long
	// the election took on a busy machine is no part of it.)
	if limit := int64(10 - killed.Seconds() + 2.5); after.TTL > limit || after.TTL >= 10 {
		t.Fatalf("%ds left after %v (the leader killed at %v): the leader change renewed the lease", after.TTL, elapsed, killed)
	}
}

// TestLeaseConcurrency: the client's concurrency package (sessions, Mutex,
// Election) works against Cairn.
func TestLeaseConcurrency(t *testing.T) {
	c := newCluster(t, 1)
	cli1, cli2 := c.members[0].client(), c.members[0].client()
	s1, err := concurrency.NewSession(cli1, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := concurrency.NewSession(cli2, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	m1, m2 := concurrency.NewMutex(s1, "/lock"), concurrency.NewMutex(s2, "/lock")
	if err := m1.Lock(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := m2.TryLock(ctxT(t)); err != concurrency.ErrLocked {
		t.Fatalf("a second lock holder: %v", err)
	}
	locked := make(chan error, 1)
	go func() { locked <- m2.Lock(ctxT(t)) }()
	if err := m1.Unlock(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("the waiter did not get the lock: %v", err)
	}
	if err := m2.Unlock(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	e1, e2 := concurrency.NewElection(s1, "/election"), concurrency.NewElection(s2, "/election")
	if err := e1.Campaign(ctxT(t), "one"); err != nil {
		t.Fatal(err)
	}
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctxT(t), "two") }()
	if l, err := e1.Leader(ctxT(t)); err != nil || string(l.Kvs[0].Value) != "one" {
		t.Fatalf("leader: %v %v", l, err)
	}
	obs := e2.Observe(ctxT(t))
	if r := <-obs; string(r.Kvs[0].Value) != "one" {
		t.Fatalf("observed %s", r.Kvs[0].Value)
	}
	if err := e1.Resign(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatalf("the second candidate did not win: %v", err)
	}
	if r := <-obs; string(r.Kvs[0].Value) != "two" {
		t.Fatalf("observed %s", r.Kvs[0].Value)
	}
	// A session whose client dies: its lease expires and its lock goes.
	s3, err := concurrency.NewSession(c.members[0].client(), concurrency.WithTTL(1))
	if err != nil {
		t.Fatal(err)
	}
	m3 := concurrency.NewMutex(s3, "/lock2")
	if err := m3.Lock(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s3.Orphan() // stops keep-alives, as a crashed client would
	m4 := concurrency.NewMutex(s1, "/lock2")
	start := time.Now()
	if err := m4.Lock(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("an orphaned 1s session's lock was free %v later", time.Since(start).Round(time.Millisecond))
}

// TestLeaseRevokeManyKeys: revoking a lease that holds 100,000 keys
// deletes them in one revision, and writes made meanwhile go through.
//
// The revoke is one raft entry whose apply deletes 100,000 keys: about a
// second of CPU (0.8 s on an idle machine), during which the apply loop
// takes nothing else, so a put waits as long. On a machine whose cores
// other work keeps busy it takes several times that, past the server's
// request timeout (5 s and 2 election timeouts, 6 s here, as etcd), and
// the revoke, or a 10,000-put txn, is answered "request timed out" though
// it still commits: the test then waits until it has. How long it all
// took is logged.
func TestLeaseRevokeManyKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	c := newCluster(t, 1, "--max-txn-ops", "10000")
	cli := c.members[0].client()
	g, err := cli.Grant(ctxT(t), 600)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100000
	for b := 0; b < n; b += 10000 {
		var ops []clientv3.Op
		for i := b; i < b+10000; i++ {
			ops = append(ops, clientv3.OpPut("many/"+strconv.Itoa(i), "v", clientv3.WithLease(g.ID)))
		}
		_, err := cli.Txn(ctxT(t)).Then(ops...).Commit()
		waitApplied(t, err, "a txn of 10,000 puts", func() bool {
			// One txn: its last key there, all of it is.
			get, err := cli.Get(ctxT(t), "many/"+strconv.Itoa(b+9999), clientv3.WithCountOnly())
			return err == nil && get.Count == 1
		})
	}
	start, err := cli.Get(ctxT(t), "many/0")
	if err != nil {
		t.Fatal(err)
	}
	// The revoke's revision, should its answer time out: the delete of
	// one of its keys.
	wctx, wcancel := context.WithCancel(ctxT(t))
	defer wcancel()
	deletes := cli.Watch(wctx, "many/0", clientv3.WithFilterPut(), clientv3.WithRev(start.Header.Revision+1))

	// A writer puts while the revoke runs, and records its slowest put.
	stop := make(chan struct{})
	type writes struct {
		slowest  time.Duration
		timeouts int
	}
	done := make(chan writes, 1)
	go func() {
		var w writes
		defer func() { done <- w }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), commandDeadline)
			begin := time.Now()
			_, err := cli.Put(ctx, "other", strconv.Itoa(i))
			cancel()
			w.slowest = max(w.slowest, time.Since(begin))
			if errors.Is(err, rpctypes.ErrTimeout) {
				w.timeouts++ // waited past the request timeout behind the revoke
			} else if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	begin := time.Now()
	_, err = cli.Revoke(ctxT(t), g.ID)
	waitApplied(t, err, "the revoke", func() bool {
		ttl, err := cli.TimeToLive(ctxT(t), g.ID)
		return err == nil && ttl.TTL == -1
	})
	took := time.Since(begin)
	close(stop)
	w := <-done
	if _, err := cli.Put(ctxT(t), "other", "after"); err != nil {
		t.Fatalf("a put after the revoke: %v", err)
	}
	r := nextResp(t, deletes)
	if len(r.Events) != 1 || r.Events[0].Type != mvccpb.DELETE {
		t.Fatalf("many/0's events after the revoke: %s", eventsString(r.Events))
	}
	rev := r.Events[0].Kv.ModRevision
	get, err := cli.Get(ctxT(t), "many/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatal(err)
	}
	before, err := cli.Get(ctxT(t), "many/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("revoking a lease with %d keys took %v; the slowest put meanwhile took %v (%d timed out)",
		n, took.Round(time.Millisecond), w.slowest.Round(time.Millisecond), w.timeouts)
	if get.Count != 0 || before.Count != n {
		t.Fatalf("%d keys left at the revoke's revision, %d just before; want 0 and %d", get.Count, before.Count, n)
	}
}

// waitApplied handles the answer (err) to a write the server may take
// longer to apply than its request timeout: one answered "request timed
// out" may still commit, so it polls until applied reports it has, for at
// most waitDeadline. Any other error fails the test.
func waitApplied(t *testing.T, err error, what string, applied func() bool) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, rpctypes.ErrTimeout) {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %v; waiting until it is applied", what, err)
	for deadline := time.Now().Add(waitDeadline); !applied(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s not applied within %v of timing out", what, waitDeadline)
		}
		time.Sleep(100 * time.Millisecond) // polling a real server
	}
}

// requireRemaining requires out to match re, whose first group is a
// remaining TTL in seconds, of a lease granted with ttl at most elapsed
// ago: no more than ttl, and no less than what elapsed leaves (a second
// more for rounding). How long the commands took on a busy machine is no
// part of it.
func requireRemaining(t *testing.T, out, re string, ttl int64, elapsed time.Duration) {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("printed %q, want %s", out, re)
	}
	remaining, _ := strconv.ParseInt(m[1], 10, 64)
	checkRemaining(t, remaining, ttl, elapsed)
}

// checkRemaining requires a remaining TTL of a lease granted with ttl at
// most elapsed ago to be no more than ttl, and no less than what elapsed
// leaves (a second more for rounding).
func checkRemaining(t *testing.T, remaining, ttl int64, elapsed time.Duration) {
	t.Helper()
	if least := ttl - int64(math.Ceil(elapsed.Seconds())) - 1; remaining > ttl || remaining < least {
		t.Fatalf("%ds remaining of a %ds lease granted at most %v ago; want %d to %d", remaining, ttl,
			elapsed.Round(time.Millisecond), least, ttl)
	}
}

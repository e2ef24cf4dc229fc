package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/porttest"
)

// Runtime reconfiguration, as an operator does it with etcd: `member add`
// and then start the new member with --initial-cluster-state=existing and
// the --initial-cluster that `member add` printed; `member remove`, after
// which the removed member stops by itself (exit 0); learners; moving
// leadership. The cluster keeps serving throughout, and loses nothing.
//
// --strict-reconfig-check is on (etcd's default): adding a voter needs the
// leader to have been connected to a quorum of voters for 5 s, so the tests
// retry a change refused with "etcdserver: unhealthy cluster" until then.

// memberID is m's member ID, from its Status.
func memberID(t *testing.T, m *member) uint64 {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		st, err := memberStatus(m)
		if err == nil {
			return st.Header.MemberId
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no Status within %v: %v", m.name, waitDeadline, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process
	}
}

// setFlag sets flag's value in args, appending the flag if args lack it.
func setFlag(args []string, flag, value string) []string {
	args = slices.Clone(args)
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		args[i+1] = value
		return args
	}
	return append(args, flag, value)
}

// retryChange calls change until it is not refused as "etcdserver:
// unhealthy cluster" (--strict-reconfig-check: the leader has not yet
// been connected to a quorum for 5 s) nor for want of a leader (a leader
// that removed itself has just stopped), for at most waitDeadline, and
// returns its last error.
func retryChange(t *testing.T, what string, change func(ctx context.Context) error) error {
	t.Helper()
	start := time.Now()
	deadline := start.Add(waitDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := change(ctx)
		cancel()
		transient := err != nil && (strings.Contains(err.Error(), "etcdserver: unhealthy cluster") ||
			strings.Contains(err.Error(), "etcdserver: no leader") || strings.Contains(err.Error(), "etcdserver: leader changed"))
		if !transient {
			if time.Since(start) > time.Second {
				t.Logf("%s: took %v (retried while the cluster was not ready)", what, time.Since(start).Round(time.Millisecond))
			}
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still refused after %v: %v", what, waitDeadline, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a real cluster's readiness
	}
}

// addMember adds a member named name to c through cli (`member add`, a
// learner if learner) and returns it, not started, configured as `member
// add` tells an operator: --initial-cluster-state=existing and an
// --initial-cluster of the cluster's members with it. It is one of
// c.members from then on; the second result is its member ID.
func (c *cluster) addMember(cli *clientv3.Client, name string, learner bool) (*member, uint64) {
	t := c.t
	t.Helper()
	ports := porttest.Free(t, 2)
	m := &member{
		t:         t,
		name:      name,
		clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		dataDir:   filepath.Join(t.TempDir(), name),
		logPath:   filepath.Join(t.TempDir(), name+".log"),
	}
	var resp *clientv3.MemberAddResponse
	err := retryChange(t, "member add "+name, func(ctx context.Context) error {
		var err error
		if learner {
			resp, err = cli.MemberAddAsLearner(ctx, []string{m.peerURL})
		} else {
			resp, err = cli.MemberAdd(ctx, []string{m.peerURL})
		}
		return err
	})
	if err != nil {
		t.Fatalf("member add %s (learner %v): %v", name, learner, err)
	}
	if resp.Member.IsLearner != learner || !slices.Equal(resp.Member.PeerURLs, []string{m.peerURL}) ||
		!slices.ContainsFunc(resp.Members, func(pm *pb.Member) bool { return pm.ID == resp.Member.ID }) {
		t.Fatalf("member add %s (learner %v): %+v", name, learner, resp)
	}
	// --initial-cluster as `member add` prints it: the members' names
	// (the test knows them) and peer URLs.
	names := map[string]string{m.peerURL: name}
	for _, o := range c.members {
		names[o.peerURL] = o.name
	}
	var initial []string
	for _, pm := range resp.Members {
		for _, u := range pm.PeerURLs {
			n, ok := names[u]
			if !ok {
				t.Fatalf("member add %s: the cluster lists a member the test does not know: %+v", name, pm)
			}
			initial = append(initial, n+"="+u)
		}
	}
	m.args = slices.Clone(c.members[0].args)
	for _, f := range [][2]string{
		{"--name", name}, {"--data-dir", m.dataDir},
		{"--listen-client-urls", m.clientURL}, {"--advertise-client-urls", m.clientURL},
		{"--listen-peer-urls", m.peerURL}, {"--initial-advertise-peer-urls", m.peerURL},
		{"--initial-cluster", strings.Join(initial, ",")}, {"--initial-cluster-state", "existing"},
	} {
		m.args = setFlag(m.args, f[0], f[1])
	}
	c.members = append(c.members, m)
	return m, resp.Member.ID
}

// drop takes m out of c.members (it was removed from the cluster, or is
// gone for good); if the test fails, its last log lines are shown still.
func (c *cluster) drop(m *member) {
	c.members = slices.DeleteFunc(c.members, func(o *member) bool { return o == m })
	c.t.Cleanup(func() {
		m.kill()
		if c.t.Failed() {
			lines := strings.Split(logText(c.t, m), "\n")
			c.t.Logf("last log lines of %s (no longer a member):\n%s", m.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
}

// removeMember removes member id (`member remove`), asking the members
// that stay; m, if not nil, is that member, dropped from c. (A member
// asked to remove itself: TestRemoveSelfThroughFollower.)
func (c *cluster) removeMember(m *member, id uint64) {
	c.t.Helper()
	if m != nil {
		c.drop(m)
	}
	cli := c.client()
	err := retryChange(c.t, fmt.Sprintf("member remove %x", id), func(ctx context.Context) error {
		resp, err := cli.MemberRemove(ctx, id)
		if err == nil && slices.ContainsFunc(resp.Members, func(pm *pb.Member) bool { return pm.ID == id }) {
			c.t.Fatalf("member remove %x: it is still listed: %+v", id, resp.Members)
		}
		return err
	})
	if err != nil {
		c.t.Fatalf("member remove %x: %v", id, err)
	}
}

// waitRemovedExit waits for the removed member m to stop by itself, and
// checks that it exited 0 after saying why, in etcd's words.
func waitRemovedExit(t *testing.T, m *member) {
	t.Helper()
	waitExit(t, m, waitDeadline, "its removal from the cluster")
	log := logText(t, m)
	for _, want := range []string{"the member has been permanently removed from the cluster", "data-dir used by this member must be removed"} {
		if !strings.Contains(log, want) {
			t.Errorf("%s stopped, removed, without logging %q", m.name, want)
		}
	}
}

// restartRemoved starts the removed member m again on its data directory:
// it must not rejoin, but stop by itself saying it was removed. Refused at
// start (exit 1) if it had applied its own removal, or, as etcd's, stopped
// (exit 0) when the peers refuse it as removed: a removed follower often
// never applies its removal, since the leader stops sending to it once it
// has.
func restartRemoved(t *testing.T, m *member) {
	t.Helper()
	before := len(logText(t, m))
	m.start()
	select {
	case <-m.proc.exited:
	case <-time.After(waitDeadline):
		t.Fatalf("%s, removed, restarted and still runs %v later", m.name, waitDeadline)
	}
	code := m.proc.exitCode(t)
	out := logText(t, m)[before:]
	if (code != 0 && code != 1) || !strings.Contains(out, "the member has been permanently removed from the cluster") ||
		strings.Contains(out, "ready to serve client requests") {
		t.Fatalf("%s, removed, restarted: exit %d, log:\n%s", m.name, code, out)
	}
	t.Logf("%s, removed, restarted and stopped with exit status %d", m.name, code)
}

// haltOnFailure halts g when the test ends, if it has not been already:
// a test that fails midway leaves no writers behind.
func haltOnFailure(t *testing.T, g *loadGen) func() {
	halt := sync.OnceFunc(g.halt)
	t.Cleanup(halt)
	return halt
}

// ackedCount is how many writes g has had acknowledged.
func (g *loadGen) ackedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.acked)
}

// A member lost for good (SIGKILL, data gone) is replaced under write
// load: `member remove` it, `member add` a new one on another port, start
// that one joining the existing cluster. Every acknowledged write is then
// on each of the three members, in each one's own copy, and their HashKV
// agree at one revision.
func TestReplaceDeadMember(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	cli := c.client()
	g := startLoad(cli, 4)
	halt := haltOnFailure(t, g)
	if n := g.waitAcked(100, waitDeadline); n < 100 {
		t.Fatalf("only %d writes acknowledged before the loss", n)
	}
	// The leader, so the cluster must also elect another.
	dead := c.members[lead]
	deadID := memberID(t, dead)
	dead.kill()
	if err := os.RemoveAll(dead.dataDir); err != nil {
		t.Fatal(err)
	}
	c.drop(dead)
	cli.SetEndpoints(c.endpoints()...)
	c.removeMember(nil, deadID)
	if more := g.ackedCount() + 100; g.waitAcked(more, waitDeadline) < more {
		t.Fatalf("writes did not resume with two members: %d acknowledged", g.ackedCount())
	}

	fresh, freshID := c.addMember(cli, "m3", false)
	if freshID == deadID {
		t.Fatalf("the new member got the removed member's ID %x", deadID)
	}
	fresh.start()
	cli.SetEndpoints(c.endpoints()...)
	ml := waitMembersPublished(t, cli, 3)
	for _, pm := range ml.Members {
		if pm.ID == deadID || pm.IsLearner {
			t.Fatalf("members %+v", ml.Members)
		}
	}
	// The load runs on across the join.
	if more := g.ackedCount() + 200; g.waitAcked(more, waitDeadline) < more {
		t.Fatalf("writes stalled after the new member joined: %d acknowledged", g.ackedCount())
	}
	halt()
	for _, m := range c.members {
		mcli := m.client()
		checkAcked(t, mcli, g.acked, false) // waits for m to have caught up
		checkAcked(t, mcli, g.acked, true)  // then its own copy
	}
	get, err := cli.Get(ctxT(t), "load/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	rev := get.Header.Revision
	var hashes []string
	for _, m := range c.members {
		// Linearizable: m has applied rev before it is asked to hash it.
		if _, err := m.client().Get(ctxT(t), "x"); err != nil {
			t.Fatal(err)
		}
		h, err := cli.HashKV(ctxT(t), m.clientURL, rev)
		if err != nil {
			t.Fatalf("%s: HashKV at %d: %v", m.name, rev, err)
		}
		hashes = append(hashes, fmt.Sprintf("%s: hash %d compact %d hashRevision %d", m.name, h.Hash, h.CompactRevision, h.HashRevision))
		if h.Hash == 0 || h.HashRevision != rev {
			t.Errorf("%s: HashKV at %d: %+v", m.name, rev, h)
		}
	}
	for _, h := range hashes[1:] {
		if strings.SplitN(h, ": ", 2)[1] != strings.SplitN(hashes[0], ": ", 2)[1] {
			t.Fatalf("members disagree at revision %d:\n%s", rev, strings.Join(hashes, "\n"))
		}
	}
	t.Logf("%d acknowledged writes on all three members; %s", len(g.acked), hashes[0])

	// The new member votes (the leader promoted it once it caught up):
	// with a survivor of the original three down, writes still commit.
	lead = c.waitLeader()
	down := c.members[(lead+1)%3]
	if down == fresh {
		down = c.members[(lead+2)%3]
	}
	down.kill()
	fcli := fresh.client()
	deadline := time.Now().Add(waitDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := fcli.Put(ctx, "with-the-new-member", "v")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with %s down, a write through the new member did not commit within %v: %v", down.name, waitDeadline, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a real cluster
	}
}

// regInput and regOutput are an operation on one register (a key) of the
// KV store, as porcupine sees it: a put of a value unique to it, or a
// linearizable get.
type regInput struct {
	key   string
	put   bool
	value string
}

type regOutput struct {
	value string
	// unknown: a put whose client heard no answer; it may or may not
	// have taken effect.
	unknown bool
}

// registerModel is one register per key: a get returns the last value
// put ("" before any).
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var parts [][]porcupine.Operation
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(regInput), output.(regOutput)
		if in.put {
			return true, in.value
		}
		return out.value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if in.put {
			return fmt.Sprintf("put(%s, %s) unknown=%v", in.key, in.value, out.unknown)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
	},
}

// historyGen puts and gets a few keys from several clients until stopped,
// and records the history for porcupine.
type historyGen struct {
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	seq   atomic.Int64
	mu    sync.Mutex
	ops   []porcupine.Operation
	done  int // operations that returned an answer
}

func startHistory(cli *clientv3.Client, workers, keys int) *historyGen {
	h := &historyGen{start: time.Now(), stop: make(chan struct{})}
	for w := range workers {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-h.stop:
					return
				default:
				}
				in := regInput{key: fmt.Sprintf("reg/%d", rnd.IntN(keys)), put: rnd.IntN(2) == 0}
				if in.put {
					in.value = fmt.Sprintf("w%d-%d", w, h.seq.Add(1))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				call := time.Since(h.start).Nanoseconds()
				var out regOutput
				var err error
				if in.put {
					_, err = cli.Put(ctx, in.key, in.value)
				} else {
					var get *clientv3.GetResponse
					get, err = cli.Get(ctx, in.key)
					if err == nil && len(get.Kvs) == 1 {
						out.value = string(get.Kvs[0].Value)
					}
				}
				ret := time.Since(h.start).Nanoseconds()
				cancel()
				if err != nil {
					if !in.put {
						continue // a failed read changed nothing
					}
					// It may take effect at any time from now on.
					out.unknown, ret = true, math.MaxInt64
				}
				h.mu.Lock()
				h.ops = append(h.ops, porcupine.Operation{ClientId: w, Input: in, Call: call, Output: out, Return: ret})
				if err == nil {
					h.done++
				}
				h.mu.Unlock()
			}
		}()
	}
	return h
}

// answered is how many operations have had an answer.
func (h *historyGen) answered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.done
}

// waitMore waits until n more operations have had an answer.
func (h *historyGen) waitMore(t *testing.T, n int, what string) {
	t.Helper()
	want := h.answered() + n
	deadline := time.Now().Add(waitDeadline)
	for h.answered() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: only %d of %d client operations answered within %v", what, h.answered(), want, waitDeadline)
		}
		time.Sleep(10 * time.Millisecond) // polling progress of real processes
	}
}

// A cluster grows from one member to three and to five while clients put
// and get, then shrinks to three, the leader removed once: each removed
// member stops by itself with exit status 0, and what the clients saw is
// linearizable.
func TestGrowShrinkUnderLoad(t *testing.T) {
	c := newCluster(t, 1)
	cli := c.client()
	h := startHistory(cli, 4, 8)
	stop := sync.OnceFunc(func() { close(h.stop); h.wg.Wait() })
	t.Cleanup(stop)
	h.waitMore(t, 50, "one member")
	for i := 1; i < 5; i++ {
		m, _ := c.addMember(cli, fmt.Sprintf("m%d", i), false)
		m.start()
		cli.SetEndpoints(c.endpoints()...)
		waitMembersPublished(t, cli, i+1)
		h.waitMore(t, 50, fmt.Sprintf("%d members", i+1))
	}
	for _, removeLeader := range []bool{true, false} {
		lead := c.waitLeader()
		victim := c.members[(lead+1)%len(c.members)]
		if removeLeader {
			victim = c.members[lead]
		}
		c.removeMember(victim, memberID(t, victim))
		cli.SetEndpoints(c.endpoints()...)
		waitRemovedExit(t, victim)
		h.waitMore(t, 50, fmt.Sprintf("%s removed", victim.name))
		if !removeLeader {
			restartRemoved(t, victim)
		}
	}
	if ml := waitMembersPublished(t, cli, 3); len(ml.Members) != 3 {
		t.Fatalf("members %+v", ml.Members)
	}
	stop()
	unknown := 0
	for _, op := range h.ops {
		if op.Output.(regOutput).unknown {
			unknown++
		}
	}
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(registerModel, h.ops, 2*time.Minute)
	t.Logf("%d client operations (%d puts unanswered), checked in %v: %v", len(h.ops), unknown, time.Since(start).Round(time.Millisecond), res)
	if res != porcupine.Ok {
		t.Fatalf("the client history is not linearizable (%v)", res)
	}
}

// A learner serves serializable reads and Status and refuses writes and
// linearizable reads, as etcd's; it cannot be promoted before it has
// caught up (here: before it runs), then can; --max-learners bounds how
// many there are.
func TestLearner(t *testing.T) {
	c := newCluster(t, 1, "--max-learners", "1")
	cli := c.client()
	put, err := cli.Put(ctxT(t), "before-learner", "v")
	if err != nil {
		t.Fatal(err)
	}
	l, lid := c.addMember(cli, "learner", true)
	if _, err := cli.MemberPromote(ctxT(t), lid); err == nil || err.Error() != "etcdserver: can only promote a learner member which is in sync with leader" {
		t.Fatalf("promoting a learner that has not started: %v", err)
	}
	port := porttest.Free(t, 1)[0]
	if _, err := cli.MemberAddAsLearner(ctxT(t), []string{fmt.Sprintf("http://127.0.0.1:%d", port)}); err == nil ||
		err.Error() != "etcdserver: too many learner members in cluster" {
		t.Fatalf("a second learner over --max-learners=1: %v", err)
	}
	l.start()
	lcli := l.client()
	// Its own copy catches up.
	deadline := time.Now().Add(waitDeadline)
	for {
		get, err := lcli.Get(ctxT(t), "before-learner", clientv3.WithSerializable())
		if err == nil && len(get.Kvs) == 1 && get.Kvs[0].ModRevision == put.Header.Revision {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the learner's serializable read: %+v, %v", get, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process
	}
	const notForLearner = "etcdserver: rpc not supported for learner"
	if _, err := lcli.Put(ctxT(t), "via-learner", "v"); err == nil || err.Error() != notForLearner {
		t.Fatalf("a put through the learner: %v, want %q", err, notForLearner)
	}
	if _, err := lcli.Get(ctxT(t), "before-learner"); err == nil || err.Error() != notForLearner {
		t.Fatalf("a linearizable read on the learner: %v, want %q", err, notForLearner)
	}
	st, err := lcli.Status(ctxT(t), l.clientURL)
	if err != nil || !st.IsLearner || st.Header.MemberId != lid {
		t.Fatalf("the learner's Status: %+v, %v", st, err)
	}
	if err := retryPromote(t, cli, lid); err != nil {
		t.Fatal(err)
	}
	ml, err := cli.MemberList(ctxT(t))
	if err != nil || len(ml.Members) != 2 || slices.ContainsFunc(ml.Members, func(m *pb.Member) bool { return m.IsLearner }) {
		t.Fatalf("members after the promotion: %+v, %v", ml, err)
	}
	// A voter now: it takes writes and linearizable reads.
	deadline = time.Now().Add(waitDeadline)
	for {
		_, err := lcli.Put(ctxT(t), "via-promoted", "v")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a put through the promoted member: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // it learns of its promotion when it applies it
	}
	if get, err := lcli.Get(ctxT(t), "before-learner"); err != nil || len(get.Kvs) != 1 {
		t.Fatalf("a linearizable read on the promoted member: %+v, %v", get, err)
	}
}

// retryPromote promotes learner id once it has caught up: until then the
// leader refuses, as etcd's.
func retryPromote(t *testing.T, cli *clientv3.Client, id uint64) error {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		_, err := cli.MemberPromote(ctxT(t), id)
		if err == nil || err.Error() != "etcdserver: can only promote a learner member which is in sync with leader" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promoting %x: still refused after %v: %w", id, waitDeadline, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a real cluster
	}
}

// MoveLeader hands leadership to a voter; it refuses a learner or an
// unknown ID as the transferee ("bad leader transferee") and a request
// made to a follower ("not leader"). Stock etcdctl's move-leader drives
// it, when ../shared/tools built it (REFERENCE_ETCD_BINARY).
func TestMoveLeader(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	ids := make([]uint64, len(c.members))
	for i, m := range c.members {
		ids[i] = memberID(t, m)
	}
	leader := c.members[lead]
	lcli := leader.client()
	_, learnerID := c.addMember(lcli, "learner", true) // not started: a member, not a voter
	follower := (lead + 1) % 3
	fcli := c.members[follower].client()
	for _, tc := range []struct {
		what   string
		cli    *clientv3.Client
		target uint64
		want   string
	}{
		{"to a learner", lcli, learnerID, "etcdserver: bad leader transferee"},
		{"to an unknown ID", lcli, 0xdeadbeef, "etcdserver: bad leader transferee"},
		{"asked of a follower", fcli, ids[(lead+2)%3], "etcdserver: not leader"},
	} {
		if _, err := tc.cli.MoveLeader(ctxT(t), tc.target); err == nil || err.Error() != tc.want {
			t.Fatalf("move-leader %s: %v, want %q", tc.what, err, tc.want)
		}
	}
	if now := c.waitLeader(); now != lead {
		t.Fatalf("refused moves changed the leader from %s to %s", leader.name, c.members[now].name)
	}
	target := ids[follower]
	if ref := os.Getenv("REFERENCE_ETCD_BINARY"); ref != "" {
		etcdctl := filepath.Join(filepath.Dir(ref), "etcdctl")
		cmd := exec.Command(etcdctl, "--endpoints="+strings.Join(c.endpoints()[:3], ","), "move-leader", fmt.Sprintf("%x", target))
		cmd.Env = ctlEnv()
		stdout, stderr, code := runChild(t, cmd, commandDeadline)
		want := fmt.Sprintf("Leadership transferred from %x to %x\n", ids[lead], target)
		if code != 0 || stdout != want {
			t.Fatalf("etcdctl move-leader: exit %d, printed %q (stderr %q), want %q", code, stdout, stderr, want)
		}
	} else {
		t.Log("REFERENCE_ETCD_BINARY is not set: the move is asked with the client, not stock etcdctl")
		if _, err := lcli.MoveLeader(ctxT(t), target); err != nil {
			t.Fatalf("move-leader to a follower: %v", err)
		}
	}
	// MoveLeader answers once the transferee leads.
	st, err := memberStatus(c.members[follower])
	if err != nil || st.Leader != target {
		t.Fatalf("after move-leader to %x: %+v, %v", target, st, err)
	}
	if now := c.waitLeader(); now != follower {
		t.Fatalf("after move-leader to %s, %s leads", c.members[follower].name, c.members[now].name)
	}
	waitLog(t, leader, "leadership transfer finished", 1)
}

// terminate sends m SIGTERM and waits for it to exit, and returns its exit
// code.
func terminate(t *testing.T, m *member) int {
	t.Helper()
	m.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.proc.exited:
	case <-time.After(exitDeadline):
		t.Fatalf("%s did not exit within %v of SIGTERM", m.name, exitDeadline)
	}
	return m.proc.exitCode(t)
}

// A leader stopped with SIGTERM hands leadership to another member first,
// as etcd's does: the others do not wait out an election timeout.
func TestGracefulStopTransfersLeadership(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	old := c.members[lead]
	oldID := memberID(t, old)
	if code := terminate(t, old); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM", old.name, code)
	}
	log := logText(t, old)
	for _, want := range []string{"leadership transfer starting", "leadership transfer finished"} {
		if !strings.Contains(log, want) {
			t.Fatalf("%s, the leader, stopped without logging %q", old.name, want)
		}
	}
	old.proc = nil
	now := c.waitLeader()
	if now == lead || memberID(t, c.members[now]) == oldID {
		t.Fatalf("the stopped member still leads")
	}
	if _, err := c.members[now].client().Put(ctxT(t), "after-stop", "v"); err != nil {
		t.Fatal(err)
	}
}

// `member update` moves a member to a new peer URL; the member restarted
// there is reached by the others without restarting them.
func TestMemberUpdatePeerURL(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	leader, moved := c.members[lead], c.members[(lead+1)%3]
	id := memberID(t, moved)
	newPeerURL := fmt.Sprintf("http://127.0.0.1:%d", porttest.Free(t, 1)[0])
	resp, err := leader.client().MemberUpdate(ctxT(t), id, []string{newPeerURL})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(resp.Members, func(m *pb.Member) bool { return m.ID == id }); i < 0 ||
		!slices.Equal(resp.Members[i].PeerURLs, []string{newPeerURL}) {
		t.Fatalf("member update: %+v", resp.Members)
	}
	moved.kill()
	moved.peerURL = newPeerURL
	moved.args = setFlag(moved.args, "--listen-peer-urls", newPeerURL)
	moved.args = setFlag(moved.args, "--initial-advertise-peer-urls", newPeerURL)
	moved.start()
	mcli := moved.client()
	// Through the moved member: it reaches the leader, and the leader
	// it (the answer needs the entry applied there).
	viaMoved, err := mcli.Put(ctxT(t), "via-moved", "v")
	if err != nil {
		t.Fatalf("a put through the moved member: %v", err)
	}
	viaLeader, err := leader.client().Put(ctxT(t), "via-leader", "v")
	if err != nil {
		t.Fatalf("a put through the leader: %v", err)
	}
	// The leader's entries reach the moved member, which only the new
	// URL can carry (the sender dials).
	deadline := time.Now().Add(waitDeadline)
	for {
		get, err := mcli.Get(ctxT(t), "via-", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err == nil && len(get.Kvs) == 2 && get.Kvs[0].ModRevision == viaLeader.Header.Revision &&
			get.Kvs[1].ModRevision == viaMoved.Header.Revision {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the moved member's own copy: %+v, %v", get, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process
	}
	lst, err := memberStatus(leader)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(waitDeadline)
	for {
		st, err := memberStatus(moved)
		if err == nil && st.RaftAppliedIndex >= lst.RaftIndex && st.Leader == lst.Header.MemberId {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the moved member's Status %+v (%v) has not caught up with the leader's %+v", st, err, lst)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process
	}
	ml, err := leader.client().MemberList(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, pm := range ml.Members {
		if pm.ID == id && !slices.Equal(pm.PeerURLs, []string{newPeerURL}) {
			t.Fatalf("member list after the update: %+v", pm)
		}
	}
}

// What a member cannot do: join with an --initial-cluster that is not the
// cluster's membership, restart on the data directory of a member removed
// from the cluster, or join again under the ID of a member that had
// started and lost its data (it may have voted and acknowledged entries
// it no longer has). Each start fails with one clear error.
func TestMembershipRefusals(t *testing.T) {
	c := newCluster(t, 3)
	cli := c.client()
	lead := c.waitLeader()
	// A removed member on its old data directory. The leader: it
	// certainly applies its own removal (it commits it), which is what
	// marks the data directory as removed; a removed follower may learn
	// of its removal only from a peer's refusal, and then, as in etcd,
	// its restart is refused by the peers (it stops again, exit 0).
	removed := c.members[lead]
	c.removeMember(removed, memberID(t, removed))
	cli.SetEndpoints(c.endpoints()...)
	waitRemovedExit(t, removed)
	startExpectingFailure(t, removed, "the member has been permanently removed from the cluster", "must be removed")

	// An --initial-cluster that leaves out a member.
	joining, joiningID := c.addMember(cli, "joining", true)
	var partial []string
	for _, m := range c.members[1:] {
		partial = append(partial, m.name+"="+m.peerURL)
	}
	joining.args = setFlag(joining.args, "--initial-cluster", strings.Join(partial, ","))
	startExpectingFailure(t, joining, "member count is unequal")
	// Gone again: a member that never answers would have the next start
	// ask the others again until it gives up (30 s), its verdict not final.
	c.removeMember(joining, joiningID)

	// A started member whose data is gone, joining under its old ID.
	wiped := c.members[0]
	var initial []string
	for _, m := range c.members {
		initial = append(initial, m.name+"="+m.peerURL)
	}
	wiped.kill()
	if err := os.RemoveAll(wiped.dataDir); err != nil {
		t.Fatal(err)
	}
	wiped.args = setFlag(wiped.args, "--initial-cluster-state", "existing")
	wiped.args = setFlag(wiped.args, "--initial-cluster", strings.Join(initial, ","))
	startExpectingFailure(t, wiped, "has already started")
	if _, err := os.Stat(filepath.Join(wiped.dataDir, "member", "wal")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused start left a WAL behind (%v): the next start would not be refused", err)
	}
}

// A follower asked to remove itself (etcdctl with every member in
// --endpoints may send it there) answers with the members after the
// removal, as the leader has them, although it never applies the removal
// itself (the leader stops replicating to it when it appends it); then it
// stops, refused by its peers.
func TestRemoveSelfThroughFollower(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	f := c.members[(lead+1)%3]
	id := memberID(t, f)
	own := f.client()
	c.drop(f)
	err := retryChange(t, fmt.Sprintf("member remove %x through itself", id), func(ctx context.Context) error {
		resp, err := own.MemberRemove(ctx, id)
		if err == nil && (len(resp.Members) != 2 || slices.ContainsFunc(resp.Members, func(pm *pb.Member) bool { return pm.ID == id })) {
			t.Fatalf("member remove %x through itself answered members %+v", id, resp.Members)
		}
		return err
	})
	if err != nil {
		t.Fatalf("member remove %x through itself: %v", id, err)
	}
	waitRemovedExit(t, f)
	resp, err := c.client().MemberList(ctxT(t))
	if err != nil || len(resp.Members) != 2 {
		t.Fatalf("member list after the removal: %v, %+v", err, resp)
	}
}

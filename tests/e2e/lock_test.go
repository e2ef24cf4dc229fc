package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/v3electionpb"
	"github.com/cairn-db/cairn/api/v3lockpb"
	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

// grant grants a lease of ttl seconds through cli.
func grant(t *testing.T, cli *clientv3.Client, ttl int64) int64 {
	t.Helper()
	resp, err := cli.Grant(ctxT(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return int64(resp.ID)
}

// waitKey waits until key exists: a waiter's key shows it has queued.
func waitKey(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		resp, err := cli.Get(ctxT(t), key)
		if err == nil && len(resp.Kvs) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no key %q within %v (last error %v)", key, waitDeadline, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a real server
	}
}

type lockResult struct {
	resp *v3lockpb.LockResponse
	err  error
}

// lockAsync starts a Lock and returns where its answer will come.
func lockAsync(t *testing.T, lc v3lockpb.LockClient, name string, lease int64) <-chan lockResult {
	ch := make(chan lockResult, 1)
	ctx := ctxT(t)
	go func() {
		resp, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name), Lease: lease})
		ch <- lockResult{resp, err}
	}()
	return ch
}

// await waits for a pending Lock's answer.
func await(t *testing.T, ch <-chan lockResult, what string) *v3lockpb.LockResponse {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.resp
	case <-time.After(waitDeadline):
		t.Fatalf("%s: no answer within %v", what, waitDeadline)
		return nil
	}
}

// requirePending requires that ch has no answer yet.
func requirePending(t *testing.T, ch <-chan lockResult, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned while the lock was held: %v, %v", what, r.resp, r.err)
	default:
	}
}

func requireDesc(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || status.Convert(err).Message() != want {
		t.Fatalf("%s: got error %v, want %q", what, err, want)
	}
}

// TestLockElection runs etcd's Lock and Election gRPC services on a
// member, through their generated clients: a second locker waits for the
// first to unlock; a waiter gets a lock whose holder (cairnctl lock, a
// client-side mutex on the same keys) was SIGKILLed once the holder's
// lease expires; an election's campaign, proclaim, leader, observe and
// resign, and their errors; then, with auth on, a user may lock only
// where it may write, whether its token or its client certificate names
// it (the member serves https with --client-cert-auth; the test's own
// client's certificate names root).
func TestLockElection(t *testing.T) {
	p := newTestPKI(t)
	rootCert := p.ca.Issue(t, certtest.Spec{Name: "root", CN: "root"})
	c := newClusterWith(t, 1, func(m *member) { m.serveClientsTLS(t, p, rootCert) })
	m := c.members[0]
	cli := m.client()
	lc := v3lockpb.NewLockClient(cli.ActiveConnection())
	ec := v3electionpb.NewElectionClient(cli.ActiveConnection())

	// Two lockers: the second waits for the first's Unlock.
	l1, l2 := grant(t, cli, 60), grant(t, cli, 60)
	first := await(t, lockAsync(t, lc, "l", l1), "first Lock")
	if want := fmt.Sprintf("l/%x", l1); string(first.Key) != want {
		t.Fatalf("first Lock's key %q, want %q", first.Key, want)
	}
	second := lockAsync(t, lc, "l", l2)
	waitKey(t, cli, fmt.Sprintf("l/%x", l2))
	requirePending(t, second, "second Lock")
	if _, err := lc.Unlock(ctxT(t), &v3lockpb.UnlockRequest{Key: first.Key}); err != nil {
		t.Fatal(err)
	}
	if got := await(t, second, "second Lock"); string(got.Key) != fmt.Sprintf("l/%x", l2) {
		t.Fatalf("second Lock's key %q", got.Key)
	}

	// A holder SIGKILLed: its lease (1s) expires and the waiter gets it.
	holder := startChild(t, exec.Command(ctlBinary, "--endpoints="+m.clientURL,
		"--cacert="+p.ca.CertFile, "--cert="+rootCert.CertFile, "--key="+rootCert.KeyFile, "lock", "--ttl", "1", "k"))
	holder.waitFor(t, "the lock", func(out string) bool { return strings.HasPrefix(out, "k/") })
	l3 := grant(t, cli, 60)
	waiter := lockAsync(t, lc, "k", l3)
	waitKey(t, cli, fmt.Sprintf("k/%x", l3))
	requirePending(t, waiter, "Lock of a held lock")
	holder.kill(t)
	start := time.Now()
	if got := await(t, waiter, "Lock after the holder was killed"); string(got.Key) != fmt.Sprintf("k/%x", l3) {
		t.Fatalf("Lock's key %q", got.Key)
	}
	t.Logf("the waiter got the lock %v after its holder was killed", time.Since(start))

	// An election.
	name := []byte("e")
	if _, err := ec.Leader(ctxT(t), &v3electionpb.LeaderRequest{Name: name}); err == nil {
		t.Fatal("Leader of an election with no campaigner: no error")
	} else {
		requireDesc(t, "Leader with none", err, "election: no leader")
	}
	c1, err := ec.Campaign(ctxT(t), &v3electionpb.CampaignRequest{Name: name, Lease: l1, Value: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if lk := c1.Leader; string(lk.Name) != "e" || string(lk.Key) != fmt.Sprintf("e/%x", l1) || lk.Lease != l1 || lk.Rev != c1.Header.Revision {
		t.Fatalf("Campaign's leader key %v (header revision %d)", lk, c1.Header.Revision)
	}
	octx, ocancel := context.WithCancel(ctxT(t))
	defer ocancel()
	obs, err := ec.Observe(octx, &v3electionpb.LeaderRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	observe := func(want string) {
		t.Helper()
		resp, err := obs.Recv()
		if err != nil || string(resp.Kv.Value) != want {
			t.Fatalf("Observe: %v, %v; want value %q", resp, err, want)
		}
	}
	observe("a")
	campaign2 := make(chan error, 1)
	var c2 *v3electionpb.CampaignResponse
	go func() {
		var err error
		c2, err = ec.Campaign(ctxT(t), &v3electionpb.CampaignRequest{Name: name, Lease: l2, Value: []byte("b")})
		campaign2 <- err
	}()
	waitKey(t, cli, fmt.Sprintf("e/%x", l2))
	if _, err := ec.Proclaim(ctxT(t), &v3electionpb.ProclaimRequest{Leader: c1.Leader, Value: []byte("a2")}); err != nil {
		t.Fatal(err)
	}
	observe("a2")
	if resp, err := ec.Leader(ctxT(t), &v3electionpb.LeaderRequest{Name: name}); err != nil || string(resp.Kv.Value) != "a2" || string(resp.Kv.Key) != string(c1.Leader.Key) {
		t.Fatalf("Leader: %v, %v", resp, err)
	}
	notLeader := &v3electionpb.LeaderKey{Name: name, Key: []byte(fmt.Sprintf("e/%x", l2)), Rev: c1.Leader.Rev, Lease: l2}
	_, err = ec.Proclaim(ctxT(t), &v3electionpb.ProclaimRequest{Leader: notLeader, Value: []byte("x")})
	requireDesc(t, "Proclaim by a campaigner that does not lead", err, "election: not leader")
	_, err = ec.Proclaim(ctxT(t), &v3electionpb.ProclaimRequest{Value: []byte("x")})
	requireDesc(t, "Proclaim without a leader key", err, `"leader" field must be provided`)
	select {
	case err := <-campaign2:
		t.Fatalf("second Campaign returned while the first led: %v", err)
	default:
	}
	if _, err := ec.Resign(ctxT(t), &v3electionpb.ResignRequest{Leader: c1.Leader}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-campaign2:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitDeadline):
		t.Fatalf("second Campaign: no answer within %v of the first's Resign", waitDeadline)
	}
	observe("b")
	if _, err := ec.Resign(ctxT(t), &v3electionpb.ResignRequest{Leader: c2.Leader}); err != nil {
		t.Fatal(err)
	}
	_, err = ec.Leader(ctxT(t), &v3electionpb.LeaderRequest{Name: name})
	requireDesc(t, "Leader after both resigned", err, "election: no leader")
	ocancel()

	// Auth: the inner requests run as the caller, named by its token or,
	// with none, by its certificate.
	ctx := ctxT(t)
	for i, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "locker"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "locker", "ok/", clientv3.GetPrefixRangeEnd("ok/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "locker", "lockerpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "locker", "locker"); return err },
		func() error { _, err := cli.UserAdd(ctx, "nobody", "nobodypw"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	certs := map[string]certtest.Pair{}
	for _, u := range []string{"locker", "nobody"} {
		certs[u] = p.ca.Issue(t, certtest.Spec{Name: u, CN: u})
	}
	for i, tc := range []struct {
		cert, user, lock string
		want             error
	}{
		{"nobody", "locker", "ok", nil},
		{"nobody", "locker", "elsewhere", rpctypes.ErrPermissionDenied},
		{"locker", "nobody", "ok", rpctypes.ErrPermissionDenied},
		{"locker", "", "ok", nil},
		{"locker", "", "elsewhere", rpctypes.ErrPermissionDenied},
		{"nobody", "", "ok", rpctypes.ErrPermissionDenied},
	} {
		// A lock of its own: the one before still holds its lock.
		name := fmt.Sprintf("%s/%d", tc.lock, i)
		cfg := clientv3.Config{Endpoints: []string{m.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			TLS: p.clientTLS(t, certs[tc.cert])}
		if tc.user != "" {
			cfg.Username, cfg.Password = tc.user, tc.user+"pw"
		}
		ucli, err := clientv3.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ucli.Close() })
		lease := grant(t, ucli, 60)
		_, err = v3lockpb.NewLockClient(ucli.ActiveConnection()).Lock(ctxT(t), &v3lockpb.LockRequest{Name: []byte(name), Lease: lease})
		if got := rpctypes.Error(err); !errors.Is(got, tc.want) {
			t.Errorf("Lock %q with %s's certificate and %q's token: error %v, want %v", name, tc.cert, tc.user, err, tc.want)
		}
	}
}

package diff

import (
	"context"
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/api/v3electionpb"
	"github.com/cairn-db/cairn/api/v3lockpb"
)

// lockOps are Lock and Election requests as authSetup's users (urw may
// read and write p/, ur may only read r, unone may do nothing), on
// authSetup's leases 100 and 200; none waits for a lock or a leader.
func lockOps() []authOp {
	lock := func(user, name string, lease int64) authOp {
		return authOp{user, fmt.Sprintf("lock %q with lease %d", name, lease), func(ctx context.Context, s *authTarget) string {
			return result(v3lockpb.NewLockClient(s.conn).Lock(s.ctx(ctx, user), &v3lockpb.LockRequest{Name: []byte(name), Lease: lease}))
		}}
	}
	unlock := func(user, key string) authOp {
		return authOp{user, "unlock " + key, func(ctx context.Context, s *authTarget) string {
			return result(v3lockpb.NewLockClient(s.conn).Unlock(s.ctx(ctx, user), &v3lockpb.UnlockRequest{Key: []byte(key)}))
		}}
	}
	election := func(s *authTarget) v3electionpb.ElectionClient { return v3electionpb.NewElectionClient(s.conn) }
	campaign := func(user, name string, lease int64, value string) authOp {
		return authOp{user, fmt.Sprintf("campaign %q with lease %d", name, lease), func(ctx context.Context, s *authTarget) string {
			return result(election(s).Campaign(s.ctx(ctx, user), &v3electionpb.CampaignRequest{Name: []byte(name), Lease: lease, Value: []byte(value)}))
		}}
	}
	leader := func(user, name string) authOp {
		return authOp{user, "leader of " + name, func(ctx context.Context, s *authTarget) string {
			return result(election(s).Leader(s.ctx(ctx, user), &v3electionpb.LeaderRequest{Name: []byte(name)}))
		}}
	}
	// The leadership a campaign on lease 200 got: the key's revision is
	// the same on both servers (same requests in the same order).
	leaderKey := func(ctx context.Context, s *authTarget, name string) *v3electionpb.LeaderKey {
		resp, err := election(s).Leader(s.ctx(ctx, "root"), &v3electionpb.LeaderRequest{Name: []byte(name)})
		if err != nil {
			return &v3electionpb.LeaderKey{Name: []byte(name), Key: []byte(name + "/c8"), Rev: 1, Lease: 200}
		}
		return &v3electionpb.LeaderKey{Name: []byte(name), Key: resp.Kv.Key, Rev: resp.Kv.CreateRevision, Lease: resp.Kv.Lease}
	}
	proclaim := func(user, name string, rev int64, value string) authOp {
		return authOp{user, fmt.Sprintf("proclaim %q on %s (rev %+d)", value, name, rev), func(ctx context.Context, s *authTarget) string {
			lk := leaderKey(ctx, s, name)
			lk.Rev += rev
			return result(election(s).Proclaim(s.ctx(ctx, user), &v3electionpb.ProclaimRequest{Leader: lk, Value: []byte(value)}))
		}}
	}
	resign := func(user, name string) authOp {
		return authOp{user, "resign " + name, func(ctx context.Context, s *authTarget) string {
			return result(election(s).Resign(s.ctx(ctx, user), &v3electionpb.ResignRequest{Leader: leaderKey(ctx, s, name)}))
		}}
	}
	observeFirst := func(user, name string) authOp {
		return authOp{user, "observe " + name + ": the first answer", func(ctx context.Context, s *authTarget) string {
			ctx, cancel := context.WithCancel(s.ctx(ctx, user))
			defer cancel()
			o, err := election(s).Observe(ctx, &v3electionpb.LeaderRequest{Name: []byte(name)})
			if err != nil {
				return result(nil, err)
			}
			resp, err := o.Recv()
			if err != nil {
				return result(nil, err)
			}
			return result(resp, nil)
		}}
	}
	var ops []authOp
	for _, u := range []string{"root", "urw", "ur", "unone"} {
		ops = append(ops, authOp{"", "authenticate " + u, authenticate(u, u+"pw")})
	}
	ops[0] = authOp{"", "authenticate root", authenticate("root", "rootpw")}
	return append(ops,
		lock("urw", "p/l", 200),
		lock("urw", "p/l", 200), // the same lease holds it: at once, the same key
		lock("ur", "p/l", 200),
		lock("unone", "p/m", 200),
		lock("", "p/m", 200),
		lock("urw", "q", 200),
		lock("urw", "p/n", 999), // no such lease
		lock("root", "x", 100),
		unlock("ur", "p/l/c8"),
		unlock("urw", "p/l/c8"),
		unlock("urw", "p/l/c8"), // gone: no error
		lock("urw", "p/l", 200),
		leader("urw", "p/e"),
		campaign("ur", "p/e", 200, "v0"),
		campaign("urw", "p/e", 200, "v1"),
		campaign("urw", "p/e", 200, "v1b"), // the same lease: leads already
		leader("urw", "p/e"),
		leader("ur", "p/e"),
		observeFirst("urw", "p/e"),
		observeFirst("ur", "p/e"),
		proclaim("urw", "p/e", 0, "v2"),
		proclaim("urw", "p/e", 1, "v3"), // not the leader's revision
		proclaim("ur", "p/e", 0, "v4"),
		authOp{"urw", "proclaim without a leader key", func(ctx context.Context, s *authTarget) string {
			return result(election(s).Proclaim(s.ctx(ctx, "urw"), &v3electionpb.ProclaimRequest{Value: []byte("v")}))
		}},
		leader("urw", "p/e"),
		resign("ur", "p/e"),
		resign("urw", "p/e"),
		leader("urw", "p/e"),
		resign("urw", "p/e"), // resigned already
	)
}

// TestLockElectionDifferential requires the same answers from cairn and
// stock etcd to lockOps.
func TestLockElectionDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	runAuthOps(t, lockOps(), startServer(t, cairn, "--bcrypt-cost", "4"), startServer(t, etcd, "--bcrypt-cost", "4"))
}

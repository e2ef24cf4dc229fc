package diff

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// authTarget is one server of TestAuthDifferential: its gRPC clients and
// the token each user got from it.
type authTarget struct {
	conn   *grpc.ClientConn
	kv     pb.KVClient
	lease  pb.LeaseClient
	watch  pb.WatchClient
	maint  pb.MaintenanceClient
	clus   pb.ClusterClient
	auth   pb.AuthClient
	tokens map[string]string
	// peer is the other server.
	peer *authTarget
}

func newAuthTarget(conn *grpc.ClientConn) *authTarget {
	return &authTarget{conn, pb.NewKVClient(conn), pb.NewLeaseClient(conn), pb.NewWatchClient(conn),
		pb.NewMaintenanceClient(conn), pb.NewClusterClient(conn), pb.NewAuthClient(conn), map[string]string{}, nil}
}

// authSetup is the same on both servers, through clientv3: keys and two
// leases (100 holds "a", which only root may write; 200 holds "p/2"),
// root, and users with roles:
//
//	ur     rread: read "r"
//	urw    rrw: readwrite prefix "p/"
//	uw     rwo: write from "w" on ("\x00" end)
//	uall   rread, rrw, rwo
//	unone  no roles
//	unopw  no password, rrw
func authSetup(t *testing.T, ctx context.Context, endpoint string) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: waitDeadline})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Explicit lease IDs (clientv3's Grant has none) so that both
	// servers answer with the same.
	for _, id := range []int64{100, 200} {
		must(pb.NewLeaseClient(c.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: 1000}))
	}
	for _, kv := range []struct {
		k     string
		lease clientv3.LeaseID
	}{{"a", 100}, {"p/1", 0}, {"p/2", 200}, {"q", 0}, {"r", 0}, {"r1", 0}, {"w1", 0}, {"z", 0}} {
		must(c.Put(ctx, kv.k, "v-"+kv.k, clientv3.WithLease(kv.lease)))
	}
	must(c.UserAdd(ctx, "root", "rootpw"))
	must(c.UserGrantRole(ctx, "root", "root"))
	must(c.RoleAdd(ctx, "rread"))
	must(c.RoleGrantPermission(ctx, "rread", "r", "", clientv3.PermissionType(clientv3.PermRead)))
	must(c.RoleAdd(ctx, "rrw"))
	must(c.RoleGrantPermission(ctx, "rrw", "p/", clientv3.GetPrefixRangeEnd("p/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	must(c.RoleAdd(ctx, "rwo"))
	must(c.RoleGrantPermission(ctx, "rwo", "w", "\x00", clientv3.PermissionType(clientv3.PermWrite)))
	for _, u := range []struct {
		name  string
		roles []string
	}{{"ur", []string{"rread"}}, {"urw", []string{"rrw"}}, {"uw", []string{"rwo"}},
		{"uall", []string{"rread", "rrw", "rwo"}}, {"unone", nil}} {
		must(c.UserAdd(ctx, u.name, u.name+"pw"))
		for _, r := range u.roles {
			must(c.UserGrantRole(ctx, u.name, r))
		}
	}
	must(c.UserAddWithOptions(ctx, "unopw", "", &clientv3.UserAddOptions{NoPassword: true}))
	must(c.UserGrantRole(ctx, "unopw", "rrw"))
	must(c.AuthEnable(ctx))
}

// authOp is one request, made as user: a name in tokens, "" for no
// token, "bogus" for a made-up one.
type authOp struct {
	user string
	desc string
	run  func(ctx context.Context, s *authTarget) string
}

func (s *authTarget) ctx(ctx context.Context, user string) context.Context {
	switch {
	case user == "":
		return ctx
	case user == "bogus":
		return metadata.AppendToOutgoingContext(ctx, "token", "bogusbogusbogusb.1") // index 1: applied (a higher one is waited for)
	}
	return metadata.AppendToOutgoingContext(ctx, "token", s.tokens[user])
}

func rng(key, end string) *pb.RangeRequest {
	r := &pb.RangeRequest{Key: []byte(key)}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	return r
}

func put(key string, opts ...func(*pb.PutRequest)) *pb.PutRequest {
	r := &pb.PutRequest{Key: []byte(key), Value: []byte("n-" + key)}
	for _, o := range opts {
		o(r)
	}
	return r
}

func prevKV(r *pb.PutRequest)      { r.PrevKv = true }
func ignoreValue(r *pb.PutRequest) { r.IgnoreValue, r.Value = true, nil }
func withLease(id int64) func(*pb.PutRequest) {
	return func(r *pb.PutRequest) { r.Lease = id }
}

func del(key, end string, prev bool) *pb.DeleteRangeRequest {
	r := &pb.DeleteRangeRequest{Key: []byte(key), PrevKv: prev}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	return r
}

func opPut(r *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}}
}
func opRange(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}
func opDel(r *pb.DeleteRangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}
func opTxn(r *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
}

func cmpVersion(key string, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_VERSION, Result: pb.Compare_GREATER,
		TargetUnion: &pb.Compare_Version{Version: v}}
}

// ok is the outcome of a request whose answer differs between two
// servers anyway (member IDs, sizes, versions): its error, or "ok".
func ok(_ any, err error) string {
	if err != nil {
		return result(nil, err)
	}
	return "ok"
}

// watchOnce creates a watch, then (if it was created) has root put the
// keys in puts, and returns the creation answer and the first event
// answer.
func watchOnce(ctx context.Context, s *authTarget, user string, req *pb.WatchCreateRequest, puts ...string) string {
	wctx, cancel := context.WithCancel(s.ctx(ctx, user))
	defer cancel()
	w, err := s.watch.Watch(wctx)
	if err != nil {
		return result(nil, err)
	}
	if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
		return result(nil, err)
	}
	created, err := w.Recv()
	out := result(created, err)
	if err != nil || created.Canceled || len(puts) == 0 {
		return out
	}
	for _, k := range puts {
		if _, err := s.kv.Put(s.ctx(ctx, "root"), put(k)); err != nil {
			return out + " put: " + result(nil, err)
		}
	}
	ev, err := w.Recv()
	return out + " | " + result(ev, err)
}

func keepAliveOnce(ctx context.Context, s *authTarget, user string, id int64) string {
	kctx, cancel := context.WithCancel(s.ctx(ctx, user))
	defer cancel()
	k, err := s.lease.LeaseKeepAlive(kctx)
	if err != nil {
		return result(nil, err)
	}
	if err := k.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return result(nil, err)
	}
	return result(k.Recv())
}

func timeToLive(ctx context.Context, s *authTarget, user string, id int64, keys bool) string {
	resp, err := s.lease.LeaseTimeToLive(s.ctx(ctx, user), &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys})
	if err == nil {
		resp.TTL = 0 // counts down
	}
	return result(resp, err)
}

func authenticate(name, password string) func(ctx context.Context, s *authTarget) string {
	return func(ctx context.Context, s *authTarget) string {
		resp, err := s.auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: name, Password: password})
		if err != nil {
			return result(nil, err)
		}
		s.tokens[name] = resp.Token
		return "ok"
	}
}

// authOps is the table: requests as each user, in order (some change
// what later ones see).
func authOps() []authOp {
	kv := func(user string, req any) authOp {
		return authOp{user, fmt.Sprintf("%T %v", req, req), func(ctx context.Context, s *authTarget) string {
			ctx = s.ctx(ctx, user)
			switch r := req.(type) {
			case *pb.RangeRequest:
				return result(s.kv.Range(ctx, r))
			case *pb.PutRequest:
				return result(s.kv.Put(ctx, r))
			case *pb.DeleteRangeRequest:
				return result(s.kv.DeleteRange(ctx, r))
			case *pb.TxnRequest:
				return result(s.kv.Txn(ctx, r))
			case *pb.CompactionRequest:
				return result(s.kv.Compact(ctx, r))
			}
			panic(fmt.Sprintf("no such request %T", req))
		}}
	}
	do := func(user, desc string, f func(ctx context.Context, s *authTarget) string) authOp {
		return authOp{user, desc, func(ctx context.Context, s *authTarget) string { return f(s.ctx(ctx, user), s) }}
	}
	// watch has root put puts once the watch is created.
	watch := func(user, key, end string, puts ...string) authOp {
		req := &pb.WatchCreateRequest{Key: []byte(key)}
		if end != "" {
			req.RangeEnd = []byte(end)
		}
		return authOp{user, fmt.Sprintf("watch %v then put %v", req, puts), func(ctx context.Context, s *authTarget) string {
			return watchOnce(ctx, s, user, req, puts...)
		}}
	}
	var ops []authOp
	for _, u := range []string{"root", "ur", "urw", "uw", "uall", "unone"} {
		ops = append(ops, authOp{"", "authenticate " + u, authenticate(u, u+"pw")})
	}
	ops = append(ops,
		authOp{"", "authenticate root", authenticate("root", "rootpw")},
		authOp{"", "authenticate wrong password", authenticate("ur", "nope")},
		authOp{"", "authenticate no such user", authenticate("nobody", "x")},
		authOp{"", "authenticate no-password user", authenticate("unopw", "")},
		authOp{"", "authenticate no-password user with one", authenticate("unopw", "x")},
	)
	// Range: a key, a prefix, from a key on, ranges partly covered.
	for _, u := range []string{"", "bogus", "root", "ur", "urw", "uw", "uall", "unone"} {
		ops = append(ops,
			kv(u, rng("r", "")), kv(u, rng("p/", "p0")), kv(u, rng("p/1", "")),
			kv(u, rng("w", "\x00")), kv(u, rng("\x00", "\x00")))
	}
	ops = append(ops,
		kv("ur", rng("r", "r\x00")), kv("ur", rng("r", "r1")), kv("ur", rng("r", "s")), kv("ur", rng("q", "r\x00")),
		kv("urw", rng("p/", "p/\x00")), kv("urw", rng("p/1", "p0")), kv("urw", rng("p/", "p1")), kv("urw", rng("p", "p0")),
		kv("uall", rng("p/", "r\x00")), kv("uall", rng("p/", "p0")),
		kv("urw", &pb.RangeRequest{Key: []byte("p/"), RangeEnd: []byte("p0"), CountOnly: true}),
		kv("urw", &pb.RangeRequest{Key: []byte("p/"), RangeEnd: []byte("p0"), Limit: 1}),
		kv("ur", &pb.RangeRequest{Key: []byte("r"), Serializable: true}),
		kv("unopw", rng("p/1", "")),
	)
	// Put and DeleteRange.
	ops = append(ops,
		kv("", put("p/x")), kv("bogus", put("p/x")),
		kv("ur", put("r")), kv("urw", put("p/x")), kv("urw", put("q")), kv("urw", put("p/x", prevKV)),
		kv("uw", put("w1")), kv("uw", put("w1", prevKV)), kv("uw", put("zz")), kv("uw", put("v")),
		kv("uw", put("w1", ignoreValue)), kv("uw", put("w1", ignoreValue, prevKV)),
		kv("urw", put("p/1", withLease(100))), kv("urw", put("p/1", withLease(200))), kv("urw", put("p/3", withLease(999))),
		kv("root", put("a", withLease(100))),
		kv("unone", put("p/x")),
		kv("urw", del("p/x", "", false)), kv("urw", del("p/", "p0", true)), kv("urw", del("p/", "q", false)),
		kv("uw", del("w1", "", false)), kv("uw", del("w", "\x00", true)), kv("uw", del("w", "\x00", false)),
		kv("uall", del("r", "", false)), kv("root", put("r")), kv("root", put("p/1")), kv("root", put("p/2", withLease(200))),
		kv("uw", put("w1")),
	)
	// Txn: compares on what the user cannot read, both branches checked,
	// nested txns, prev_kv inside.
	ops = append(ops,
		kv("urw", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", 0)}}),
		kv("urw", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("p/1", 0)}, Success: []*pb.RequestOp{opRange(rng("p/", "p0"))}}),
		kv("urw", &pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("p/t"))}, Failure: []*pb.RequestOp{opPut(put("a"))}}),
		kv("urw", &pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("p/t", prevKV))}, Failure: []*pb.RequestOp{opRange(rng("q", ""))}}),
		kv("urw", &pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("p/t", prevKV)), opDel(del("p/1", "", true))}}),
		kv("uw", &pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("w2"))}}),
		kv("uw", &pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("w2", prevKV))}}),
		kv("uw", &pb.TxnRequest{Success: []*pb.RequestOp{opDel(del("w2", "", true))}}),
		kv("uw", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("w1", 0)}, Success: []*pb.RequestOp{opPut(put("w2"))}}),
		kv("uall", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("r", 0)},
			Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("p/n", prevKV)), opRange(rng("r", ""))}})},
			Failure: []*pb.RequestOp{opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut(put("w3"))}})}}),
		kv("uall", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut(put("q"))}})}}),
		kv("uall", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("q", 0)}})}}),
		kv("urw", &pb.TxnRequest{Success: []*pb.RequestOp{opPut(put("p/1", withLease(100)))}}),
		kv("ur", &pb.TxnRequest{}),
		kv("", &pb.TxnRequest{}),
	)
	// Compaction is root's.
	ops = append(ops, kv("urw", &pb.CompactionRequest{Revision: 3}), kv("", &pb.CompactionRequest{Revision: 3}),
		kv("root", &pb.CompactionRequest{Revision: 3}))
	// Watches (GHSA-xg4h-6gfc-h4m8: a watch on a readable key sees
	// nothing of the keys it may not read).
	ops = append(ops,
		watch("ur", "r", "", "r1", "r"), watch("ur", "r", "s"), watch("ur", "r", "r\x00", "r"),
		watch("urw", "p/", "p0", "q", "p/w"), watch("uw", "w", "\x00"), watch("unone", "r", ""),
		watch("", "r", ""), watch("bogus", "r", ""), watch("root", "\x00", "\x00", "zzz"),
		watch("uall", "p/", "p0", "r", "p/w"),
	)
	// A watch outlives the permission it was created with (etcd checks
	// at creation only): after the revoke, root's put still arrives.
	ops = append(ops, authOp{"ur", "watch r, revoke rread's r, put r", func(ctx context.Context, s *authTarget) string {
		wctx, cancel := context.WithCancel(s.ctx(ctx, "ur"))
		defer cancel()
		w, err := s.watch.Watch(wctx)
		if err != nil {
			return result(nil, err)
		}
		if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{
			CreateRequest: &pb.WatchCreateRequest{Key: []byte("r")}}}); err != nil {
			return result(nil, err)
		}
		created, err := w.Recv()
		out := result(created, err)
		root := s.ctx(ctx, "root")
		out += " | " + result(s.auth.RoleRevokePermission(root, &pb.AuthRoleRevokePermissionRequest{Role: "rread", Key: []byte("r")}))
		out += " | " + result(s.kv.Put(root, put("r")))
		out += " | " + result(w.Recv())
		out += " | " + result(s.auth.RoleGrantPermission(root, &pb.AuthRoleGrantPermissionRequest{Name: "rread",
			Perm: &authpb.Permission{PermType: authpb.READ, Key: []byte("r")}}))
		return out
	}})
	// HTTP endpoints with auth on: the health checks read as root (etcd's
	// WithRoot), and the auth revision gauge follows the store.
	for _, path := range []string{"/health", "/health?serializable=true", "/readyz", "/livez", "/metrics"} {
		ops = append(ops, authOp{"", "GET " + path, func(ctx context.Context, s *authTarget) string {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.conn.Target()+path, nil)
			if err != nil {
				return err.Error()
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if path == "/metrics" {
				for line := range strings.SplitSeq(string(b), "\n") {
					if strings.HasPrefix(line, "etcd_debugging_auth_revision ") {
						return line
					}
				}
				return "no etcd_debugging_auth_revision"
			}
			return fmt.Sprintf("%d %s", resp.StatusCode, b)
		}})
	}
	// Leases (CVE-2023-32082: time-to-live lists keys only to who may
	// read them).
	ops = append(ops,
		do("ur", "grant 300", func(ctx context.Context, s *authTarget) string {
			return result(s.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 300, TTL: 1000}))
		}),
		do("", "grant 301", func(ctx context.Context, s *authTarget) string {
			return result(s.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 301, TTL: 1000}))
		}),
		do("urw", "leases", func(ctx context.Context, s *authTarget) string {
			return result(s.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{}))
		}),
		do("", "leases", func(ctx context.Context, s *authTarget) string {
			return result(s.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{}))
		}),
	)
	for _, u := range []string{"", "bogus", "ur", "urw", "root"} {
		for _, id := range []int64{100, 200, 999} {
			ops = append(ops,
				authOp{u, fmt.Sprintf("ttl %d keys", id), func(ctx context.Context, s *authTarget) string { return timeToLive(ctx, s, u, id, true) }},
				authOp{u, fmt.Sprintf("ttl %d", id), func(ctx context.Context, s *authTarget) string { return timeToLive(ctx, s, u, id, false) }},
				authOp{u, fmt.Sprintf("keepalive %d", id), func(ctx context.Context, s *authTarget) string { return keepAliveOnce(ctx, s, u, id) }},
			)
		}
	}
	revoke := func(user string, id int64) authOp {
		return do(user, fmt.Sprintf("revoke %d", id), func(ctx context.Context, s *authTarget) string {
			return result(s.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id}))
		})
	}
	ops = append(ops, revoke("urw", 100), revoke("", 300), revoke("ur", 300), revoke("urw", 200),
		kv("root", rng("p/2", "")), revoke("root", 100), kv("root", rng("a", "")))
	// An expired lease's keys go with it: the member revokes it as root.
	ops = append(ops, authOp{"root", "lease 400 (ttl 2) holding p/exp expires", func(ctx context.Context, s *authTarget) string {
		root := s.ctx(ctx, "root")
		if _, err := s.lease.LeaseGrant(root, &pb.LeaseGrantRequest{ID: 400, TTL: 2}); err != nil {
			return result(nil, err)
		}
		if _, err := s.kv.Put(root, put("p/exp", withLease(400))); err != nil {
			return result(nil, err)
		}
		for {
			resp, err := s.kv.Range(root, rng("p/exp", ""))
			if err != nil {
				return result(nil, err)
			}
			if resp.Count == 0 {
				return "expired"
			}
			select {
			case <-ctx.Done():
				return "still there at the deadline"
			case <-time.After(100 * time.Millisecond): // polling a real server
			}
		}
	}})
	// Cluster and maintenance.
	for _, u := range []string{"", "bogus", "ur", "root"} {
		ops = append(ops,
			// etcd requires a user (requireAuthInfo), not root.
			do(u, "status", func(ctx context.Context, s *authTarget) string { return ok(s.maint.Status(ctx, &pb.StatusRequest{})) }),
			do(u, "member list", func(ctx context.Context, s *authTarget) string {
				resp, err := s.clus.MemberList(ctx, &pb.MemberListRequest{})
				if err != nil {
					return result(nil, err)
				}
				return fmt.Sprintf("%d members", len(resp.Members))
			}),
			do(u, "member add", func(ctx context.Context, s *authTarget) string {
				return ok(s.clus.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:1"}, IsLearner: true}))
			}),
			do(u, "alarm list", func(ctx context.Context, s *authTarget) string {
				return result(s.maint.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET}))
			}),
			do(u, "alarm deactivate", func(ctx context.Context, s *authTarget) string {
				return result(s.maint.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, Alarm: pb.AlarmType_NOSPACE}))
			}),
			do(u, "hashkv", func(ctx context.Context, s *authTarget) string { return ok(s.maint.HashKV(ctx, &pb.HashKVRequest{})) }),
			do(u, "hash", func(ctx context.Context, s *authTarget) string { return ok(s.maint.Hash(ctx, &pb.HashRequest{})) }),
			do(u, "defragment", func(ctx context.Context, s *authTarget) string {
				return ok(s.maint.Defragment(ctx, &pb.DefragmentRequest{}))
			}),
			do(u, "snapshot", func(ctx context.Context, s *authTarget) string {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				st, err := s.maint.Snapshot(ctx, &pb.SnapshotRequest{})
				if err != nil {
					return result(nil, err)
				}
				return ok(st.Recv())
			}),
			do(u, "member remove", func(ctx context.Context, s *authTarget) string {
				return result(s.clus.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: 12345}))
			}),
			do(u, "member update", func(ctx context.Context, s *authTarget) string {
				return result(s.clus.MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: 12345, PeerURLs: []string{"http://127.0.0.1:1"}}))
			}),
			do(u, "member promote", func(ctx context.Context, s *authTarget) string {
				return result(s.clus.MemberPromote(ctx, &pb.MemberPromoteRequest{ID: 12345}))
			}),
			do(u, "downgrade validate", func(ctx context.Context, s *authTarget) string {
				resp, err := s.maint.Downgrade(ctx, &pb.DowngradeRequest{Action: pb.DowngradeRequest_VALIDATE, Version: "3.6"})
				if u == "root" && (err == nil || status.Code(err) == codes.FailedPrecondition) {
					// Past the auth check Cairn refuses downgrades
					// (README): only that root gets past it is compared.
					return "past the auth check"
				}
				return ok(resp, err)
			}),
			do(u, "move leader", func(ctx context.Context, s *authTarget) string {
				return result(s.maint.MoveLeader(ctx, &pb.MoveLeaderRequest{TargetID: 1}))
			}),
		)
	}
	// The Auth service.
	authDo := func(user, desc string, f func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error)) authOp {
		return do(user, desc, func(ctx context.Context, s *authTarget) string { return result(f(ctx, s.auth)) })
	}
	for _, u := range []string{"", "bogus", "ur", "root"} {
		ops = append(ops,
			authDo(u, "auth status", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.AuthStatus(ctx, &pb.AuthStatusRequest{})
			}),
			authDo(u, "user get ur", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserGet(ctx, &pb.AuthUserGetRequest{Name: "ur"})
			}),
			authDo(u, "user get urw", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserGet(ctx, &pb.AuthUserGetRequest{Name: "urw"})
			}),
			authDo(u, "user get nobody", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserGet(ctx, &pb.AuthUserGetRequest{Name: "nobody"})
			}),
			authDo(u, "role get rread", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: "rread"})
			}),
			authDo(u, "role get rrw", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: "rrw"})
			}),
			authDo(u, "role get nope", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: "nope"})
			}),
			authDo(u, "user list", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserList(ctx, &pb.AuthUserListRequest{})
			}),
			authDo(u, "role list", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.RoleList(ctx, &pb.AuthRoleListRequest{})
			}),
		)
	}
	for _, u := range []string{"ur", "root"} {
		ops = append(ops,
			authDo(u, "user add", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "new-" + u, Password: "x"})
			}),
			authDo(u, "user grant role", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "ur", Role: "rrw"})
			}),
			authDo(u, "role add", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "role-" + u})
			}),
			authDo(u, "user change own password", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: u, Password: u + "pw"})
			}),
			// The change ended the user's token.
			authOp{"", "authenticate " + u, authenticate(u, u+"pw")},
		)
	}
	ops = append(ops, authDo("ur", "auth disable", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
		return a.AuthDisable(ctx, &pb.AuthDisableRequest{})
	}))
	perm := func(key, end string) *authpb.Permission {
		return &authpb.Permission{PermType: authpb.READ, Key: []byte(key), RangeEnd: []byte(end)}
	}
	ops = append(ops,
		authDo("root", "delete root", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: "root"})
		}),
		authDo("root", "revoke root's root role", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"})
		}),
		authDo("root", "delete role root", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: "root"})
		}),
		authDo("root", "enable again", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.AuthEnable(ctx, &pb.AuthEnableRequest{})
		}),
	)
	for _, p := range []*authpb.Permission{perm("b", "a"), perm("b", "b"), perm("", "a"), perm("", "\x00"), perm("\x00", "\x00"), perm("k", "")} {
		ops = append(ops,
			authDo("root", fmt.Sprintf("grant %v", p), func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
				return a.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "rread", Perm: p})
			}))
	}
	ops = append(ops,
		authDo("root", "role get rread", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleGet(ctx, &pb.AuthRoleGetRequest{Role: "rread"})
		}),
		authDo("root", "revoke perm", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: "rread", Key: []byte("k")})
		}),
		authDo("root", "revoke perm not granted", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: "rread", Key: []byte("k")})
		}),
		authDo("root", "revoke role not granted", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: "unone", Role: "rread"})
		}),
		// Deleting a role takes it from its users.
		authDo("root", "role delete rrw", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: "rrw"})
		}),
		authDo("root", "user get urw", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserGet(ctx, &pb.AuthUserGetRequest{Name: "urw"})
		}),
		authDo("root", "user get ur", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserGet(ctx, &pb.AuthUserGetRequest{Name: "ur"})
		}),
		kv("urw", rng("p/1", "")), kv("uall", rng("p/1", "")), kv("uall", rng("r", "")),
		// A password change ends the user's simple tokens.
		kv("ur", rng("r", "")),
		authDo("root", "change ur's password", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: "ur", Password: "other"})
		}),
		kv("ur", rng("r", "")),
		authOp{"", "authenticate ur old password", authenticate("ur", "urpw")},
		authOp{"", "authenticate ur", authenticate("ur", "other")},
		kv("ur", rng("r", "")),
		// Deleting a user ends its tokens too.
		authDo("root", "delete uw", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: "uw"})
		}),
		kv("uw", put("w1")),
		// Auth off: no user needed, tokens ignored or refused as etcd does.
		authDo("root", "auth disable", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.AuthDisable(ctx, &pb.AuthDisableRequest{})
		}),
		kv("", rng("a", "")), kv("", put("a")), kv("ur", rng("a", "")), kv("bogus", rng("a", "")),
		kv("", &pb.CompactionRequest{Revision: 4}),
		watch("", "a", "", "a"),
		authDo("", "auth status", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.AuthStatus(ctx, &pb.AuthStatusRequest{})
		}),
		authDo("", "user list", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserList(ctx, &pb.AuthUserListRequest{})
		}),
		authDo("", "auth disable again", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.AuthDisable(ctx, &pb.AuthDisableRequest{})
		}),
		authOp{"", "authenticate root with auth off", authenticate("root", "rootpw")},
		authDo("", "delete root with auth off", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: "root"})
		}),
		authDo("", "enable without root", func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.AuthEnable(ctx, &pb.AuthEnableRequest{})
		}),
	)
	// Malformed admin requests (auth off: anyone may send them).
	for _, f := range []func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error){
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: "pw"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.AuthEnable(ctx, &pb.AuthEnableRequest{}) // root without the root role
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "", Password: "pw"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "ur", Password: "pw"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "np", Password: "pw", Options: &authpb.UserAddOptions{NoPassword: true}})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "ep", Password: ""})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserGet(ctx, &pb.AuthUserGetRequest{Name: "np"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: ""})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: "rread"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "nope", Perm: &authpb.Permission{Key: []byte("k")}})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: "rread"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "nobody", Role: "rread"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "ur", Role: "nope"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "ur", Role: "rread"}) // already granted
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: "nobody", Password: "x"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserChangePassword(ctx, &pb.AuthUserChangePasswordRequest{Name: "unopw", Password: "x"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserDelete(ctx, &pb.AuthUserDeleteRequest{Name: "nobody"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleDelete(ctx, &pb.AuthRoleDeleteRequest{Role: "nope"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserRevokeRole(ctx, &pb.AuthUserRevokeRoleRequest{Name: "nobody", Role: "rread"})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleRevokePermission(ctx, &pb.AuthRoleRevokePermissionRequest{Role: "nope", Key: []byte("k")})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.UserList(ctx, &pb.AuthUserListRequest{})
		},
		func(ctx context.Context, a pb.AuthClient) (fmt.Stringer, error) {
			return a.RoleList(ctx, &pb.AuthRoleListRequest{})
		},
	} {
		ops = append(ops, authDo("", fmt.Sprintf("malformed admin request %d", len(ops)), f))
	}
	ops = append(ops, authOp{"", "authenticate unopw with auth off", authenticate("unopw", "")})
	return ops
}

// TestAuthDifferential sets up the same users, roles and permissions on
// cairn and on stock etcd, enables auth, and requires the same answer to
// every request of authOps on both: errors (code and message) and
// payloads.
func TestAuthDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	runAuthOps(t, authOps(), startServer(t, cairn, "--bcrypt-cost", "4"), startServer(t, etcd, "--bcrypt-cost", "4"))
}

// runAuthOps runs authSetup on the two servers, then every op on both,
// and requires the same answers.
func runAuthOps(t *testing.T, ops []authOp, cairn, etcd *grpc.ClientConn) {
	t.Helper()
	servers := []*authTarget{newAuthTarget(cairn), newAuthTarget(etcd)}
	servers[0].peer, servers[1].peer = servers[1], servers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitDeadline)
	defer cancel()
	for _, s := range servers {
		authSetup(t, ctx, s.conn.Target())
	}
	start := time.Now()
	for i, o := range ops {
		var got [2]string
		for j, s := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			got[j] = o.run(ctx, s)
			cancel()
		}
		if os.Getenv("CAIRN_AUTH_TRACE") != "" {
			t.Logf("op %d as %q: %s\n=> %s", i, o.user, o.desc, got[1])
		}
		if got[0] != got[1] {
			t.Errorf("op %d as %q: %s\ncairn: %s\netcd:  %s", i, o.user, o.desc, got[0], got[1])
		}
		if strings.Contains(got[1], "DeadlineExceeded") {
			t.Fatalf("op %d: etcd timed out: the table waits for something that does not come", i)
		}
	}
	t.Logf("%d requests compared in %v", len(ops), time.Since(start))
}

// jwtOps are for servers with JWT tokens: a JWT carries the auth
// revision it was made at, so a change of the auth state makes it old;
// and either server's tokens work on the other (same key, same state).
func jwtOps() []authOp {
	peerToken := func(user, key string) authOp {
		return authOp{user, "the other server's token: range " + key, func(ctx context.Context, s *authTarget) string {
			ctx = metadata.AppendToOutgoingContext(ctx, "token", s.peer.tokens[user])
			return result(s.kv.Range(ctx, rng(key, "")))
		}}
	}
	grant := func(key string) authOp {
		return authOp{"root", "grant rread " + key, func(ctx context.Context, s *authTarget) string {
			return result(s.auth.RoleGrantPermission(s.ctx(ctx, "root"), &pb.AuthRoleGrantPermissionRequest{Name: "rread",
				Perm: &authpb.Permission{PermType: authpb.READ, Key: []byte(key)}}))
		}}
	}
	kv := func(user string, f func(ctx context.Context, s *authTarget) string) authOp {
		return authOp{user, "", func(ctx context.Context, s *authTarget) string { return f(s.ctx(ctx, user), s) }}
	}
	rangeOp := func(user, key string) authOp {
		o := kv(user, func(ctx context.Context, s *authTarget) string { return result(s.kv.Range(ctx, rng(key, ""))) })
		o.desc = "range " + key
		return o
	}
	return []authOp{
		{"", "authenticate root", authenticate("root", "rootpw")},
		{"", "authenticate ur", authenticate("ur", "urpw")},
		{"", "authenticate no such user", authenticate("nobody", "x")},
		{"", "authenticate no-password user", authenticate("unopw", "")},
		rangeOp("ur", "r"), rangeOp("ur", "a"), rangeOp("bogus", "r"),
		peerToken("ur", "r"), peerToken("ur", "a"),
		// The auth revision moves on: ur's token is old.
		grant("q"),
		rangeOp("ur", "r"), rangeOp("ur", "q"),
		{"ur", "put r", func(ctx context.Context, s *authTarget) string { return result(s.kv.Put(s.ctx(ctx, "ur"), put("r"))) }},
		{"ur", "watch r", func(ctx context.Context, s *authTarget) string {
			return watchOnce(ctx, s, "ur", &pb.WatchCreateRequest{Key: []byte("r")})
		}},
		{"ur", "lease ttl 100", func(ctx context.Context, s *authTarget) string { return timeToLive(ctx, s, "ur", 100, false) }},
		{"ur", "user get ur", func(ctx context.Context, s *authTarget) string {
			return result(s.auth.UserGet(s.ctx(ctx, "ur"), &pb.AuthUserGetRequest{Name: "ur"}))
		}},
		{"", "authenticate ur", authenticate("ur", "urpw")},
		rangeOp("ur", "q"), peerToken("ur", "q"),
		{"root", "auth disable", func(ctx context.Context, s *authTarget) string {
			return result(s.auth.AuthDisable(s.ctx(ctx, "root"), &pb.AuthDisableRequest{}))
		}},
		rangeOp("ur", "a"), rangeOp("", "a"),
	}
}

// TestAuthDifferentialJWT runs jwtOps on cairn and stock etcd, both with
// JWT tokens signed by the same RSA key (made here).
func TestAuthDifferentialJWT(t *testing.T) {
	cairn, etcd := binaries(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=RS256,ttl=10m"
	runAuthOps(t, jwtOps(), startServer(t, cairn, "--bcrypt-cost", "4", "--auth-token", opt),
		startServer(t, etcd, "--bcrypt-cost", "4", "--auth-token", opt))
}

package diff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/porttest"
)

// ports are a member's client and peer ports, and the URLs on them.
type ports struct{ client, peer int }

func newPorts(t *testing.T) ports {
	p := porttest.Free(t, 2)
	return ports{p[0], p[1]}
}

func (p ports) clientURL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.client) }
func (p ports) peerURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", p.peer) }

// state is what a user reads of a store: every key at every revision from
// the compaction on (as get -w json shows them, less the header's IDs),
// the leases with their granted TTLs and keys, and HashKV.
func state(t *testing.T, cli *clientv3.Client, from, to int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	var b strings.Builder
	for rev := from; rev <= to; rev++ {
		resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
		if err != nil {
			fmt.Fprintf(&b, "rev %d: %v\n", rev, err)
			continue
		}
		kvs, _ := json.Marshal(resp.Kvs)
		fmt.Fprintf(&b, "rev %d (header %d): %d %s\n", rev, resp.Header.Revision, resp.Count, kvs)
	}
	_, err := cli.Get(ctx, "a", clientv3.WithRev(from-1))
	fmt.Fprintf(&b, "below the compaction: %v\n", err)
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, l := range leases.Leases {
		ids = append(ids, int64(l.ID))
	}
	slices.Sort(ids)
	for _, id := range ids {
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(id), clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, k := range ttl.Keys {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		fmt.Fprintf(&b, "lease %x: granted %d, keys %v\n", id, ttl.GrantedTTL, keys)
	}
	hash, err := cli.HashKV(ctx, cli.Endpoints()[0], to)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "hashkv at %d: %d (compact %d)\n", to, hash.Hash, hash.CompactRevision)
	return b.String()
}

// A user moves a live etcd 3.7.3 to Cairn (stock etcdctl snapshot save,
// cairnutl snapshot restore) and back (stock etcdctl snapshot save against
// Cairn, stock etcdutl snapshot restore, stock etcd): at every step every
// key reads back the same at every revision kept, with the same leases,
// compaction and HashKV.
func TestMigrateEtcdToCairnAndBack(t *testing.T) {
	cairn, etcd := binaries(t)
	stockUtl := etcdutlBinary(t)
	etcdctl := filepath.Join(filepath.Dir(etcd), "etcdctl")
	dir := t.TempDir()

	srcPorts := newPorts(t)
	src := startSingle(t, etcd, "d", filepath.Join(dir, "etcd"), srcPorts.client, srcPorts.peer)
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	long, err := src.Grant(ctx, 3600)
	must(nil, err)
	short, err := src.Grant(ctx, 600)
	must(nil, err)
	for i := range 40 {
		must(src.Put(ctx, fmt.Sprintf("k%02d", i%13), fmt.Sprintf("v%d", i)))
	}
	must(src.Put(ctx, "leased/a", "1", clientv3.WithLease(long.ID)))
	must(src.Put(ctx, "leased/b", "2", clientv3.WithLease(short.ID)))
	must(src.Delete(ctx, "k00", clientv3.WithRange("k03")))
	must(src.Txn(ctx).If(clientv3.Compare(clientv3.Version("k05"), ">", 0)).
		Then(clientv3.OpPut("k05", "txn"), clientv3.OpDelete("k06"), clientv3.OpPut("t", "x")).Commit())
	compacted, err := src.Put(ctx, "k07", "at-compaction")
	must(nil, err)
	must(src.Compact(ctx, compacted.Header.Revision))
	for i := range 10 {
		must(src.Put(ctx, fmt.Sprintf("after/%d", i), "v", clientv3.WithLease(long.ID)))
	}
	last, err := src.Delete(ctx, "after/3")
	must(nil, err)
	from, to := compacted.Header.Revision, last.Header.Revision
	want := state(t, src, from, to)

	save := func(p ports, file string) { snapshotSave(t, etcdctl, p, file) }

	// etcd -> Cairn.
	fromEtcd := filepath.Join(dir, "from-etcd.db")
	save(srcPorts, fromEtcd)
	cairnPorts := newPorts(t)
	snapshotRestore(t, utlBinary, fromEtcd, filepath.Join(dir, "cairn"), cairnPorts)
	c := startSingle(t, cairn, "d", filepath.Join(dir, "cairn"), cairnPorts.client, cairnPorts.peer)
	if got := state(t, c, from, to); got != want {
		t.Fatalf("Cairn restored from etcd's snapshot reads otherwise:\n%s", lineDiff(got, want))
	}
	// Cairn -> etcd.
	fromCairn := filepath.Join(dir, "from-cairn.db")
	save(cairnPorts, fromCairn)
	backPorts := newPorts(t)
	snapshotRestore(t, stockUtl, fromCairn, filepath.Join(dir, "etcd-again"), backPorts)
	back := startSingle(t, etcd, "d", filepath.Join(dir, "etcd-again"), backPorts.client, backPorts.peer)
	if got := state(t, back, from, to); got != want {
		t.Fatalf("etcd restored from Cairn's snapshot reads otherwise (-got +the first etcd):\n%s", lineDiff(got, want))
	}
	// Both take writes at the next revision.
	for _, cli := range []*clientv3.Client{c, back} {
		resp, err := cli.Put(ctx, "next", "1")
		if err != nil || resp.Header.Revision != to+1 {
			t.Fatalf("a put after the restore: %v at revision %v, want %d", err, resp, to+1)
		}
	}
}

// lineDiff shows the lines of got and want that differ, by position.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "-%s\n+%s\n", gl, wl)
		}
	}
	return b.String()
}

// Users, roles, password hashes and the enabled flag go from etcd to
// Cairn and back in snapshot files: the restored cluster is as protected
// as the one backed up, and its users sign in with their passwords.
func TestMigrateAuth(t *testing.T) {
	cairn, etcd := binaries(t)
	stockUtl := etcdutlBinary(t)
	etcdctl := filepath.Join(filepath.Dir(etcd), "etcdctl")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	srcPorts := newPorts(t)
	src := startSingle(t, etcd, "d", filepath.Join(dir, "etcd"), srcPorts.client, srcPorts.peer)
	must(src.Put(ctx, "a/1", "readable"))
	must(src.Put(ctx, "b/1", "secret"))
	must(src.UserAdd(ctx, "root", "rootpw"))
	must(src.RoleAdd(ctx, "root"))
	must(src.UserGrantRole(ctx, "root", "root"))
	must(src.RoleAdd(ctx, "reader"))
	must(src.RoleGrantPermission(ctx, "reader", "a/", clientv3.GetPrefixRangeEnd("a/"), clientv3.PermissionType(clientv3.PermRead)))
	must(src.UserAdd(ctx, "alice", "alicepw"))
	must(src.UserGrantRole(ctx, "alice", "reader"))
	must(src.AuthEnable(ctx))

	// check asserts what each user may do on a restored member.
	check := func(who string, p ports) {
		t.Helper()
		anon, err := clientv3.New(clientv3.Config{Endpoints: []string{p.clientURL()}, DialTimeout: waitDeadline})
		must(nil, err)
		defer anon.Close()
		if _, err := anon.Get(ctx, "a/1"); !errors.Is(err, rpctypes.ErrUserEmpty) {
			t.Errorf("%s: a get with no user: %v, want %v", who, err, rpctypes.ErrUserEmpty)
		}
		alice, err := clientv3.New(clientv3.Config{Endpoints: []string{p.clientURL()}, DialTimeout: waitDeadline,
			Username: "alice", Password: "alicepw"})
		must(nil, err)
		defer alice.Close()
		if resp, err := alice.Get(ctx, "a/1"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "readable" {
			t.Errorf("%s: alice reads a/1: %v, %v", who, resp, err)
		}
		if _, err := alice.Get(ctx, "b/1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s: alice reads b/1: %v, want %v", who, err, rpctypes.ErrPermissionDenied)
		}
		if _, err := clientv3.New(clientv3.Config{Endpoints: []string{p.clientURL()}, DialTimeout: waitDeadline,
			Username: "alice", Password: "wrong"}); !errors.Is(err, rpctypes.ErrAuthFailed) {
			t.Errorf("%s: a wrong password: %v, want %v", who, err, rpctypes.ErrAuthFailed)
		}
	}
	save := func(p ports, file string) { snapshotSave(t, etcdctl, p, file, "--user", "root:rootpw") }
	fromEtcd := filepath.Join(dir, "from-etcd.db")
	save(srcPorts, fromEtcd)
	cairnPorts := newPorts(t)
	snapshotRestore(t, utlBinary, fromEtcd, filepath.Join(dir, "cairn"), cairnPorts)
	startSingle(t, cairn, "d", filepath.Join(dir, "cairn"), cairnPorts.client, cairnPorts.peer)
	check("cairn restored from etcd", cairnPorts)

	fromCairn := filepath.Join(dir, "from-cairn.db")
	save(cairnPorts, fromCairn)
	backPorts := newPorts(t)
	snapshotRestore(t, stockUtl, fromCairn, filepath.Join(dir, "etcd-again"), backPorts)
	startSingle(t, etcd, "d", filepath.Join(dir, "etcd-again"), backPorts.client, backPorts.peer)
	check("etcd restored from cairn", backPorts)
}

// snapshotSave saves a snapshot of the member at p with etcdctl.
func snapshotSave(t *testing.T, etcdctl string, p ports, file string, flags ...string) {
	t.Helper()
	args := append([]string{"--endpoints", p.clientURL()}, flags...)
	stdout, stderr, code := runChild(t, exec.Command(etcdctl, append(args, "snapshot", "save", file)...), commandDeadline)
	if code != 0 || !strings.Contains(stdout, "Snapshot saved at "+file) {
		t.Fatalf("etcdctl snapshot save: exit %d\n%s%s", code, stdout, stderr)
	}
}

// snapshotRestore restores a snapshot file with utl (etcdutl or
// cairnutl) into a one-member cluster named d at p.
func snapshotRestore(t *testing.T, utl, file, dataDir string, p ports) {
	t.Helper()
	stdout, stderr, code := runChild(t, exec.Command(utl, "snapshot", "restore", file, "--data-dir", dataDir,
		"--name", "d", "--initial-cluster", "d="+p.peerURL(), "--initial-advertise-peer-urls", p.peerURL()), commandDeadline)
	if code != 0 {
		t.Fatalf("%s snapshot restore: exit %d\n%s%s", filepath.Base(utl), code, stdout, stderr)
	}
}

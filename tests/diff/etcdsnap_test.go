package diff

// Interoperation of Cairn's snapshot file (internal/etcdsnap) with stock
// etcd 3.7.3: a file `etcdctl snapshot save` takes from stock etcd reads
// back through etcdsnap as etcd serves it, and a file etcdsnap writes is
// one stock `etcdutl snapshot status/restore` accept and a stock etcd
// serves from. Ports 11710-11721.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/etcdsnap"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// stockTools returns stock etcd and the etcdctl beside it, or skips.
func stockTools(t *testing.T) (etcd, etcdctl string) {
	_, etcd = binaries(t)
	etcdctl = filepath.Join(filepath.Dir(etcd), "etcdctl")
	if _, err := os.Stat(etcdctl); err != nil {
		t.Skipf("no etcdctl beside REFERENCE_ETCD_BINARY: %v", err)
	}
	return etcd, etcdctl
}

// etcdutlBinary is stock etcdutl 3.7.3, REFERENCE_ETCDUTL_BINARY, or skips.
func etcdutlBinary(t *testing.T) string {
	b := os.Getenv("REFERENCE_ETCDUTL_BINARY")
	if b == "" {
		t.Skip("REFERENCE_ETCDUTL_BINARY is not set: no stock etcdutl 3.7.3 to check snapshot files with")
	}
	return b
}

// startSingle runs binary (stock etcd or cairn) as the one-member
// cluster name on the given ports with dataDir, and returns a client once
// it serves.
func startSingle(t *testing.T, etcd, name, dataDir string, cport, pport int) *clientv3.Client {
	t.Helper()
	curl, purl := fmt.Sprintf("http://127.0.0.1:%d", cport), fmt.Sprintf("http://127.0.0.1:%d", pport)
	cmd := exec.Command(etcd, "--name", name, "--data-dir", dataDir,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", name+"="+purl, "--log-level", "error")
	cmd.Env = cleanEnv()
	srv := startChild(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", srv, srv.output())
		}
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{curl}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	deadline := time.Now().Add(waitDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "x")
		cancel()
		// A member with auth enabled (a restored one) refuses a get with
		// no user: it serves.
		if err == nil || errors.Is(err, rpctypes.ErrUserEmpty) {
			return cli
		}
		if srv.done() || time.Now().After(deadline) {
			t.Fatalf("%s not serving within %v: %v\n%s", srv, waitDeadline, err, srv.output())
		}
		time.Sleep(50 * time.Millisecond) // polling a starting process
	}
}

func testContext(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), commandDeadline)
	t.Cleanup(cancel)
	return c
}

// kvLine prints what a user sees of a key at a revision.
func kvLine(kv *mvccpb.KeyValue) string {
	return fmt.Sprintf("%q=%q create=%d mod=%d version=%d lease=%x", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

// snapshotState replays the revisions up to rev: the keys alive at rev.
func snapshotState(t *testing.T, revs []snapRev, rev int64) []string {
	alive := map[string]*mvccpb.KeyValue{}
	for _, r := range revs {
		if r.rev.Main > rev {
			break
		}
		if r.rev.Tombstone {
			delete(alive, string(r.kv.Key))
		} else {
			alive[string(r.kv.Key)] = r.kv
		}
	}
	var lines []string
	for _, kv := range alive {
		lines = append(lines, kvLine(kv))
	}
	sort.Strings(lines)
	return lines
}

type snapRev struct {
	rev etcdsnap.Revision
	kv  *mvccpb.KeyValue
}

func readRevisions(t *testing.T, r *etcdsnap.Reader) []snapRev {
	var revs []snapRev
	err := r.Revisions(func(rev etcdsnap.Revision, b []byte) error {
		kv := new(mvccpb.KeyValue)
		if err := proto.Unmarshal(b, kv); err != nil {
			return err
		}
		revs = append(revs, snapRev{rev, kv})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return revs
}

// etcdutlStatus runs `etcdutl snapshot status -w json` on path.
func etcdutlStatus(t *testing.T, etcdutl, path string) etcdsnap.Status {
	stdout, stderr, code := runChild(t, exec.Command(etcdutl, "snapshot", "status", "-w", "json", path), commandDeadline)
	if code != 0 {
		t.Fatalf("etcdutl snapshot status %s: exit %d\n%s%s", path, code, stdout, stderr)
	}
	var st etcdsnap.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("etcdutl snapshot status: %v\n%s", err, stdout)
	}
	return st
}

// TestEtcdSnapshotReadByEtcdsnap: a snapshot stock etcd 3.7.3 saves holds,
// read through etcdsnap, every revision etcd serves (from its compaction
// on), its leases, compaction and meta; and ReadStatus says what stock
// etcdutl says of it.
func TestEtcdSnapshotReadByEtcdsnap(t *testing.T) {
	etcd, etcdctl := stockTools(t)
	dir := t.TempDir()
	cli := startSingle(t, etcd, "d", filepath.Join(dir, "data"), 11710, 11711)
	c := testContext(t)

	put := func(k, v string, opts ...clientv3.OpOption) {
		if _, err := cli.Put(c, k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := cli.Grant(c, 3600)
	if err != nil {
		t.Fatal(err)
	}
	put("a", "1")
	put("a", "2")
	put("b", "1")
	put("c", "1", clientv3.WithLease(lease.ID))
	put("d", "1", clientv3.WithLease(lease.ID))
	if _, err := cli.Delete(c, "b"); err != nil {
		t.Fatal(err)
	}
	txn, err := cli.Txn(c).If(clientv3.Compare(clientv3.Value("a"), "=", "2")).
		Then(clientv3.OpPut("a", "3"), clientv3.OpPut("e", "5", clientv3.WithLease(lease.ID)), clientv3.OpDelete("c")).Commit()
	if err != nil || !txn.Succeeded {
		t.Fatalf("txn: %v, %v", txn, err)
	}
	put("b", "2")
	put("f", "")
	compactAt := txn.Header.Revision
	if _, err := cli.Compact(c, compactAt, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	put("a", "4")
	if _, err := cli.Delete(c, "d"); err != nil {
		t.Fatal(err)
	}
	last, err := cli.Put(c, "g", "7")
	if err != nil {
		t.Fatal(err)
	}
	current := last.Header.Revision
	// etcd writes its storage version at a version check after start.
	var before *clientv3.StatusResponse
	deadline := time.Now().Add(waitDeadline)
	for {
		if before, err = cli.Status(c, cli.Endpoints()[0]); err != nil {
			t.Fatal(err)
		}
		if before.StorageVersion == etcdsnap.StorageVersion {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage version %q after %v", before.StorageVersion, waitDeadline)
		}
		time.Sleep(100 * time.Millisecond) // polling etcd's version check
	}

	snap := filepath.Join(dir, "snap.db")
	if stdout, stderr, code := runChild(t, exec.Command(etcdctl, "--endpoints", cli.Endpoints()[0], "snapshot", "save", snap), commandDeadline); code != 0 {
		t.Fatalf("etcdctl snapshot save: exit %d\n%s%s", code, stdout, stderr)
	}
	after, err := cli.Status(c, cli.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}

	r, err := etcdsnap.Open(snap, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	revs := readRevisions(t, r)
	if got := revs[len(revs)-1].rev.Main; got != current {
		t.Fatalf("the snapshot's last revision is %d, etcd's %d", got, current)
	}
	// Every revision etcd still serves, the snapshot holds.
	for rev := compactAt; rev <= current; rev++ {
		resp, err := cli.Get(c, "", clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, kv := range resp.Kvs {
			want = append(want, kvLine(kv))
		}
		sort.Strings(want)
		if got := snapshotState(t, revs, rev); !reflect.DeepEqual(got, want) {
			t.Errorf("at revision %d the snapshot holds\n%s\netcd serves\n%s", rev, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if _, err := cli.Get(c, "a", clientv3.WithRev(compactAt-1)); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("etcd serves revision %d below its compaction: %v", compactAt-1, err)
	}

	var leases []etcdsnap.Lease
	if err := r.Leases(func(l etcdsnap.Lease) error { leases = append(leases, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []etcdsnap.Lease{{ID: int64(lease.ID), TTL: 3600}}; !reflect.DeepEqual(leases, want) {
		t.Errorf("leases %+v, want %+v", leases, want)
	}

	meta, err := r.Meta()
	if err != nil {
		t.Fatal(err)
	}
	member := before.Header.MemberId
	if meta.ConsistentIndex < before.RaftAppliedIndex || meta.ConsistentIndex > after.RaftAppliedIndex || meta.Term != before.RaftTerm {
		t.Errorf("consistent index %d term %d; etcd applied %d..%d at term %d", meta.ConsistentIndex, meta.Term,
			before.RaftAppliedIndex, after.RaftAppliedIndex, before.RaftTerm)
	}
	meta.ConsistentIndex, meta.Term = 0, 0
	wantMeta := etcdsnap.Meta{ConfState: raftpb.ConfState{Voters: []uint64{member}}, ScheduledCompact: compactAt,
		FinishedCompact: compactAt, StorageVersion: "3.7.0", ClusterVersion: "3.7.0"}
	if !reflect.DeepEqual(meta, wantMeta) {
		t.Errorf("meta %+v, want %+v", meta, wantMeta)
	}
	members, removed, err := r.Members()
	if err != nil {
		t.Fatal(err)
	}
	wantMembers := []membership.Member{{ID: member, Name: "d", PeerURLs: []string{"http://127.0.0.1:11711"}, ClientURLs: []string{"http://127.0.0.1:11710"}}}
	if !reflect.DeepEqual(members, wantMembers) || len(removed) != 0 {
		t.Errorf("members %+v, removed %v; want %+v", members, removed, wantMembers)
	}
	if has, err := r.HasAuth(); has || err != nil {
		t.Errorf("HasAuth: %v, %v", has, err)
	}

	t.Run("status", func(t *testing.T) {
		want := etcdutlStatus(t, etcdutlBinary(t), snap)
		got, err := etcdsnap.ReadStatus(snap)
		if err != nil || got != want {
			t.Fatalf("ReadStatus: %+v, %v; etcdutl: %+v", got, err, want)
		}
	})
}

// model is the history of a store made up by the test: every revision
// with its KeyValue, and the keys alive after each main revision.
type model struct {
	revs   []snapRev
	states map[int64][]string // main revision -> kvLines alive
	leases []etcdsnap.Lease
}

// makeHistory makes n write transactions of puts (some under a lease),
// overwrites, deletes and multi-change txns on a few keys, from seed.
func makeHistory(seed uint64, n int, leases []etcdsnap.Lease) *model {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &model{states: map[int64][]string{}, leases: leases}
	alive := map[string]*mvccpb.KeyValue{}
	for main := int64(2); main < int64(n)+2; main++ {
		changes := 1
		if rng.IntN(5) == 0 {
			changes = 2 + rng.IntN(3) // a txn
		}
		used := map[string]bool{}
		for sub := int64(0); sub < int64(changes); sub++ {
			key := fmt.Sprintf("k%02d", rng.IntN(24))
			for used[key] {
				key = fmt.Sprintf("k%02d", rng.IntN(24))
			}
			used[key] = true
			prev := alive[key]
			if prev != nil && rng.IntN(4) == 0 {
				delete(alive, key)
				m.revs = append(m.revs, snapRev{etcdsnap.Revision{Main: main, Sub: sub, Tombstone: true}, &mvccpb.KeyValue{Key: []byte(key)}})
				continue
			}
			kv := &mvccpb.KeyValue{Key: []byte(key), Value: fmt.Appendf(nil, "v%d.%d", main, sub), CreateRevision: main, ModRevision: main, Version: 1}
			if prev != nil {
				kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
			}
			if rng.IntN(3) == 0 {
				kv.Lease = leases[rng.IntN(len(leases))].ID
			}
			alive[key] = kv
			m.revs = append(m.revs, snapRev{etcdsnap.Revision{Main: main, Sub: sub}, kv})
		}
		var lines []string
		for _, kv := range alive {
			lines = append(lines, kvLine(kv))
		}
		sort.Strings(lines)
		m.states[main] = lines
	}
	return m
}

// compact drops what a compaction at rev removes: each key's revisions at
// or below rev but its latest, and that one too if it is a delete.
func (m *model) compact(rev int64) {
	latest := map[string]etcdsnap.Revision{}
	for _, r := range m.revs {
		if r.rev.Main <= rev {
			latest[string(r.kv.Key)] = r.rev
		}
	}
	kept := m.revs[:0]
	for _, r := range m.revs {
		if r.rev.Main > rev || (latest[string(r.kv.Key)] == r.rev && !r.rev.Tombstone) {
			kept = append(kept, r)
		}
	}
	m.revs = kept
}

// TestEtcdsnapFileRestoredByEtcd: a file etcdsnap writes (with the trailer
// etcd's server appends) is one stock etcdutl reports on as ReadStatus
// does and restores, and a stock etcd started on the restored data dir
// serves the same keys, revisions, versions and leases, and refuses reads
// below the compaction.
func TestEtcdsnapFileRestoredByEtcd(t *testing.T) {
	etcd, etcdctl := stockTools(t)
	etcdutl := etcdutlBinary(t)
	dir := t.TempDir()

	leases := []etcdsnap.Lease{{ID: 0x694d9b3a4c5e1f01, TTL: 3600}, {ID: 0x694d9b3a4c5e1f02, TTL: 3600, RemainingTTL: 1800}, {ID: 77, TTL: 7200}}
	m := makeHistory(1, 300, leases)
	const compactAt = 150
	m.compact(compactAt)
	last := m.revs[len(m.revs)-1].rev.Main

	snap := filepath.Join(dir, "snap.db")
	w, err := etcdsnap.Create(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, r := range m.revs {
		b, err := proto.Marshal(r.kv)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.PutRevision(r.rev, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range leases {
		if err := w.PutLease(l); err != nil {
			t.Fatal(err)
		}
	}
	const oldMember = 0x1234abcd
	if err := w.PutMember(membership.Member{ID: oldMember, Name: "old", PeerURLs: []string{"http://127.0.0.1:2380"}, ClientURLs: []string{"http://127.0.0.1:2379"}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(etcdsnap.Meta{ConsistentIndex: 900, Term: 4, ConfState: raftpb.ConfState{Voters: []uint64{oldMember}},
		ScheduledCompact: compactAt, FinishedCompact: compactAt, ClusterVersion: "3.7.0"}); err != nil {
		t.Fatal(err)
	}
	if err := etcdsnap.AppendHash(snap); err != nil {
		t.Fatal(err)
	}

	got, err := etcdsnap.ReadStatus(snap)
	if err != nil {
		t.Fatal(err)
	}
	if want := etcdutlStatus(t, etcdutl, snap); got != want {
		t.Fatalf("ReadStatus %+v, etcdutl %+v", got, want)
	}
	if got.Revision != last || got.Version != "3.7.0" {
		t.Fatalf("status %+v, want revision %d, version 3.7.0", got, last)
	}

	restored := filepath.Join(dir, "r.etcd")
	purl := "http://127.0.0.1:11721"
	if stdout, stderr, code := runChild(t, exec.Command(etcdutl, "snapshot", "restore", snap, "--name", "r",
		"--data-dir", restored, "--initial-cluster", "r="+purl, "--initial-advertise-peer-urls", purl), commandDeadline); code != 0 {
		t.Fatalf("etcdutl snapshot restore: exit %d\n%s%s", code, stdout, stderr)
	}
	cli := startSingle(t, etcd, "r", restored, 11720, 11721)
	ep := cli.Endpoints()[0]
	c := testContext(t)

	// What etcdctl shows: the same keys, revisions, versions and leases.
	stdout, stderr, code := runChild(t, exec.Command(etcdctl, "--endpoints", ep, "get", "", "--prefix", "-w", "json"), commandDeadline)
	if code != 0 {
		t.Fatalf("etcdctl get: exit %d\n%s%s", code, stdout, stderr)
	}
	var resp struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
		Kvs []struct {
			Key            []byte `json:"key"`
			Value          []byte `json:"value"`
			CreateRevision int64  `json:"create_revision"`
			ModRevision    int64  `json:"mod_revision"`
			Version        int64  `json:"version"`
			Lease          int64  `json:"lease"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(stdout), &resp); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	var served []string
	for _, kv := range resp.Kvs {
		served = append(served, kvLine(&mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
			ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}))
	}
	sort.Strings(served)
	if want := m.states[last]; !reflect.DeepEqual(served, want) || resp.Header.Revision != last {
		t.Fatalf("etcd serves at revision %d\n%s\nwrote at %d\n%s", resp.Header.Revision, strings.Join(served, "\n"), last, strings.Join(want, "\n"))
	}
	// Every revision from the compaction on, as the history had it.
	for rev := int64(compactAt); rev <= last; rev++ {
		resp, err := cli.Get(c, "", clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range resp.Kvs {
			got = append(got, kvLine(kv))
		}
		sort.Strings(got)
		if want := m.states[rev]; !reflect.DeepEqual(got, want) {
			t.Fatalf("at revision %d etcd serves\n%s\nthe history had\n%s", rev, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	stdout, stderr, code = runChild(t, exec.Command(etcdctl, "--endpoints", ep, "get", "k00", "--rev", strconv.Itoa(compactAt-1)), commandDeadline)
	if code == 0 || !strings.Contains(stderr, "required revision has been compacted") {
		t.Fatalf("get below the compaction: exit %d\n%s%s", code, stdout, stderr)
	}

	stdout, stderr, code = runChild(t, exec.Command(etcdctl, "--endpoints", ep, "lease", "list"), commandDeadline)
	if code != 0 {
		t.Fatalf("etcdctl lease list: exit %d\n%s%s", code, stdout, stderr)
	}
	var wantList []string
	for _, l := range leases {
		wantList = append(wantList, fmt.Sprintf("%016x", l.ID))
	}
	listed := strings.Fields(stdout)
	if len(listed) < 3 || strings.Join(listed[:3], " ") != fmt.Sprintf("found %d leases", len(leases)) ||
		!sameSet(listed[3:], wantList) {
		t.Fatalf("lease list:\n%s\nwant leases %v", stdout, wantList)
	}
	// Each lease holds the keys alive under it, and its TTL: a
	// checkpointed remaining TTL is where etcd starts the lease's clock.
	for _, l := range leases {
		ttl, err := cli.TimeToLive(c, clientv3.LeaseID(l.ID), clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		var keys, want []string
		for _, k := range ttl.Keys {
			keys = append(keys, string(k))
		}
		for _, line := range m.states[last] {
			if strings.HasSuffix(line, fmt.Sprintf("lease=%x", l.ID)) {
				key, _ := strconv.Unquote(strings.SplitN(line, "=", 2)[0])
				want = append(want, key)
			}
		}
		limit := l.TTL
		if l.RemainingTTL > 0 {
			limit = l.RemainingTTL
		}
		if ttl.GrantedTTL != l.TTL || ttl.TTL > limit || ttl.TTL < limit-120 || !sameSet(keys, want) {
			t.Errorf("lease %x: granted %d, TTL %d, keys %v; want granted %d, TTL just under %d, keys %v",
				l.ID, ttl.GrantedTTL, ttl.TTL, keys, l.TTL, limit, want)
		}
	}
	// And it goes on from there.
	put, err := cli.Put(c, "new", "1")
	if err != nil || put.Header.Revision != last+1 {
		t.Fatalf("a put after the restore: %v, %v; want revision %d", put, err, last+1)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

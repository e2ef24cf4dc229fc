package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// utl runs cairnutl and returns what it printed.
func utl(t *testing.T, args ...string) ctlOut {
	t.Helper()
	stdout, stderr, code := runChild(t, exec.Command(utlBinary, args...), commandDeadline)
	return ctlOut{stdout, stderr, code}
}

// snapshotStatus is cairnutl snapshot status -w json (etcdutl's fields).
type snapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

// restoreCluster restores file into c's members' data directories (not
// started), as a user would for a new cluster: the same file, each
// member's own name and URLs.
func restoreCluster(t *testing.T, c *cluster, file string, extra ...string) {
	t.Helper()
	var initial []string
	for _, m := range c.members {
		initial = append(initial, m.name+"="+m.peerURL)
	}
	for _, m := range c.members {
		args := append([]string{"snapshot", "restore", file, "--name", m.name, "--data-dir", m.dataDir,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "e2e-" + t.Name(),
			"--initial-advertise-peer-urls", m.peerURL}, extra...)
		if out := utl(t, args...); out.code != 0 {
			t.Fatalf("cairnutl %v: exit %d\n%s%s", args, out.code, out.stdout, out.stderr)
		}
	}
}

// getJSON is a get of everything at rev (0: the latest), as etcdctl -w
// json prints it, less the header, which names the member and cluster.
func getAll(t *testing.T, cli *clientv3.Client, rev int64) string {
	t.Helper()
	resp, err := cli.Get(ctxT(t), "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(struct {
		Kvs   any
		Count int64
	}{resp.Kvs, resp.Count})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A backup of a 3-member cluster taken under write load (cairnctl
// snapshot save: clientv3's snapshot package, which stock etcdctl runs),
// restored by cairnutl into a new 3-member cluster, serves the same keys
// with the same revisions, versions and leases as the old cluster at the
// backup's revision, and hashes the same (HashKV).
func TestBackupRestoreCluster(t *testing.T) {
	old := newCluster(t, 3)
	cli := old.client()
	ctx := ctxT(t)
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("leased/%d", i), "v", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if _, err := cli.Put(ctx, fmt.Sprintf("old/%d", i%10), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	del, err := cli.Delete(ctx, "old/0", clientv3.WithRange("old/3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, del.Header.Revision-5); err != nil {
		t.Fatal(err)
	}
	load := startLoad(cli, 4)
	load.waitAcked(200, waitDeadline)
	file := filepath.Join(t.TempDir(), "backup.db")
	leader := old.members[old.waitLeader()]
	out := ctl(t, leader, "", nil, "snapshot", "save", file)
	load.waitAcked(len(load.acked)+100, waitDeadline)
	load.halt()
	if out.code != 0 || !strings.HasPrefix(out.stdout, "Snapshot saved at "+file+"\n") {
		t.Fatalf("snapshot save: exit %d, %q %q", out.code, out.stdout, out.stderr)
	}
	out = utl(t, "snapshot", "status", file, "-w", "json")
	var st snapshotStatus
	if err := json.Unmarshal([]byte(out.stdout), &st); out.code != 0 || err != nil {
		t.Fatalf("snapshot status: exit %d, %q %q (%v)", out.code, out.stdout, out.stderr, err)
	}
	if st.Revision <= del.Header.Revision || st.Version != "3.7.0" {
		t.Fatalf("snapshot status %+v: want a revision past %d, storage version 3.7.0", st, del.Header.Revision)
	}

	restored := newUnstartedCluster(t, 3)
	restoreCluster(t, restored, file)
	for _, m := range restored.members {
		m.start()
	}
	restored.waitLeader()
	rcli := restored.client()
	waitMembersPublished(t, rcli, 3)
	resp, err := rcli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != st.Revision {
		t.Fatalf("restored cluster at revision %d, the snapshot at %d", resp.Header.Revision, st.Revision)
	}
	if got, want := getAll(t, rcli, 0), getAll(t, cli, st.Revision); got != want {
		t.Fatalf("restored keys differ from the old cluster's at revision %d:\n%s\n%s", st.Revision, got, want)
	}
	// History before the backup is there too, down to the compaction.
	if got, want := getAll(t, rcli, del.Header.Revision-1), getAll(t, cli, del.Header.Revision-1); got != want {
		t.Fatalf("restored history at revision %d differs:\n%s\n%s", del.Header.Revision-1, got, want)
	}
	if _, err := rcli.Get(ctx, "old/1", clientv3.WithRev(del.Header.Revision-6)); err == nil {
		t.Fatal("a read below the compaction succeeded on the restored cluster")
	}
	ttl, err := rcli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || ttl.GrantedTTL != 3600 || len(ttl.Keys) != 20 {
		t.Fatalf("restored lease: %+v, %v; want TTL 3600 with its 20 keys", ttl, err)
	}
	for i, m := range restored.members {
		h1, err1 := m.client().HashKV(ctx, m.clientURL, st.Revision)
		h2, err2 := old.members[i].client().HashKV(ctx, old.members[i].clientURL, st.Revision)
		if err1 != nil || err2 != nil || h1.Hash != h2.Hash {
			t.Fatalf("HashKV at %d: restored %s %v (%v), old %v (%v)", st.Revision, m.name, h1, err1, h2, err2)
		}
	}
	// And the restored cluster takes writes.
	if _, err := rcli.Put(ctx, "after", "restore"); err != nil {
		t.Fatal(err)
	}
}

// Damaged or mistaken restores are refused with a clear error and leave
// no data directory behind.
func TestRestoreRefusesDamage(t *testing.T) {
	c := newCluster(t, 1)
	cli := c.client()
	for i := range 100 {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("k%d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	if out := ctl(t, c.members[0], "", nil, "snapshot", "save", file); out.code != 0 {
		t.Fatalf("snapshot save: %+v", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped.db")
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x40
	truncated := filepath.Join(dir, "truncated.db")
	for name, b := range map[string][]byte{flipped: bad, truncated: data[:len(data)/2]} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(file string, extra ...string) (ctlOut, string) {
		target := filepath.Join(t.TempDir(), "restored")
		return utl(t, append([]string{"snapshot", "restore", file, "--data-dir", target}, extra...)...), target
	}
	for _, tc := range []struct {
		file  string
		extra []string
		want  string
	}{
		{flipped, nil, "expected sha256"},
		{truncated, nil, ""},
		{file, []string{"--bump-revision", "10"}, "--mark-compacted required"},
		{file, []string{"--name", "x", "--initial-cluster", "y=http://127.0.0.1:1"}, "couldn't find local name"},
	} {
		out, target := restore(tc.file, tc.extra...)
		if out.code == 0 || !strings.Contains(out.stderr, "Error: ") || !strings.Contains(out.stderr, tc.want) {
			t.Errorf("restore %s %v: exit %d, stderr %q; want an error naming %q", filepath.Base(tc.file), tc.extra, out.code, out.stderr, tc.want)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("restore %s %v left %s behind (%v)", filepath.Base(tc.file), tc.extra, target, err)
		}
	}
	// Into a data directory that holds something: refused, untouched.
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := utl(t, "snapshot", "restore", file, "--data-dir", full); out.code == 0 || !strings.Contains(out.stderr, "not empty") {
		t.Errorf("restore into a non-empty dir: exit %d, %q", out.code, out.stderr)
	}
	if _, err := os.Stat(filepath.Join(full, "keep")); err != nil {
		t.Errorf("restore into a non-empty dir removed its file: %v", err)
	}
}

// etcdctl's downgrade commands get etcd's answers to a bad target, a
// clear refusal of a target etcd would accept (no etcd binary can run on
// a Cairn data directory), and etcd's answer to a cancel with no
// downgrade in progress.
func TestDowngradeRefused(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, want string
	}{
		{[]string{"downgrade", "validate", "3.6"}, 1, "", "cannot downgrade the cluster to 3.6: etcd 3.6 cannot run on a Cairn member's data directory"},
		{[]string{"downgrade", "enable", "3.6.0"}, 1, "", "cannot downgrade the cluster to 3.6"},
		{[]string{"downgrade", "validate", "3.5"}, 1, "", "Error: etcdserver: invalid downgrade target version\n"},
		{[]string{"downgrade", "enable", "3.7"}, 1, "", "Error: etcdserver: invalid downgrade target version\n"},
		{[]string{"downgrade", "validate", "three"}, 1, "", "Error: etcdserver: wrong downgrade target version format\n"},
		{[]string{"downgrade", "cancel"}, 0, "Downgrade cancel success, cluster version 3.7\n", ""},
	} {
		out := ctl(t, m, "", nil, tc.args...)
		if out.code != tc.code || out.stdout != tc.stdout || !strings.Contains(out.stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr holding %q",
				tc.args, out.code, out.stdout, out.stderr, tc.code, tc.stdout, tc.want)
		}
	}
}

// cairnutl's offline commands on a stopped member: hashkv of its data
// dir and of a backup is the hash the member served, defrag leaves it
// unchanged, and the member serves the same after a restart; on a
// running member's data dir, hashkv gives up with a clear error.
func TestUtlOffline(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	ctx := ctxT(t)
	for i := range 200 {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%d", i%20), strings.Repeat("v", 1000)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Delete(ctx, "k1", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision-50, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	want, err := cli.HashKV(ctx, m.clientURL, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantLine := fmt.Sprintf("%d, %d, %d\n", want.Hash, want.Header.Revision, want.CompactRevision)
	file := filepath.Join(t.TempDir(), "backup.db")
	if out := ctl(t, m, "", nil, "snapshot", "save", file); out.code != 0 {
		t.Fatalf("snapshot save: %+v", out)
	}
	if out := utl(t, "hashkv", "--timeout", "1s", m.dataDir); out.code == 0 || !strings.Contains(out.stderr, "in use") {
		t.Errorf("hashkv of a running member's data dir: exit %d, %q %q", out.code, out.stdout, out.stderr)
	}
	m.kill()
	for _, args := range [][]string{{"hashkv", m.dataDir}, {"hashkv", file}, {"defrag", "--data-dir", m.dataDir}, {"hashkv", m.dataDir}} {
		out := utl(t, args...)
		if args[0] == "defrag" {
			// etcdutl's log line, which etcd's TestCtlV3DefragOffline waits for.
			if out.code != 0 || out.stdout != "" || !strings.Contains(out.stderr, "finished defragmenting directory") {
				t.Fatalf("cairnutl %v: exit %d, %q %q", args, out.code, out.stdout, out.stderr)
			}
			continue
		}
		if out.code != 0 || out.stdout != wantLine {
			t.Fatalf("cairnutl %v: exit %d, %q (stderr %q), want %q", args, out.code, out.stdout, out.stderr, wantLine)
		}
	}
	m.start()
	c.waitLeader()
	got, err := m.client().HashKV(ctx, m.clientURL, 0)
	if err != nil || got.Hash != want.Hash {
		t.Fatalf("after an offline defrag: HashKV %v (%v), want %d", got, err, want.Hash)
	}
}

// A backup keeps the alarms raised when it was taken, and a restore keeps
// them, as etcd's do: the restored member refuses writes until `alarm
// disarm`.
func TestBackupKeepsAlarms(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	if _, err := cli.Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	mc := pb.NewMaintenanceClient(cli.ActiveConnection())
	if _, err := mc.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 42, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	if out := ctl(t, m, "", nil, "snapshot", "save", file); out.code != 0 {
		t.Fatalf("snapshot save: %+v", out)
	}
	restored := newUnstartedCluster(t, 1)
	restoreCluster(t, restored, file)
	restored.members[0].start()
	restored.waitLeader()
	r := restored.members[0]
	ctlOK(t, r, "memberID:42 alarm:NOSPACE\n", "alarm", "list")
	if _, err := r.client().Put(ctxT(t), "k", "w"); err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Fatalf("a put with NOSPACE restored: %v", err)
	}
	ctlOK(t, r, "memberID:42 alarm:NOSPACE\n", "alarm", "disarm")
	if _, err := r.client().Put(ctxT(t), "k", "w"); err != nil {
		t.Fatalf("a put after alarm disarm: %v", err)
	}
}

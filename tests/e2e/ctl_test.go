package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/version"
)

// ctlOut is what one cairnctl run printed, and its exit code.
type ctlOut struct {
	stdout, stderr string
	code           int
}

// ctl runs cairnctl against m, with stdin, and returns what it printed.
func ctl(t *testing.T, m *member, stdin string, env []string, args ...string) ctlOut {
	t.Helper()
	cmd := exec.Command(ctlBinary, append([]string{"--endpoints=" + m.clientURL}, args...)...)
	cmd.Env = append(ctlEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	stdout, stderr, code := runChild(t, cmd, commandDeadline)
	return ctlOut{stdout, stderr, code}
}

// ctlOK runs cairnctl and requires it to succeed and print want.
func ctlOK(t *testing.T, m *member, want string, args ...string) {
	t.Helper()
	if out := ctl(t, m, "", nil, args...); out.code != 0 || out.stdout != want {
		t.Fatalf("cairnctl %v: exit %d, printed %q (stderr %q), want %q", args, out.code, out.stdout, out.stderr, want)
	}
}

// ctlEnv is the test's environment less the variables cairnctl reads.
func ctlEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCDCTL_") && !strings.HasPrefix(kv, "CAIRNCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

// bgCtl is a command running in the background (a watch, a
// keep-alive), its stdin open until it is stopped.
type bgCtl struct {
	*child
	stdin io.WriteCloser
}

// startCtl starts cairnctl against m in the background, stdin written to
// it.
func startCtl(t *testing.T, m *member, stdin string, args ...string) *bgCtl {
	t.Helper()
	return startBg(t, exec.Command(ctlBinary, append([]string{"--endpoints=" + m.clientURL}, args...)...), stdin)
}

// startBg starts cmd in the background, stdin written to it.
func startBg(t *testing.T, cmd *exec.Cmd, stdin string) *bgCtl {
	t.Helper()
	cmd.Env = ctlEnv()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &bgCtl{startChild(t, cmd), in}
	if _, err := io.WriteString(b.stdin, stdin); err != nil {
		t.Fatal(err)
	}
	return b
}

// stop interrupts the process and waits for it.
func (b *bgCtl) stop(t *testing.T) {
	t.Helper()
	b.interrupt(t)
	b.stdin.Close()
}

// simpleKVs is how get and watch print keys and values by default.
func simpleKVs(resp *clientv3.GetResponse) string {
	var s strings.Builder
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&s, "%s\n%s\n", kv.Key, kv.Value)
	}
	return s.String()
}

// TestCtlSeeds runs every etcdctl command in ../shared/seeds as written
// there, with cairnctl in place of etcdctl, and checks what each prints.
// Some are not valid etcdctl (the README lists the spellings cairnctl
// accepts beyond etcdctl's): watch --from-key/--revision, --output, get
// --ver, txn i, decimal lease IDs, watch -i with its watches as arguments.
func TestCtlSeeds(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	ctx := ctxT(t)
	const watchers = "etcd_debugging_mvcc_watcher_total"

	// 000, section 1.
	ctlOK(t, m, "cairnctl version: "+version.Etcd+"\nAPI version: "+version.API+"\n", "version")
	ctlOK(t, m, "OK\n", "put", "mykey", "initialvalue")
	ctlOK(t, m, "OK\nmykey\ninitialvalue\n", "put", "mykey", "newvalue", "--prev-kv")
	resp, err := cli.Get(ctx, "mykey")
	if err != nil {
		t.Fatal(err)
	}
	ctlOK(t, m, "mykey\ninitialvalue\n", "get", "mykey", fmt.Sprintf("--rev=%d", resp.Kvs[0].CreateRevision))

	// Section 2: watches.
	w := startCtl(t, m, "", "watch", "key")
	waitMetric(t, m, watchers, 1)
	ctlOK(t, m, "OK\n", "put", "key", "v1")
	w.waitOutput(t, "PUT\nkey\nv1\n")
	w.stop(t)
	waitMetric(t, m, watchers, 0)

	w = startCtl(t, m, "", "watch", "--prefix", "key-prefix")
	waitMetric(t, m, watchers, 1)
	ctlOK(t, m, "OK\n", "put", "key-prefix/a", "1")
	w.waitOutput(t, "PUT\nkey-prefix/a\n1\n")
	w.stop(t)
	waitMetric(t, m, watchers, 0)

	// --from-key and --revision: every change to keys from "key" on,
	// since revision 5, as the official client sees them.
	var want strings.Builder
	now, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	for _, ev := range collectEventsUntil(t, cli.Watch(wctx, "key", clientv3.WithFromKey(), clientv3.WithRev(5)), now.Header.Revision) {
		fmt.Fprintf(&want, "%s\n%s\n%s\n", ev.Type, ev.Kv.Key, ev.Kv.Value)
	}
	wcancel()
	if !strings.Contains(want.String(), "key-prefix/a") {
		t.Fatalf("history from revision 5 lacks key-prefix/a: %q", want.String())
	}
	w = startCtl(t, m, "", "watch", "--from-key", "key", "--revision", "5")
	w.waitOutput(t, want.String())
	w.stop(t)
	waitMetric(t, m, watchers, 0)

	w = startCtl(t, m, "", "watch", "--prefix", "key-prefix", "--output=json")
	waitMetric(t, m, watchers, 1)
	ctlOK(t, m, "OK\n", "put", "key-prefix/b", "2")
	w.waitFor(t, "a line", func(out string) bool { return strings.HasSuffix(out, "\n") })
	var jw struct {
		Events []struct {
			Kv struct {
				Key, Value []byte
			} `json:"kv"`
		}
	}
	if err := json.Unmarshal([]byte(w.stdout.String()), &jw); err != nil || len(jw.Events) != 1 ||
		string(jw.Events[0].Kv.Key) != "key-prefix/b" || string(jw.Events[0].Kv.Value) != "2" {
		t.Fatalf("watch --output=json printed %q (%v)", w.stdout.String(), err)
	}
	w.stop(t)
	waitMetric(t, m, watchers, 0)

	// Section 3: a lease, named by its decimal ID as the seed does.
	requested := time.Now()
	out := ctl(t, m, "", nil, "lease", "grant", "60", "-w", "json")
	var grant struct{ ID int64 }
	if err := json.Unmarshal([]byte(out.stdout), &grant); err != nil || grant.ID == 0 {
		t.Fatalf("lease grant -w json printed %q", out.stdout)
	}
	dec, hex := fmt.Sprint(grant.ID), fmt.Sprintf("%016x", grant.ID) // as etcdctl prints lease IDs
	ctlOK(t, m, "OK\n", "put", "--lease="+dec, "key", "value")
	out = ctl(t, m, "", nil, "lease", "timetolive", dec)
	requireRemaining(t, out.stdout, `^lease `+hex+` granted with TTL\(60s\), remaining\((\d+)s\)\n$`, 60, time.Since(requested))
	w = startCtl(t, m, "", "lease", "keep-alive", dec)
	w.waitOutput(t, "lease "+hex+" keepalived with TTL(60)\n")
	w.stop(t)
	ctlOK(t, m, "lease "+hex+" revoked\n", "lease", "revoke", dec)
	ctlOK(t, m, "", "get", "key")

	// The leader key taken over by a second lease holder.
	ctlOK(t, m, "OK\n", "--endpoints="+m.clientURL, "put", "/key1", "value1")
	ctlOK(t, m, "/key1\nvalue1\n", "--endpoints="+m.clientURL, "get", "/key1")
	grantHex := func(ttl string) string {
		out := ctl(t, m, "", nil, "lease", "grant", ttl)
		id := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(` + ttl + `s\)\n$`).FindStringSubmatch(out.stdout)
		if id == nil {
			t.Fatalf("lease grant printed %q", out.stdout)
		}
		return id[1]
	}
	a := grantHex("120")
	ctlOK(t, m, "OK\n", "put", "/leader", "A", "--lease="+a)
	ctlOK(t, m, "/leader\nA\n", "get", "/leader")
	ka := startCtl(t, m, "", "lease", "keep-alive", a)
	ka.waitOutput(t, "lease "+a+" keepalived with TTL(120)\n")
	b := grantHex("120")
	ctlOK(t, m, "OK\n", "put", "/leader", "B", "--lease="+b)
	ctlOK(t, m, "/leader\nB\n", "get", "/leader")
	ka.stop(t)

	// 001: ETCDCTL_API=3, help, paths as keys, a watch on them.
	if out := ctl(t, m, "", []string{"ETCDCTL_API=3"}); out.code != 0 || !strings.HasPrefix(out.stdout, "A simple command line client for Cairn (and etcd3).\n\nUsage:\n  cairnctl [command]\n") ||
		!strings.Contains(out.stdout, "\nKey-value commands\n") {
		t.Fatalf("cairnctl alone printed %q %q", out.stdout, out.stderr)
	}
	ctlOK(t, m, "OK\n", "put", "name", "yuanya")
	ctlOK(t, m, "name\nyuanya\n", "get", "name")
	ctlOK(t, m, "1\n", "del", "name")
	ctlOK(t, m, "OK\n", "put", "/cron/jobs/job1", "{一段json...job1}")
	ctlOK(t, m, "OK\n", "put", "/cron/jobs/job2", "{一段json...job2}")
	ctlOK(t, m, "/cron/jobs/job1\n{一段json...job1}\n", "get", "/cron/jobs/job1")
	if out := ctl(t, m, "", nil, "get", "-h"); out.code != 0 || !strings.Contains(out.stdout, "\n      --prefix ") || !strings.Contains(out.stdout, "\n      --from-key ") {
		t.Fatalf("get -h printed %q", out.stdout)
	}
	ctlOK(t, m, "/cron/jobs/job1\n{一段json...job1}\n/cron/jobs/job2\n{一段json...job2}\n", "get", "/cron/jobs/", "--prefix")
	if out := ctl(t, m, "", nil, "watch", "-h"); out.code != 0 || !strings.HasPrefix(out.stdout, "Watches events stream on keys or prefixes\n\nUsage:\n  cairnctl watch ") {
		t.Fatalf("watch -h printed %q", out.stdout)
	}
	w = startCtl(t, m, "", "watch", "/cron/jobs/", "--prefix")
	waitMetric(t, m, watchers, 1)
	ctlOK(t, m, "OK\n", "put", "/cron/jobs/job2", "{...job2}")
	ctlOK(t, m, "1\n", "del", "/cron/jobs/job2")
	w.waitOutput(t, "PUT\n/cron/jobs/job2\n{...job2}\nDELETE\n/cron/jobs/job2\n\n")
	w.stop(t)
	waitMetric(t, m, watchers, 0)

	// 002: a key's versions, a transaction typed as "txn i", and a put
	// whose value looks like a lease flag (etcdctl's meaning: a value).
	ctlOK(t, m, "OK\n", "put", "key", "ff")
	ctlOK(t, m, "key\nff\n", "get", "key")
	if out := ctl(t, m, "", nil, "get", "key", "-w", "json"); !strings.Contains(out.stdout, `"kvs":[{"key":"a2V5"`) {
		t.Fatalf("get -w json printed %q", out.stdout)
	}
	for {
		r, err := cli.Get(ctx, "key")
		if err != nil {
			t.Fatal(err)
		}
		if v := r.Kvs[0].Version; v >= 50 {
			break
		} else if _, err := cli.Put(ctx, "key", fmt.Sprintf("at-version-%d", v+1)); err != nil {
			t.Fatal(err)
		}
	}
	ctlOK(t, m, "key\nat-version-47\n", "get", "key", "--ver=47")
	if out := ctl(t, m, "", nil, "get", "key", "--ver=51"); out.code != 1 || out.stderr != "Error: key \"key\" has no version 51: its version is 50\n" {
		t.Fatalf("get --ver=51: exit %d, %q", out.code, out.stderr)
	}
	ctlOK(t, m, "OK\n", "put", "key", "ff")
	if out := ctl(t, m, "value(\"key\") = \"ff\"\n\nput key helo\nget key\n\ndel key\n\n", nil, "txn", "i"); out.code != 0 || out.stdout !=
		"compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n\nkey\nhelo\n" {
		t.Fatalf("txn i: exit %d, printed %q %q", out.code, out.stdout, out.stderr)
	}
	grantHex("30")
	ctlOK(t, m, "OK\n", "put", "a", "lease=694d85bd1f1b6729")
	ctlOK(t, m, "a\nlease=694d85bd1f1b6729\n", "get", "a")

	// 003: the rest of the everyday commands.
	ctlOK(t, m, "OK\n", "put", "key", "value")
	ctlOK(t, m, "key\nvalue\n", "get", "key")
	two, err := cli.Get(ctx, "key", clientv3.WithPrefix(), clientv3.WithLimit(2))
	if err != nil || len(two.Kvs) != 2 {
		t.Fatal(err, two)
	}
	ctlOK(t, m, simpleKVs(two), "get", "--prefix", "key", "--limit=2")
	requested = time.Now()
	id := grantHex("10")
	ctlOK(t, m, "OK\n", "put", "key", "value", "--lease="+id)
	out = ctl(t, m, "", nil, "lease", "timetolive", id)
	requireRemaining(t, out.stdout, `^lease `+id+` granted with TTL\(10s\), remaining\((\d+)s\)\n$`, 10, time.Since(requested))
	ka = startCtl(t, m, "", "lease", "keep-alive", id)
	ka.waitOutput(t, "lease "+id+" keepalived with TTL(10)\n")
	ka.stop(t)
	ctlOK(t, m, "lease "+id+" revoked\n", "lease", "revoke", id)
	ctlOK(t, m, "0\n", "del", "key")
	ctlOK(t, m, "OK\n", "put", "key", "value")
	ctlOK(t, m, "1\n", "del", "key")
	all, err := cli.Get(ctx, "key", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var values strings.Builder
	for _, kv := range all.Kvs {
		fmt.Fprintf(&values, "%s\n", kv.Value)
	}
	ctlOK(t, m, values.String(), "get", "--prefix", "key", "--print-value-only")
	at2, err := cli.Get(ctx, "key", clientv3.WithRev(2))
	if err != nil {
		t.Fatal(err)
	}
	ctlOK(t, m, simpleKVs(at2), "get", "key", "--rev=2")

	// `watch -i \watch key1 \watch key2`: the shell passes "watch -i watch
	// key1 watch key2"; both keys are watched, and stdin is read after.
	w = startCtl(t, m, "", "watch", "-i", "watch", "key1", "watch", "key2")
	waitMetric(t, m, watchers, 2)
	ctlOK(t, m, "OK\n", "put", "key1", "a")
	w.waitOutput(t, "PUT\nkey1\na\n")
	ctlOK(t, m, "OK\n", "put", "key2", "b")
	w.waitOutput(t, "PUT\nkey1\na\nPUT\nkey2\nb\n")
	io.WriteString(w.stdin, "watch key3\n")
	waitMetric(t, m, watchers, 3)
	ctlOK(t, m, "OK\n", "put", "key3", "c")
	w.waitOutput(t, "PUT\nkey1\na\nPUT\nkey2\nb\nPUT\nkey3\nc\n")
	w.stop(t)

	ctlOK(t, m, "compacted revision 5\n", "compact", "5")
	if out := ctl(t, m, "", nil, "get", "key", "--rev=4"); out.code != 1 || !strings.HasSuffix(out.stderr, "\nError: etcdserver: mvcc: required revision has been compacted\n") {
		t.Fatalf("get below the compaction: exit %d, %q", out.code, out.stderr)
	}

	// A key's versions across a compaction: the current one, and the
	// ones from the compaction on, can be read; older ones cannot.
	var revs []int64
	for v := 1; v <= 10; v++ {
		resp, err := cli.Put(ctx, "vk", fmt.Sprintf("vk-%d", v))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, resp.Header.Revision)
	}
	ctlOK(t, m, fmt.Sprintf("compacted revision %d\n", revs[5]), "compaction", fmt.Sprint(revs[5]))
	for _, v := range []int{10, 9, 7, 6} {
		ctlOK(t, m, fmt.Sprintf("vk\nvk-%d\n", v), "get", "vk", fmt.Sprintf("--ver=%d", v))
	}
	if out := ctl(t, m, "", nil, "get", "vk", "--ver=5"); out.code != 1 || out.stderr != "Error: version 5 of key \"vk\" is compacted\n" {
		t.Fatalf("get --ver of a compacted version: exit %d, %q", out.code, out.stderr)
	}
}

// collectEventsUntil reads a watch until it has seen revision rev.
func collectEventsUntil(t *testing.T, ch clientv3.WatchChan, rev int64) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) == 0 || evs[len(evs)-1].Kv.ModRevision < rev {
		resp := nextResp(t, ch)
		evs = append(evs, resp.Events...)
	}
	return evs
}

// TestCtlMakeMirror mirrors a prefix from one cluster to another: the
// keys already there, then puts, deletes and a multi-key transaction as
// they happen; and from a given revision, to the root of the
// destination.
func TestCtlMakeMirror(t *testing.T) {
	src, dst := newCluster(t, 1).members[0], newCluster(t, 1).members[0]
	scli, dcli := src.client(), dst.client()
	ctx := ctxT(t)
	for _, k := range []string{"/m/a", "/m/b", "/other"} {
		if _, err := scli.Put(ctx, k, "base"+k); err != nil {
			t.Fatal(err)
		}
	}
	// waitDest polls the destination (a real process) until its keys
	// under prefix are want.
	waitDest := func(prefix, want string) {
		t.Helper()
		deadline := time.Now().Add(waitDeadline)
		for {
			resp, err := dcli.Get(ctx, prefix, clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			if got := simpleKVs(resp); got == want {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("destination holds %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond) // polling a real process
		}
	}
	mm := startCtl(t, src, "", "make-mirror", "--prefix", "/m/", "--dest-prefix", "/n/", dst.clientURL)
	waitDest("/n/", "/n/a\nbase/m/a\n/n/b\nbase/m/b\n")
	// From here, the destination's changes are watched: a source
	// transaction must be one destination transaction, its changes
	// sharing a revision.
	now, err := dcli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	dw := dcli.Watch(ctx, "/n/", clientv3.WithPrefix(), clientv3.WithRev(now.Header.Revision+1))
	if _, err := scli.Put(ctx, "/m/c", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := scli.Delete(ctx, "/m/a"); err != nil {
		t.Fatal(err)
	}
	txn, err := scli.Txn(ctx).Then(clientv3.OpPut("/m/d", "d"), clientv3.OpPut("/m/e", "e"), clientv3.OpDelete("/m/b")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	waitDest("/n/", "/n/c\nc\n/n/d\nd\n/n/e\ne\n")
	requireRevisions(t, collectEvents(t, dw, 5), "PUT /n/c", "|", "DELETE /n/a", "|", "PUT /n/d", "PUT /n/e", "DELETE /n/b")
	waitDest("/m/", "")
	waitDest("/other", "")
	mm.stop(t)

	// From the transaction's revision on, to the root: only what came
	// since.
	mm = startCtl(t, src, "", "make-mirror", "--prefix", "/m/", "--no-dest-prefix", "--rev", fmt.Sprint(txn.Header.Revision), dst.clientURL)
	waitDest("d", "d\nd\n")
	if _, err := scli.Put(ctx, "/m/f", "f"); err != nil {
		t.Fatal(err)
	}
	waitDest("f", "f\nf\n")
	if resp, err := dcli.Get(ctx, "c"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("a change before --rev was mirrored: %v %v", resp, err)
	}
	mm.stop(t)

	// --max-txn-ops splits a larger source transaction.
	now, err = scli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	dnow, err := dcli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	dw = dcli.Watch(ctx, "/t/", clientv3.WithPrefix(), clientv3.WithRev(dnow.Header.Revision+1))
	mm = startCtl(t, src, "", "make-mirror", "--prefix", "/m/", "--dest-prefix", "/t/", "--max-txn-ops", "2",
		"--rev", fmt.Sprint(now.Header.Revision+1), dst.clientURL)
	if _, err := scli.Txn(ctx).Then(clientv3.OpPut("/m/x", "x"), clientv3.OpPut("/m/y", "y"), clientv3.OpPut("/m/z", "z")).Commit(); err != nil {
		t.Fatal(err)
	}
	requireRevisions(t, collectEvents(t, dw, 3), "PUT /t/x", "PUT /t/y", "|", "PUT /t/z")
	mm.stop(t)
	if out := ctl(t, src, "", nil, "make-mirror", "--dest-prefix", "x", "--no-dest-prefix", dst.clientURL); out.code != 128 ||
		out.stderr != "Error: `--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one\n" {
		t.Fatalf("conflicting prefixes: exit %d, %q", out.code, out.stderr)
	}
}

// TestCtlCheck runs check perf (shortened with Cairn's --duration) and
// check datascale against one member.
func TestCtlCheck(t *testing.T) {
	m := newCluster(t, 1).members[0]
	// The verdict depends on the machine (a loaded one may miss 90% of
	// the rate, or take over 500 ms once): the lines must be etcdctl's,
	// and the exit code must follow the verdict.
	out := ctl(t, m, "", nil, "check", "perf", "--duration", "3s", "--auto-compact")
	lines := regexp.MustCompile(`^Compacting with revision \d+\nCompacted with revision \d+\n` +
		`((?:PASS: Throughput is|FAIL: Throughput too low:) (\d+) writes/s\n)` +
		`((?:PASS: Slowest request took|Slowest request took too long:) \d+\.\d{6}s\n)` +
		`((?:PASS: Stddev is|Stddev too high:) \d+\.\d{6}s\n)(PASS|FAIL)\n$`).FindStringSubmatch(out.stdout)
	if lines == nil {
		t.Fatalf("check perf: exit %d, printed %q %q", out.code, out.stdout, out.stderr)
	}
	pass := strings.HasPrefix(lines[1], "PASS") && strings.HasPrefix(lines[3], "PASS") && strings.HasPrefix(lines[4], "PASS")
	if pass != (lines[5] == "PASS") || pass != (out.code == 0) {
		t.Fatalf("check perf's verdict does not follow its lines: exit %d, printed %q", out.code, out.stdout)
	}
	if rps, _ := strconv.Atoi(lines[2]); rps > 151 {
		t.Fatalf("check perf ran above its rate of 150 writes/s: %q", out.stdout)
	}
	t.Logf("check perf: %q", out.stdout)
	out = ctl(t, m, "", nil, "check", "datascale")
	if !regexp.MustCompile(`^Start data scale check for work load \[10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients\]\.\n`+
		`PASS: Approximate system memory used : -?\d+\.\d\d MB\.\n$`).MatchString(out.stdout) || out.code != 0 {
		t.Fatalf("check datascale: exit %d, printed %q %q", out.code, out.stdout, out.stderr)
	}
	if resp, err := m.client().Get(ctxT(t), "/etcdctl-check", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("the checks left keys behind: %v %v", resp, err)
	}
	ctlOK(t, m, "OK\n", "put", "/etcdctl-check-perf/x", "1")
	if out := ctl(t, m, "", nil, "check", "perf"); out.code != 3 ||
		out.stderr != "Error: prefix \"/etcdctl-check-perf/\" has keys. Delete with 'cairnctl del --prefix /etcdctl-check-perf/' first\n" {
		t.Fatalf("check perf on a used prefix: exit %d, %q", out.code, out.stderr)
	}
}

// requireRevisions requires events to be want, "TYPE key" each, with "|"
// where the revision changes and nowhere else.
func requireRevisions(t *testing.T, evs []*clientv3.Event, want ...string) {
	t.Helper()
	var got []string
	for i, ev := range evs {
		if i > 0 && ev.Kv.ModRevision != evs[i-1].Kv.ModRevision {
			got = append(got, "|")
		}
		got = append(got, fmt.Sprintf("%s %s", ev.Type, ev.Kv.Key))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the destination saw %v, want %v", got, want)
	}
}

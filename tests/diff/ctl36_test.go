package diff

import (
	"os"
	"regexp"
	"testing"

	"github.com/cairn-db/cairn/internal/porttest"
)

// Cairn follows etcd 3.7, whose clients (etcdctl 3.7, client/v3 3.7) the
// other differential tests run. Clusters are upgraded before their
// clients, so etcd 3.6's clients must keep working against it as they do
// against stock etcd 3.7: TestCtl36Client runs etcd 3.6's etcdctl, built
// on client/v3 3.6, against both.

// etcdctl36 is etcd 3.6's etcdctl, REFERENCE_ETCDCTL_36; without it the
// test is skipped, and says so.
func etcdctl36(t *testing.T) string {
	ctl := os.Getenv("REFERENCE_ETCDCTL_36")
	if ctl == "" {
		t.Skip("REFERENCE_ETCDCTL_36 is not set: no etcd 3.6 etcdctl to run against both servers " +
			"(set it to the etcdctl that ETCD_REF_VERSION=v3.6.6 ../shared/tools/etcd-reference.sh builds)")
	}
	return ctl
}

// raftTermRe matches the raft term in JSON and fields output: the two
// servers count their elections independently.
var raftTermRe = regexp.MustCompile(`("raft_term":|"RaftTerm" : )[0-9]+`)

// TestCtl36Client runs the same command lines through etcd 3.6's etcdctl
// against a fresh cairn and against a fresh stock etcd 3.7, on the same
// ports (so with the same identity), and requires the same stdout, stderr
// (less client log lines) and exit code from every one. The commands are
// those whose server side Cairn has: keys, leases, transactions, watches,
// members and endpoints.
func TestCtl36Client(t *testing.T) {
	cairn, etcd := binaries(t)
	ctl := etcdctl36(t)
	steps := ctl36Steps()
	ports := porttest.Free(t, 2)
	want := runScript(t, etcd, ctl, ports, steps)
	got := runScript(t, cairn, ctl, ports, steps)
	for i := range steps {
		w, g := want[i], got[i]
		w.Stdout, g.Stdout = raftTermRe.ReplaceAllString(w.Stdout, "$1<term>"), raftTermRe.ReplaceAllString(g.Stdout, "$1<term>")
		if g != w {
			t.Errorf("%v:\ncairn: exit %d\n%s--- stderr\n%s\netcd:  exit %d\n%s--- stderr\n%s", steps[i].args,
				g.Code, g.Stdout, g.Stderr, w.Code, w.Stdout, w.Stderr)
		}
	}
}

func ctl36Steps() []ctlStep {
	e := func(args ...string) ctlStep { return ctlStep{args: append([]string{"--endpoints", "$EP"}, args...)} }
	return []ctlStep{
		e("version"),
		e("put", "a", "1"),
		e("put", "a", "2", "--prev-kv"),
		e("put", "b", "3", "-w", "json"),
		e("put", "c", "4", "-w", "fields", "--prev-kv"),
		e("put", "c", "5", "-w", "protobuf"),
		e("put", "x", "y", "--lease=1234"),
		e("get", "a"),
		e("get", "a", "-w", "json"),
		e("get", "a", "-w", "fields"),
		e("get", "a", "-w", "protobuf"),
		e("get", "", "--prefix", "--keys-only"),
		e("get", "", "--prefix", "--count-only", "-w", "fields"),
		e("get", "", "--prefix", "--sort-by=CREATE", "--order=DESCEND"),
		e("get", "a", "--rev", "2"),
		e("get", "a", "--rev", "100"),
		e("get", "a", "--from-key", "--limit", "2", "-w", "json"),
		e("get", "a", "--consistency", "s"),
		e("del", "c", "--prev-kv"),
		e("del", "zzz"),
		e("lease", "grant", "60"),
		e("lease", "list"),
		e("lease", "timetolive", "1234"),
		e("lease", "revoke", "1234"),
		e("lease", "keep-alive", "--once", "1234"),
		{args: []string{"--endpoints", "$EP", "txn"}, stdin: "value(\"b\") = \"3\"\nmod(\"b\") > \"0\"\n\nput t1 x\nget b\ndel zz\n\nput t2 y\n\n"},
		{args: []string{"--endpoints", "$EP", "txn", "-w", "json"}, stdin: "value(\"b\") = \"nope\"\n\nput t1 x\n\nget b --prefix\n\n"},
		{args: []string{"--endpoints", "$EP", "watch", "w", "--prev-kv"}, background: "w1", watchers: 1},
		{args: []string{"--endpoints", "$EP", "watch", "w", "-w", "json"}, background: "w2", watchers: 2},
		e("put", "w", "1"),
		e("put", "w", "2"),
		e("del", "w"),
		{stop: "w1"}, {stop: "w2"},
		e("compaction", "3"),
		e("get", "a", "--rev", "2"),
		e("compaction", "2"),
		e("member", "list"),
		e("member", "list", "-w", "json"),
		e("endpoint", "health"),
		e("endpoint", "health", "-w", "json"),
		e("del", "", "--prefix", "-w", "json"),
	}
}

package diff

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-db/cairn/internal/porttest"
)

// ctlAuthSteps exercise etcdctl's user, role and auth commands, in the
// simple and json formats, and the --user/--password flags once auth is
// on.
func ctlAuthSteps() []ctlStep {
	e := func(args ...string) ctlStep { return ctlStep{args: append([]string{"--endpoints", "$EP"}, args...)} }
	root := func(args ...string) ctlStep {
		return ctlStep{args: append([]string{"--endpoints", "$EP", "--user", "root:pw"}, args...)}
	}
	var steps []ctlStep
	steps = append(steps,
		e("put", "foo/1", "a"), e("put", "k", "b"), e("put", "z1", "c"),
		e("auth", "status"), e("auth", "status", "-w", "json"),
		e("auth", "enable"), // no root user yet
		e("user", "add", "root:pw"),
		e("user", "add", "root:pw", "-w", "json"),
		e("user", "add", "alice:apw", "-w", "json"),
		e("user", "add", "bob:bpw"),
		e("user", "add", "nopw", "--no-password", "-w", "json"),
		e("user", "list"), e("user", "list", "-w", "json"),
		e("role", "add", "reader"), e("role", "add", "writer", "-w", "json"), e("role", "add", "reader"),
		e("role", "add", ""),
		e("role", "list"), e("role", "list", "-w", "json"),
		e("role", "grant-permission", "reader", "read", "foo/", "--prefix"),
		e("role", "grant-permission", "reader", "readwrite", "k", "-w", "json"),
		e("role", "grant-permission", "writer", "write", "z", "--from-key"),
		e("role", "grant-permission", "writer", "write", "a", "c"),
		e("role", "grant-permission", "writer", "write", "c", "a"),
		e("role", "grant-permission", "writer", "read", "x", "--prefix", "--from-key"),
		e("role", "grant-permission", "nosuch", "read", "x"),
		e("role", "get", "reader"), e("role", "get", "reader", "-w", "json"),
		e("role", "get", "writer"), e("role", "get", "writer", "-w", "fields"), e("role", "get", "nosuch"),
		e("user", "grant-role", "alice", "reader"),
		e("user", "grant-role", "alice", "writer", "-w", "json"),
		e("user", "grant-role", "alice", "reader"),
		e("user", "grant-role", "bob", "reader"),
		e("user", "grant-role", "nosuch", "reader"),
		e("user", "get", "alice"), e("user", "get", "alice", "-w", "json"),
		e("user", "get", "alice", "--detail"), e("user", "get", "alice", "--detail", "-w", "json"),
		e("user", "get", "alice", "--detail", "-w", "fields"),
		e("user", "get", "nosuch"),
		e("user", "revoke-role", "bob", "reader"),
		e("user", "revoke-role", "bob", "reader", "-w", "json"),
		e("role", "revoke-permission", "writer", "a", "c"),
		e("role", "revoke-permission", "writer", "a", "c", "-w", "json"),
		e("role", "revoke-permission", "writer", "z", "--from-key"),
		e("role", "get", "writer"),
		e("user", "passwd", "bob", "--interactive=false"),
		ctlStep{args: []string{"--endpoints", "$EP", "user", "passwd", "bob", "--interactive=false", "-w", "json"}, stdin: "bpw2\n"},
		e("user", "grant-role", "root", "root"),
		e("auth", "enable"),
		e("auth", "enable", "-w", "json"),
		// Auth on.
		e("auth", "status"),
		e("get", "foo/1"),
		e("user", "list"),
		root("auth", "status"), root("auth", "status", "-w", "json"),
		root("user", "list", "-w", "json"),
		e("--user", "root:bad", "get", "foo/1"),
		e("--user", "nosuch:x", "get", "foo/1"),
		e("--user", "alice:apw", "get", "foo/", "--prefix"),
		e("--user", "alice:apw", "get", "foo/", "--prefix", "-w", "json"),
		e("--user", "alice:apw", "get", "k"),
		e("--user", "alice:apw", "get", "", "--prefix"),
		e("--user", "alice:apw", "put", "k", "b2"),
		e("--user", "alice:apw", "put", "foo/1", "x"),
		e("--user", "alice:apw", "del", "k"),
		e("--user", "alice:apw", "user", "list"),
		e("--user", "alice:apw", "user", "get", "alice"),
		e("--user", "alice:apw", "role", "get", "reader"),
		e("--user", "alice:apw", "role", "get", "writer"),
		e("--user", "alice:apw", "user", "add", "eve:x"),
		e("--user", "alice:apw", "auth", "disable"),
		e("--user", "alice", "--password", "apw", "get", "k"),
		e("--user", "alice", "--password", "bad", "get", "k"),
		e("--user", "alice:apw", "--password", "apw", "get", "k"),
		ctlStep{args: []string{"--endpoints", "$EP", "--user", "alice", "get", "foo/1"}, stdin: "apw\n"},
		ctlStep{args: []string{"--endpoints", "$EP", "--user", "alice", "get", "foo/1"}, stdin: "bad\n"},
		e("--user", "bob:bpw2", "get", "k"),
		e("--user", "bob:bpw", "get", "k"),
		e("--user", "nopw:", "get", "k"),
		ctlStep{args: []string{"--endpoints", "$EP", "--user", "alice", "get", "k"}, stdin: "apw\n"},
		root("user", "delete", "root"),
		root("user", "revoke-role", "root", "root"),
		root("role", "delete", "root"),
		root("role", "delete", "reader"),
		root("role", "delete", "reader", "-w", "json"),
		root("user", "get", "alice"),
		root("user", "delete", "bob"),
		root("user", "delete", "bob", "-w", "json"),
		root("user", "list"),
		root("auth", "disable"),
		root("auth", "disable", "-w", "json"),
		e("auth", "status", "-w", "json"),
		e("get", "foo/1"),
		e("user", "delete", "alice", "-w", "json"),
		e("role", "delete", "writer"),
		e("role", "list", "-w", "json"),
	)
	return steps
}

// TestCtlAuthDifferential runs ctlAuthSteps with stock etcdctl against
// cairn (the server's answers) and requires what etcdctl printed against
// stock etcd: the golden file ctl-auth.json, which -update writes from a
// run against stock etcd 3.7.3 (the run is not repeated otherwise, for
// CI's time: the steps and the etcd release are fixed). TestCtlGolden holds
// cairnctl against cairn (the CLI's printing) to the same file.
func TestCtlAuthDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	etcdctl := filepath.Join(filepath.Dir(etcd), "etcdctl")
	if _, err := os.Stat(etcdctl); err != nil {
		t.Skipf("no stock etcdctl beside %s", etcd)
	}
	steps := ctlAuthSteps()
	ports := porttest.Free(t, 2)
	if *update {
		want := runScript(t, etcd, etcdctl, ports, steps)
		b, err := json.MarshalIndent(toGolden(steps, want), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath("auth"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compareGolden(t, "auth", steps, runScript(t, cairn, etcdctl, ports, steps), "stock etcdctl against cairn")
}

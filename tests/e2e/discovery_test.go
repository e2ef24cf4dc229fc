package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/porttest"
)

// withDiscovery replaces --initial-cluster and --initial-cluster-token in
// each of c's members' flags with v3 discovery's.
func (c *cluster) withDiscovery(endpoints []string, token string) {
	for _, m := range c.members {
		var args []string
		for i := 0; i < len(m.args); i++ {
			if m.args[i] == "--initial-cluster" || m.args[i] == "--initial-cluster-token" {
				i++
				continue
			}
			args = append(args, m.args[i])
		}
		m.args = append(args, "--discovery-endpoints", strings.Join(endpoints, ","), "--discovery-token", token)
	}
}

// registrations are the member keys registered under token, by key.
func registrations(t *testing.T, cli *clientv3.Client, token string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	resp, err := cli.Get(ctx, "/_etcd/registry/"+token+"/members/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	regs := map[string]string{}
	for _, kv := range resp.Kvs {
		regs[string(kv.Key)] = string(kv.Value)
	}
	return regs
}

// discoveryService starts a one-member cluster with auth enabled: root
// (password "pw") and a user "disc" (password "dpw") that may read and
// write the discovery registry and nothing else. It returns the cluster
// and a client signed in as root.
func discoveryService(t *testing.T) (*cluster, *clientv3.Client) {
	t.Helper()
	ds := newCluster(t, 1)
	cli := ds.client()
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	for i, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "registry"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "registry", "/_etcd/registry/", clientv3.GetPrefixRangeEnd("/_etcd/registry/"),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "disc", "dpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "disc", "registry"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("discovery service's auth, step %d: %v", i, err)
		}
	}
	ds.signIn()
	return ds, userClient(t, ds.endpoints(), "root", "pw")
}

// Three members started with only a discovery service in common find
// each other through it and form one cluster, with the member IDs they
// registered, derived from the discovery token as etcd derives them; a
// fourth member is refused ("cluster is full"), and a founding member
// restarts without asking the service again. The members sign in to the
// service as a user allowed only the registry (--discovery-user
// user:password).
func TestDiscoveryBootstrapsACluster(t *testing.T) {
	ds, dcli := discoveryService(t)
	const token = "8A591FAB-1D72-41FA-BDF2-A27162FDA1E0"
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	if _, err := dcli.Put(ctx, "/_etcd/registry/"+token+"/_config/size", "3"); err != nil {
		t.Fatal(err)
	}

	c := newUnstartedCluster(t, 4, "--discovery-user", "disc:dpw")
	c.withDiscovery(ds.endpoints(), token)
	extra := c.members[3]
	c.members = c.members[:3]
	for _, m := range c.members {
		m.start()
	}
	c.waitLeader()
	cli := c.client()
	ml := waitMembersPublished(t, cli, 3)
	regs := registrations(t, dcli, token)
	if len(regs) != 3 {
		t.Fatalf("registrations %v, want 3", regs)
	}
	for _, m := range c.members {
		i := slices.IndexFunc(ml.Members, func(x *pb.Member) bool { return x.Name == m.name })
		if i < 0 {
			t.Fatalf("member %s is not in the member list %v", m.name, ml.Members)
		}
		if want := membership.ComputeMemberID([]string{m.peerURL}, token, 0); ml.Members[i].ID != want {
			t.Errorf("member %s has ID %x, want %x (from its peer URL and the discovery token)", m.name, ml.Members[i].ID, want)
		}
		key := "/_etcd/registry/" + token + "/members/" + strconv.FormatUint(ml.Members[i].ID, 16)
		if got, want := regs[key], m.name+"="+m.peerURL; got != want {
			t.Errorf("%s registered %q under %s, want %q (registrations %v)", m.name, got, key, want, regs)
		}
	}
	if _, err := cli.Put(ctx, "key", "value"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "key")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "value" {
		t.Fatalf("get after put: %v, %v", resp, err)
	}

	// The fourth member: the founders are registered, and it is not one.
	cmd := exec.Command(cairnBinary, extra.args...)
	cmd.Env = childEnv()
	_, stderr, code := runChild(t, cmd, waitDeadline)
	if code != 1 || !strings.Contains(stderr, "discovery: cluster is full") {
		t.Fatalf("a fourth member exited %d, want 1 with \"discovery: cluster is full\"; stderr:\n%s", code, stderr)
	}
	if got := registrations(t, dcli, token); len(got) != 3 {
		t.Errorf("the refused member registered: %v", got)
	}

	// A restart reads its WAL; the discovery service is not needed.
	ds.members[0].kill()
	m := c.members[1]
	m.restart()
	c.waitLeader()
	if _, err := cli.Put(ctx, "after-restart", "v"); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(m.logPath); err != nil || !strings.Contains(string(data), "discovery token is ignored since cluster already initialized") {
		t.Errorf("the restarted member did not log that it ignores the discovery token (read error %v)", err)
	}
}

// A discovery token whose size key is missing, or not a positive number,
// fails the start at once, naming the cause, and registers nothing; so
// does a wrong password, or a user without access to the registry.
func TestDiscoveryRefusals(t *testing.T) {
	ds, dcli := discoveryService(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	if _, err := dcli.UserAdd(ctx, "nobody", "npw"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ token, size, user, want string }{
		{"no-size", "", "disc:dpw", "discovery: size key not found"},
		{"bad-size", "three", "disc:dpw", "discovery: size key is bad"},
		{"zero-size", "0", "disc:dpw", "discovery: size key is bad"},
		{"wrong-password", "3", "disc:nope", "authentication failed"},
		{"no-access", "3", "nobody:npw", "permission denied"},
	} {
		if tc.size != "" {
			if _, err := dcli.Put(ctx, "/_etcd/registry/"+tc.token+"/_config/size", tc.size); err != nil {
				t.Fatal(err)
			}
		}
		ports := porttest.Free(t, 2)
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		cmd := exec.Command(cairnBinary, "--name", "m", "--data-dir", filepath.Join(t.TempDir(), "m"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--discovery-endpoints", strings.Join(ds.endpoints(), ","), "--discovery-token", tc.token, "--discovery-user", tc.user)
		cmd.Env = childEnv()
		_, stderr, code := runChild(t, cmd, waitDeadline)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("size %q: exited %d, want 1 with %q; stderr:\n%s", tc.size, code, tc.want, stderr)
		}
		if got := registrations(t, dcli, tc.token); len(got) != 0 {
			t.Errorf("size %q: registered %v", tc.size, got)
		}
	}
}

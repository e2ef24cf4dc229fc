package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/porttest"
	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

// startGRPCProxy starts `cairn grpc-proxy start` with args on a free port
// and waits for its "started gRPC proxy" line; it returns the proxy and
// its address.
func startGRPCProxy(t *testing.T, args ...string) (*child, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", porttest.Free(t, 1)[0])
	p := startChild(t, exec.Command(cairnBinary, append([]string{"grpc-proxy", "start", "--listen-addr=" + addr,
		"--advertise-client-url=" + addr}, args...)...))
	waitLogged(t, p, `"msg":"started gRPC proxy"`)
	return p, addr
}

// waitLogged polls a child's stderr (its log) until it holds want.
func waitLogged(t *testing.T, c *child, want string) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !strings.Contains(c.stderr.String(), want) {
		if c.done() || time.Now().After(deadline) {
			t.Fatalf("%s did not log %s\n%s", c, want, c.output())
		}
		time.Sleep(10 * time.Millisecond) // polling a real process's output
	}
}

// `cairn grpc-proxy start` (etcd's gRPC proxy) serves etcd's API by
// forwarding to the cluster: keys, transactions, watches, leases and
// their keep-alives, errors as the cluster gives them, auth tokens (a
// request without one is refused as the cluster refuses it); MemberList
// lists the proxy, as etcd's does; endpoints learned by the auto sync keep
// it serving when the member it was given dies; /health and /proxy/health
// say true; SIGINT ends it with 0.
func TestGRPCProxy(t *testing.T) {
	c := newCluster(t, 3)
	c.waitLeader()
	p, addr := startGRPCProxy(t, "--endpoints="+c.members[0].clientURL, "--endpoints-auto-sync-interval=200ms")
	waitLogged(t, p, strings.TrimPrefix(c.members[2].clientURL, "http://"))

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()

	wch := cli.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithPrevKV())
	put, err := cli.Put(ctx, "k1", "v1")
	if err != nil {
		t.Fatalf("put through the proxy: %v\n%s", err, p.output())
	}
	if _, err := cli.Put(ctx, "k1", "v2"); err != nil {
		t.Fatal(err)
	}
	txn, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("k1"), "=", "v2")).
		Then(clientv3.OpPut("k2", "t")).Else(clientv3.OpPut("k2", "e")).Commit()
	if err != nil || !txn.Succeeded {
		t.Fatalf("txn through the proxy: %v, %v", txn, err)
	}
	var events []string
	for len(events) < 3 {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatalf("watch through the proxy: %v", err)
			}
			for _, ev := range wr.Events {
				e := fmt.Sprintf("%s=%s", ev.Kv.Key, ev.Kv.Value)
				if ev.PrevKv != nil {
					e += fmt.Sprintf(" (was %s)", ev.PrevKv.Value)
				}
				events = append(events, e)
			}
		case <-ctx.Done():
			t.Fatalf("watch through the proxy: %v after %v", ctx.Err(), events)
		}
	}
	if got := strings.Join(events, ", "); got != "k1=v1, k1=v2 (was v1), k2=t" {
		t.Fatalf("watched %s", got)
	}
	// The cluster's errors come through as they are.
	if _, err := cli.Compact(ctx, put.Header.Revision+1); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "k1", clientv3.WithRev(put.Header.Revision)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("a read at a compacted revision through the proxy: %v, want %v", err, rpctypes.ErrCompacted)
	}
	// An answer larger than gRPC's default 4 MiB comes through
	// (--max-recv-bytes' default is etcd's, 2 GiB).
	big := strings.Repeat("x", 1<<20)
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("big/%d", i), big); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := cli.Get(ctx, "big/", clientv3.WithPrefix()); err != nil || len(resp.Kvs) != 5 {
		t.Fatalf("5 MiB of values through the proxy: %v", err)
	}
	// Leases and their keep-alive stream.
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := cli.KeepAliveOnce(ctx, lease.ID)
	if err != nil || ka.TTL <= 0 {
		t.Fatalf("keep-alive through the proxy: %v, %v", ka, err)
	}
	// MemberList is the proxy's own; MemberPromote is refused, as by etcd's.
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 || len(ml.Members[0].ClientURLs) != 1 || ml.Members[0].ClientURLs[0] != addr {
		t.Fatalf("member list through the proxy: %v, %v", ml, err)
	}
	if _, err := cli.MemberPromote(ctx, 1); err == nil || !strings.Contains(err.Error(), "not implemented") {
		t.Fatalf("member promote through the proxy: %v", err)
	}
	for _, path := range []string{"/health", "/proxy/health"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != `{"health":"true","reason":""}` {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}

	// Auth: the caller's token goes along.
	direct := c.client()
	if _, err := direct.UserAdd(ctx, "root", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k3", "v"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("a put without a user through the proxy, auth enabled: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "root", Password: "pw"})
	if err != nil {
		t.Fatalf("signing in through the proxy: %v", err)
	}
	defer root.Close()
	if _, err := root.Put(ctx, "k3", "v"); err != nil {
		t.Fatalf("a put as root through the proxy: %v", err)
	}
	if _, err := root.AuthDisable(ctx); err != nil {
		t.Fatal(err)
	}

	// The member the proxy was given dies; the synced endpoints serve.
	c.members[0].kill()
	c.waitLeader()
	if _, err := cli.Put(ctx, "after-kill", "v"); err != nil {
		t.Fatalf("a put through the proxy after its first endpoint died: %v\n%s", err, p.output())
	}
	p.interrupt(t)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("the proxy exited %d on SIGINT\n%s", code, p.output())
	}
}

// What etcd's proxy refuses at start, Cairn's refuses in the same words;
// what it does not do is refused by name.
func TestGRPCProxyRefusals(t *testing.T) {
	ca := certtest.NewCA(t, t.TempDir(), "proxy")
	named := ca.Issue(t, certtest.Spec{Name: "named", CN: "someone", IPs: certtest.Localhost.IPs})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--resolver-prefix=/p"}, "invalid resolver-ttl 0"},
		{[]string{"--resolver-ttl=5"}, `invalid resolver-prefix ""`},
		{[]string{"--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"}, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--cert=" + named.CertFile, "--key=" + named.KeyFile, "--cacert=" + ca.CertFile},
			"cert has non empty Common Name (someone): " + named.CertFile},
		{[]string{"--namespace=/tenant/"}, "--namespace is not supported by Cairn's grpc-proxy"},
		// TLS asked for without a certificate: refused, not served in the clear.
		{[]string{"--trusted-ca-file=" + ca.CertFile}, "KeyFile and CertFile are not presented"},
		{[]string{"--auto-tls", "--trusted-ca-file=" + ca.CertFile}, "KeyFile and CertFile are not presented"},
		{[]string{"--client-crl-file=" + ca.CertFile}, "--client-crl-file needs TLS"},
	} {
		cmd := exec.Command(cairnBinary, append([]string{"grpc-proxy", "start", "--listen-addr=127.0.0.1:0"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("grpc-proxy start %q: %v, %s; want exit 1 and %q", tc.args, err, out, tc.want)
		}
	}
}

// Proxies started with --resolver-prefix register their advertised URLs
// on a lease, and MemberList through any of them lists them all, as
// etcd's proxies do; a proxy that stops leaves the list when its lease
// expires.
func TestGRPCProxyResolverPrefix(t *testing.T) {
	c := newCluster(t, 1)
	c.waitLeader()
	args := []string{"--endpoints=" + c.members[0].clientURL, "--resolver-prefix=/proxies", "--resolver-ttl=2"}
	a, addrA := startGRPCProxy(t, args...)
	b, addrB := startGRPCProxy(t, args...)
	waitLogged(t, a, `"msg":"registered session with lease"`)
	waitLogged(t, b, `"msg":"registered session with lease"`)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addrA}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	listed := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ml, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatalf("member list through the proxy: %v", err)
		}
		var urls []string
		for _, m := range ml.Members {
			urls = append(urls, m.ClientURLs...)
		}
		slices.Sort(urls)
		return strings.Join(urls, ",")
	}
	both := strings.Join(slices.Sorted(slices.Values([]string{addrA, addrB})), ",")
	deadline := time.Now().Add(waitDeadline)
	for listed() != both {
		if time.Now().After(deadline) {
			t.Fatalf("member list through a proxy: %s, want %s", listed(), both)
		}
		time.Sleep(50 * time.Millisecond) // polling what the proxies registered
	}
	b.interrupt(t)
	for listed() != addrA {
		if time.Now().After(deadline) {
			t.Fatalf("member list once the other proxy stopped: %s, want %s", listed(), addrA)
		}
		time.Sleep(50 * time.Millisecond) // polling for the lease's expiry
	}
}

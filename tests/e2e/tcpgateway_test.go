package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/porttest"
)

// `cairn gateway start` (etcd's TCP gateway) forwards clients to the
// cluster's members: a client that knows only the gateway's address puts
// and reads; with a member down, new connections go to the others; the
// gateway exits 0 on SIGINT.
func TestTCPGateway(t *testing.T) {
	c := newCluster(t, 3)
	addr := fmt.Sprintf("127.0.0.1:%d", porttest.Free(t, 1)[0])
	gw := startChild(t, exec.Command(cairnBinary, "gateway", "start", "--endpoints="+strings.Join(c.endpoints(), ","),
		"--listen-addr="+addr))
	waitLogged(t, gw, "ready to proxy client requests")

	viaGateway := func(key string) {
		t.Helper()
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		defer cancel()
		if _, err := cli.Put(ctx, key, "v"); err != nil {
			t.Fatalf("put %s through the gateway: %v\n%s", key, err, gw.output())
		}
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s through the gateway: %v, %v", key, resp, err)
		}
	}
	for i := range 3 {
		viaGateway(fmt.Sprintf("k%d", i))
	}
	c.members[0].kill()
	c.waitLeader()
	for i := range 3 {
		viaGateway(fmt.Sprintf("after-kill-%d", i))
	}
	// Three connections in turn: one tried the killed member first, and
	// went on to another.
	dead := strings.TrimPrefix(c.members[0].clientURL, "http://")
	if !strings.Contains(gw.stderr.String(), `"msg":"deactivated endpoint","address":"`+dead+`"`) {
		t.Fatalf("the gateway did not log the killed member's endpoint as deactivated\n%s", gw.output())
	}
	gw.interrupt(t)
	if code := gw.exitCode(t); code != 0 {
		t.Fatalf("the gateway exited %d on SIGINT\n%s", code, gw.output())
	}
}

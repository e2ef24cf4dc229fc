package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/internal/porttest"
)

// cairnBinary and ctlBinary are the server and cairnctl, built once for
// the package's tests.
var cairnBinary, ctlBinary, utlBinary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cairn-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cairnBinary, ctlBinary, utlBinary = os.Getenv("CAIRN_E2E_BINARY"), filepath.Join(dir, "cairnctl"), filepath.Join(dir, "cairnutl")
	builds := [][]string{{"-o", ctlBinary, "../../cmd/cairnctl"}, {"-o", utlBinary, "../../cmd/cairnutl"}}
	if cairnBinary == "" {
		cairnBinary = filepath.Join(dir, "cairn")
		builds = append(builds, []string{"-tags", "invariants", "-o", cairnBinary, "../../cmd/cairn"})
	}
	for _, args := range builds {
		build := exec.Command("go", append([]string{"build"}, args...)...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", args[len(args)-1]+":", err)
			return 1
		}
	}
	return m.Run()
}

// Timing used by the tests: fast elections, so faults recover quickly.
const (
	heartbeatMs = 50
	electionMs  = 500
	// failoverDeadline bounds how long a cluster may take to take
	// writes again after losing its leader: 3 election timeouts on an
	// idle machine, far more on a busy one.
	failoverDeadline = 30 * time.Second
)

type member struct {
	t         *testing.T
	name      string
	dataDir   string
	clientURL string
	peerURL   string
	args      []string
	// proc is the running process; nil while the member is down.
	proc    *child
	logPath string
	// clientTLS, if set, is what the test's clients (client, waitLeader)
	// reach an https:// clientURL with.
	clientTLS *tls.Config
	// statusUser and statusPassword, if set, sign waitLeader's status
	// requests in (with auth enabled, Status needs a user, as etcd's);
	// statusToken, if set, is sent with them instead.
	statusUser, statusPassword, statusToken string
}

type cluster struct {
	t       *testing.T
	members []*member
}

// cleanUpAtEnd has the test's end kill c's members and, if it failed,
// show each one's last log lines. Call it before the first start, so
// that a failing start kills those started.
func (c *cluster) cleanUpAtEnd() {
	c.t.Cleanup(func() {
		for _, m := range c.members {
			m.kill()
		}
		if c.t.Failed() {
			for _, m := range c.members {
				if data, err := os.ReadFile(m.logPath); err == nil {
					lines := strings.Split(string(data), "\n")
					c.t.Logf("last log lines of %s:\n%s", m.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
				}
			}
		}
	})
}

// newCluster starts n members with extra flags.
func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	return newClusterWith(t, n, nil, extra...)
}

// newClusterWith is newCluster with prepare, if not nil, called for each
// member before its first start.
func newClusterWith(t *testing.T, n int, prepare func(*member), extra ...string) *cluster {
	t.Helper()
	c := newUnstartedCluster(t, n, extra...)
	for _, m := range c.members {
		if prepare != nil {
			prepare(m)
		}
		m.start()
	}
	c.waitLeader()
	return c
}

// newUnstartedCluster is newCluster's n members, configured with extra
// flags, none started. The test's end kills them and, if it failed,
// shows each one's last log lines.
func newUnstartedCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	ports := porttest.Free(t, 2*n)
	c := &cluster{t: t}
	var initial []string
	for i := range n {
		m := &member{
			t:         t,
			name:      fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		m.dataDir = filepath.Join(t.TempDir(), m.name)
		m.logPath = filepath.Join(t.TempDir(), m.name+".log")
		initial = append(initial, m.name+"="+m.peerURL)
		c.members = append(c.members, m)
	}
	// Before the first start: a failing start kills those started.
	c.cleanUpAtEnd()
	for _, m := range c.members {
		m.args = append([]string{
			"--name", m.name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "e2e-" + t.Name(),
			"--heartbeat-interval", fmt.Sprint(heartbeatMs), "--election-timeout", fmt.Sprint(electionMs),
		}, extra...)
	}
	return c
}

// start starts the member's process, its output appended to its log.
func (m *member) start() {
	m.t.Helper()
	log, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(cairnBinary, m.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = childEnv()
	m.proc = startChild(m.t, cmd)
}

// childEnv is the test's environment without CAIRN_ and ETCD_ variables,
// which a child would read as flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") && !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill SIGKILLs the member (if running) and waits for it to exit.
func (m *member) kill() {
	m.t.Helper()
	if m.proc == nil {
		return
	}
	m.proc.kill(m.t)
	m.proc = nil
}

// restart starts a killed member again on its data directory.
func (m *member) restart() {
	m.kill()
	m.start()
}

func (m *member) client() *clientv3.Client {
	m.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{m.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: m.clientTLS,
	})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { cli.Close() })
	return cli
}

// endpoints are every member's client URL.
func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// client returns a client of every member.
func (c *cluster) client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: c.members[0].clientTLS})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// waitLeader waits until every running member reports the same leader,
// and returns that member's index.
func (c *cluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		lead := uint64(0)
		agree := true
		var ids []uint64
		for _, m := range c.members {
			if m.proc == nil {
				ids = append(ids, 0)
				continue
			}
			st, err := memberStatus(m)
			if err != nil || st.Leader == 0 || (lead != 0 && st.Leader != lead) {
				agree = false
				break
			}
			lead = st.Leader
			ids = append(ids, st.Header.MemberId)
		}
		if agree && lead != 0 {
			for i, id := range ids {
				if id == lead {
					return i
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no agreed leader within %v", waitDeadline)
		}
		time.Sleep(20 * time.Millisecond) // polling a real cluster, not synchronizing goroutines
	}
}

func memberStatus(m *member) (*clientv3.StatusResponse, error) {
	// Polled: a member that does not answer in 5 s is asked again.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: m.clientTLS,
		Username: m.statusUser, Password: m.statusPassword})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m.statusToken != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, m.statusToken)
	}
	return cli.Status(ctx, m.clientURL)
}

// ctxT is a context for a test's requests, a safeguard against a hang:
// some tests make many requests with one.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), commandDeadline)
	t.Cleanup(cancel)
	return ctx
}

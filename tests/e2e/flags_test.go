package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/porttest"
)

// kubeadmArgs is the command line kubeadm (cmd/kubeadm/app/phases/etcd/
// local.go, getEtcdCommand) writes into etcd's static pod for a new
// single-member cluster, less its TLS flags (TestKubeadmTLSCluster adds
// them). clientURL is the advertised one; kubeadm listens on 127.0.0.1
// too.
func kubeadmArgs(name, dataDir, loopbackURL, clientURL, peerURL, metricsURL string) []string {
	args := []string{
		"--name=" + name,
		"--feature-gates=InitialCorruptCheck=true",
		"--listen-client-urls=" + loopbackURL + "," + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--data-dir=" + dataDir,
		"--snapshot-count=10000",
		"--listen-metrics-urls=" + metricsURL,
		"--watch-progress-notify-interval=5s",
		"--initial-cluster=" + name + "=" + peerURL,
	}
	return args
}

// kubeadm's etcd flags, less TLS, start a member that serves clients on
// both client URLs, and metrics and the health checks kubeadm's probes
// use (/livez, /readyz) on the metrics URL; stderr is JSON log lines. On
// a restart (the first start has no data to check), the initial
// corruption check kubeadm asks for runs, and passes.
func TestKubeadmFlags(t *testing.T) {
	ports := porttest.Free(t, 4)
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[i]) }
	m := &member{t: t, name: "node1", clientURL: url(1), peerURL: url(2)}
	m.dataDir = filepath.Join(t.TempDir(), "etcd")
	m.logPath = filepath.Join(t.TempDir(), "node1.log")
	m.args = kubeadmArgs(m.name, m.dataDir, url(0), url(1), url(2), url(3))
	c := &cluster{t: t, members: []*member{m}}
	c.cleanUpAtEnd()
	m.start()
	c.waitLeader()
	if _, err := m.client().Put(ctxT(t), "/registry/k", "v"); err != nil {
		t.Fatal(err)
	}
	loopback := &member{t: t, clientURL: url(0)}
	if resp, err := loopback.client().Get(ctxT(t), "/registry/k"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get on the loopback client URL: %v %v", resp, err)
	}
	metrics := url(3)
	if code, body, _ := httpGet(t, metrics+"/metrics"); code != 200 || !strings.Contains(body, "etcd_server_has_leader 1") {
		t.Errorf("/metrics on the metrics URL: %d", code)
	}
	for _, path := range []string{"/livez", "/readyz", "/health"} {
		if code, body, _ := httpGet(t, metrics+path); code != 200 {
			t.Errorf("%s on the metrics URL: %d %q", path, code, body)
		}
	}
	if code, _, _ := httpGet(t, metrics+"/version"); code != http.StatusNotFound {
		t.Errorf("/version on the metrics URL: %d, want 404 as etcd", code)
	}
	m.proc.interrupt(t)
	m.start()
	c.waitLeader()
	m.proc.interrupt(t)
	data, err := os.ReadFile(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	checks := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		if msg, _ := entry["msg"].(string); msg == "initial corruption checking passed; no corruption" {
			checks++
		}
	}
	if checks != 1 {
		t.Errorf("the initial corruption check passed %d times, want once (on the restart)", checks)
	}
}

// --listen-client-http-urls moves HTTP (the gateway too) off the client
// URLs, which then serve gRPC only, as etcd's.
func TestListenClientHTTPURLs(t *testing.T) {
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", porttest.Free(t, 1)[0])
	c := newCluster(t, 1, "--listen-client-http-urls", httpURL)
	if code, body, _ := httpGet(t, httpURL+"/health"); code != 200 || !strings.Contains(body, `"health":"true"`) {
		t.Errorf("/health on the HTTP URL: %d %q", code, body)
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	// The gateway moves with the other HTTP endpoints.
	if code, body := gatewayPost(t, cl, httpURL+"/v3/kv/put", `{"key":"Zm9v","value":"YmFy"}`, ""); code != 200 ||
		!strings.Contains(body, `"revision":"2"`) {
		t.Errorf("/v3/kv/put on the HTTP URL: %d %s", code, body)
	}
	if resp, err := cl.Get(c.members[0].clientURL + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the client URL still serves HTTP /health")
		}
	}
	if _, err := c.client().Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
}

// Installed as etcd, cairn speaks as etcd: --version's first line is
// etcd's, naming the release Cairn follows, and --help names etcd.
func TestInstalledAsEtcd(t *testing.T) {
	etcd := filepath.Join(t.TempDir(), "etcd")
	if err := os.Symlink(cairnBinary, etcd); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(etcd, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "etcd Version: 3.7.3\nGit SHA: ") || !strings.Contains(string(out), "\ncairn Version: ") {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	cmd := exec.Command(etcd, "--help")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil || !strings.Contains(stderr.String(), "\n  etcd [flags]\n    Start an etcd server.\n") ||
		!strings.HasPrefix(string(out), "\nMember:\n  --name 'default'\n") {
		t.Fatalf("--help: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), out)
	}
}

package diff

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/porttest"
)

// startCluster3 runs binary as a three-member cluster and returns its
// client endpoints once every member answers `endpoint health`. The
// test's end kills it.
func startCluster3(t *testing.T, binary string) []string {
	t.Helper()
	url := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	all := porttest.Free(t, 6)
	cports, pports := all[:3], all[3:]
	var initial, eps []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=%s", i, url(pports[i])))
		eps = append(eps, fmt.Sprintf("127.0.0.1:%d", cports[i]))
	}
	for i := range 3 {
		srv := exec.Command(binary, "--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--listen-client-urls", url(cports[i]), "--advertise-client-urls", url(cports[i]),
			"--listen-peer-urls", url(pports[i]), "--initial-advertise-peer-urls", url(pports[i]),
			"--initial-cluster", strings.Join(initial, ","), "--log-level", "error")
		srv.Env = cleanEnv()
		c := startChild(t, srv)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s:\n%s", c, c.output())
			}
			c.kill(t)
		})
	}
	for deadline := time.Now().Add(waitDeadline); ; {
		cmd := exec.Command(ctlBinary, "--endpoints", strings.Join(eps, ","), "endpoint", "health")
		cmd.Env = cleanEnv()
		if _, _, code := runChild(t, cmd, commandDeadline); code == 0 {
			return eps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the cluster is not healthy within %v", binary, waitDeadline)
		}
		time.Sleep(50 * time.Millisecond) // polling starting processes
	}
}

// checkLinearizable runs `cairnctl check linearizable` against eps and
// returns what it printed, its exit code and the visualisation's path.
// (The package's ctlBinary is named etcdctl, which has no such check: the
// command goes by a link named cairnctl.)
func checkLinearizable(t *testing.T, eps []string, duration string) (stdout string, code int, visual string) {
	t.Helper()
	dir := t.TempDir()
	cairnctl, visual := filepath.Join(dir, "cairnctl"), filepath.Join(dir, "history.html")
	if err := os.Symlink(ctlBinary, cairnctl); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cairnctl, "--endpoints", strings.Join(eps, ","), "check", "linearizable",
		"--duration", duration, "--clients", "6", "--seed", "1", "--visualization", visual)
	cmd.Env = cleanEnv()
	stdout, stderr, code := runChild(t, cmd, commandDeadline+time.Minute)
	t.Logf("check linearizable: exit %d\n%s%s", code, stdout, stderr)
	return stdout, code, visual
}

// requireNoKeys requires the check to have deleted its keys.
func requireNoKeys(t *testing.T, eps []string) {
	t.Helper()
	cmd := exec.Command(ctlBinary, "--endpoints", eps[0], "get", "/cairnctl-check-linearizable/", "--prefix", "--count-only", "-w", "fields")
	cmd.Env = cleanEnv()
	out, _, code := runChild(t, cmd, commandDeadline)
	if code != 0 || !strings.Contains(out, "\"Count\" : 0\n") {
		t.Fatalf("the check left keys behind (exit %d): %q", code, out)
	}
}

var linPass = regexp.MustCompile(`^Running 6 clients over 8 keys under "/cairnctl-check-linearizable/" on 3 endpoints for \S+ \(seed 1\)\n` +
	`(\d+) operations in \S+s: \d+ puts \(\d+ without an answer\), \d+ gets \(\d+ more failed and are left out\)\n` +
	`PASS: the history is linearizable \(checked in \S+s\)\n` +
	`PASS: all (\d+) acknowledged puts are in the store's history \(revisions \d+ to \d+\)\nPASS\n$`)

// `check linearizable` passes against Cairn and stock etcd (three members,
// reads on every member), deleting its keys; against a build of Cairn whose
// followers answer linearizable reads from their own, late state
// (-tags cairn_broken_reads) it fails, names a key and writes porcupine's
// visualisation of the history.
func TestCheckLinearizable(t *testing.T) {
	cairn, etcd := binaries(t)
	for _, srv := range []struct{ name, binary string }{{"cairn", cairn}, {"etcd", etcd}} {
		t.Run(srv.name, func(t *testing.T) {
			eps := startCluster3(t, srv.binary)
			out, code, visual := checkLinearizable(t, eps, "2s")
			m := linPass.FindStringSubmatch(out)
			if code != 0 || m == nil {
				t.Fatalf("check linearizable against %s: exit %d, printed %q", srv.name, code, out)
			}
			if m[1] == "0" || m[2] == "0" {
				t.Fatalf("check linearizable against %s ran no operations or acknowledged no put: %q", srv.name, out)
			}
			if _, err := os.Stat(visual); !os.IsNotExist(err) {
				t.Fatalf("a passing check wrote a visualisation (%v)", err)
			}
			requireNoKeys(t, eps)
			if srv.name != "cairn" {
				return
			}
			// A prefix in use is refused, and left as it was.
			put := exec.Command(ctlBinary, "--endpoints", eps[0], "put", "/cairnctl-check-linearizable/mine", "x")
			put.Env = cleanEnv()
			if _, _, code := runChild(t, put, commandDeadline); code != 0 {
				t.Fatalf("put: exit %d", code)
			}
			out, code, _ = checkLinearizable(t, eps, "1s")
			if code != 3 || out != "" {
				t.Fatalf("check linearizable on a used prefix: exit %d, printed %q", code, out)
			}
		})
	}

	t.Run("broken", func(t *testing.T) {
		broken := filepath.Join(t.TempDir(), "cairn-broken")
		build := exec.Command("go", "build", "-tags", "cairn_broken_reads", "-o", broken, "../../cmd/cairn")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the broken server: %v\n%s", err, out)
		}
		eps := startCluster3(t, broken)
		out, code, visual := checkLinearizable(t, eps, "3s")
		if code != 1 || !regexp.MustCompile(`(?m)^FAIL: the history is not linearizable \(key /cairnctl-check-linearizable/k\d\)\n`+
			`The visualisation of the history is in `+regexp.QuoteMeta(visual)+`\n`).MatchString(out) || !strings.HasSuffix(out, "\nFAIL\n") {
			t.Fatalf("check linearizable against the broken server: exit %d, printed %q", code, out)
		}
		page, err := os.ReadFile(visual)
		if err != nil || !strings.Contains(string(page), "<html") || !strings.Contains(string(page), "/cairnctl-check-linearizable/k") {
			t.Fatalf("the visualisation (%d bytes, %v) is not a page of the history", len(page), err)
		}
		requireNoKeys(t, eps)
	})
}

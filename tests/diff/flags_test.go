package diff

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Command lines etcd 3.7 refuses are refused by cairn with the same exit
// status and etcd's message: the flag package's line for a bad value
// (exit 2; cairn may add the valid values after it), etcd's "failed to
// verify flags" log line for a configuration etcd's validation refuses
// (exit 1). Nothing here starts a server: every line fails first.
func TestFlagRefusalsMatchEtcd(t *testing.T) {
	cairn, etcd := binaries(t)
	out, err := exec.Command(etcd, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "etcd Version: 3.7.") {
		t.Skipf("%s is not etcd 3.7 (%q): the flags compared are 3.7's", etcd, strings.SplitN(string(out), "\n", 2)[0])
	}
	for _, args := range [][]string{
		{"--heartbeat-interval", "abc"},
		{"--initial-cluster-state", "bogus"},
		{"--listen-client-urls", "http://localhost"},
		{"--listen-peer-urls", "foo://x:1"},
		{"--cors", "http://a.example"},
		{"--feature-gates", "NoSuchGate=true"},
		{"--feature-gates", "InitialCorruptCheck"},
		{"--v2-deprecation", "not-yet"},
		{"--discovery-fallback", "bogus"},
		{"--socket-reuse-port=maybe"},
		{"--experimental-snapshot-catchup-entries", "5"},
		{"--listen-client-urls", "http://127.0.0.1:2379"},
		{"--discovery-fallback", "proxy"},
		{"--discovery-token", "t"},
		{"--discovery-srv", "example.com", "--initial-cluster", "a=http://localhost:2380"},
		{"--compact-hash-check-time", "0s"},
		{"--feature-gates", "LeaseCheckpointPersist=true"},
		{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"},
		{"--tls-min-version", "TLS1.1"},
		{"--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
		{"--tls-max-version", "TLS1.0"},
		{"--auto-compaction-mode", "bogus"},
		{"--election-timeout", "0"},
		{"--heartbeat-interval", "300"},
		{"extra"},
		// The logging flags, refused as etcd's setupLogging refuses them.
		{"--logger", "capnslog"},
		{"--logger", "foo"},
		{"--log-outputs", "default,stderr"},
		{"--log-format", "xml"},
		{"--log-outputs", "/nonexistent/dir/file"},
		{"--enable-log-rotation", "--log-outputs", "stderr"},
		{"--enable-log-rotation", "--log-outputs", "/tmp/cairn-a.log,/tmp/cairn-b.log"},
		{"--enable-log-rotation", "--log-outputs", "/tmp/cairn-a.log", "--log-rotation-config-json", "{bad"},
		{"--enable-log-rotation", "--log-outputs", "/tmp/cairn-a.log", "--log-rotation-config-json", `{"maxsize":"x"}`},
	} {
		run := func(binary string) (string, int) {
			cmd := exec.Command(binary, append(args, "--data-dir", filepath.Join(t.TempDir(), "data"))...)
			cmd.Env = cleanEnv()
			_, stderr, code := runChild(t, cmd, time.Minute)
			return stderr, code
		}
		etcdOut, etcdCode := run(etcd)
		cairnOut, cairnCode := run(cairn)
		if etcdCode != cairnCode {
			t.Errorf("%v: cairn exits %d, etcd %d\ncairn:\n%s\netcd:\n%s", args, cairnCode, etcdCode, cairnOut, etcdOut)
			continue
		}
		if etcdCode == 2 {
			first := func(s string) string { return strings.SplitN(s, "\n", 2)[0] }
			if !strings.HasPrefix(first(cairnOut), first(etcdOut)) {
				t.Errorf("%v: cairn says %q, etcd %q", args, first(cairnOut), first(etcdOut))
			}
			continue
		}
		if got, want := refusal(cairnOut), refusal(etcdOut); got != want || want == "" {
			t.Errorf("%v: cairn refuses with %q, etcd with %q", args, got, want)
		}
	}
}

// refusal is the error of the "failed to verify flags" log line.
func refusal(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		var entry struct {
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "failed to verify flags" {
			return entry.Error
		}
	}
	return ""
}

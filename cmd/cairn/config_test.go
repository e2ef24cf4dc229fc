package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-db/cairn/internal/version"
)

func parse(t *testing.T, args []string, environ []string) (config, error) {
	t.Helper()
	return parseConfig("cairn", args, environ, &bytes.Buffer{}, &bytes.Buffer{})
}

func mustParse(t *testing.T, args ...string) config {
	t.Helper()
	c, err := parse(t, args, nil)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return c
}

func TestDefaultsAreEtcds(t *testing.T) {
	c := mustParse(t)
	if c.Name != "default" || c.ListenClientURLs[0] != "http://localhost:2379" || c.ListenPeerURLs[0] != "http://localhost:2380" ||
		c.HeartbeatIntervalMs != 100 || c.ElectionTimeoutMs != 1000 || c.MaxRequestBytes != 1572864 || c.MaxTxnOps != 128 ||
		c.MaxConcurrentStreams != math.MaxUint32 || !c.StrictReconfigCheck || !c.PreVote || !c.InitialElectionTickAdvance ||
		c.MaxSnapshots != 5 || c.MaxWALs != 5 || c.GRPCKeepAliveMinTime != 5*time.Second || c.GRPCKeepAliveInterval != 2*time.Hour ||
		c.GRPCKeepAliveTimeout != 20*time.Second || c.WarningApplyDuration != 100*time.Millisecond ||
		c.WarningUnaryRequestDuration != 300*time.Millisecond || c.Metrics != "basic" || c.DataDir != "" {
		t.Fatalf("defaults %+v", c)
	}
	if got := defaultInitialCluster(c.Name, c.InitialAdvertisePeerURLs); got != "default=http://localhost:2380" {
		t.Fatalf("initial cluster %q", got)
	}
}

// etcdFlags reads the flags etcd 3.7.3's --help lists (testdata is that
// help, verbatim).
func etcdFlags(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("testdata/etcd-3.7.3-help.txt")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(string(data), -1) {
		names = append(names, m[1])
	}
	if len(names) != 113 {
		t.Fatalf("found %d flags in etcd's help, want 113", len(names))
	}
	return names
}

// Every flag of etcd 3.7.3 parses, from the command line, from ETCD_* and
// from the config file, given its default value, and appears in --help;
// and cairn's visible flags are exactly etcd's plus its own.
func TestEveryEtcdFlag(t *testing.T) {
	names := etcdFlags(t)
	var help bytes.Buffer
	if _, err := parseConfig("cairn", []string{"--help"}, nil, &help, &bytes.Buffer{}); err == nil {
		t.Fatal("--help did not return ErrHelp")
	}
	d0 := defaultConfig()
	defaults := map[string]string{}
	visible := map[string]bool{}
	for _, d := range d0.flagDefs() {
		defaults[d.name] = d.value.String()
		if d.group != hidden && d.group != cairnOnly {
			visible[d.name] = true
		}
	}
	for _, name := range names {
		if !strings.Contains(help.String(), "\n  --"+name+" ") && !strings.Contains(help.String(), "\n  --"+name+"\n") {
			t.Errorf("--%s is not in --help", name)
		}
		def, ok := defaults[name]
		if !ok {
			t.Errorf("--%s is not a flag", name)
			continue
		}
		delete(visible, name)
		env := "ETCD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "=" + def
		var also []string // etcd requires it with --listen-client-urls
		if name == "listen-client-urls" {
			also = []string{"ETCD_ADVERTISE_CLIENT_URLS=http://localhost:2379"}
		}
		for _, how := range []struct {
			args, environ []string
		}{
			{[]string{"--" + name + "=" + def}, also},
			{nil, append([]string{env}, also...)},
		} {
			c, err := parse(t, how.args, how.environ)
			if err != nil {
				t.Errorf("--%s=%q: %v", name, def, err)
				continue
			}
			for _, d := range c.flagDefs() {
				if d.name == name && d.value.String() != def {
					t.Errorf("--%s=%q reads back as %q", name, def, d.value.String())
				}
			}
			logger, logs := observedLogger()
			if err := applyEffects(&c, logger); err != nil || logs.FilterMessageSnippet("no effect").Len() > 0 {
				t.Errorf("--%s at its default: %v, %v", name, err, logs.All())
			}
		}
	}
	for name := range visible {
		t.Errorf("--%s is shown in --help but is not one of etcd's", name)
	}
}

// Under the name etcd, --help is etcd 3.7.3's, but for what Cairn does
// differently: its data-dir default and its own flags.
func TestHelpLayout(t *testing.T) {
	want, err := os.ReadFile("testdata/etcd-3.7.3-help.txt")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run("etcd", []string{"-h"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	expected := string(want)
	expected = strings.Replace(expected, "--data-dir '${name}.etcd'", "--data-dir '${name}.cairn'", 1)
	var own strings.Builder
	own.WriteString("\nCairn only:\n")
	d0 := defaultConfig()
	for _, d := range d0.flagDefs() {
		if d.group == cairnOnly {
			own.WriteString("  --" + d.name + " " + d.shown + "\n    " + d.usage + "\n")
		}
	}
	expected = strings.Replace(expected, "\nUnsafe feature:", own.String()+"\nUnsafe feature:", 1)
	if got := stderr.String() + stdout.String(); got != expected {
		t.Fatalf("help differs from etcd's:\n%s", lineDiff(expected, got))
	}
	if !strings.HasPrefix(stderr.String(), "Usage:\n\n  etcd [flags]\n") || !strings.HasPrefix(stdout.String(), "\nMember:\n") {
		t.Fatalf("usage on stderr, flags on stdout, as etcd: stderr %q", stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	run("cairn", []string{"--help"}, nil, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "  cairn [flags]\n") || strings.Contains(stderr.String(), "etcd [flags]") {
		t.Fatalf("cairn's usage: %q", stderr.String())
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\nwant " + wl + "\ngot  " + gl
		}
	}
	return ""
}

// Environment variables fill flags not given, CAIRN_ before ETCD_; one
// that shadows a given flag is an error, an unknown one a warning logged
// later (ETCD_VERIFY and ETCD_UNSUPPORTED_ARCH are etcd's, not flags).
func TestEnvironment(t *testing.T) {
	c, err := parse(t, []string{"--name", "n1"}, []string{
		"CAIRN_DATA_DIR=/d1", "ETCD_DATA_DIR=/d2", "ETCD_SNAPSHOT_COUNT=7", "CAIRN_BOGUS=1", "PATH=/bin",
		"ETCD_VERIFY=all", "ETCD_UNSUPPORTED_ARCH=arm", "ETCD_LISTEN_METRICS_URLS=http://127.0.0.1:2381",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "n1" || c.DataDir != "/d1" || c.SnapshotCount != 7 || c.ListenMetricsURLs[0] != "http://127.0.0.1:2381" {
		t.Fatalf("config %+v", c)
	}
	logger, logs := observedLogger()
	for _, n := range c.notes {
		logger.Log(n.level, n.msg, n.fields...)
	}
	unknown := logs.FilterMessage("unrecognized environment variable").All()
	if len(unknown) != 1 || unknown[0].ContextMap()["environment-variable"] != "CAIRN_BOGUS=1" || unknown[0].Level != zapcore.WarnLevel {
		t.Fatalf("unrecognized variables logged: %v", unknown)
	}
	if n := logs.FilterMessage("recognized and used environment variable").Len(); n != 3 {
		t.Fatalf("%d variables logged as used, want 3: %v", n, logs.All())
	}
	if _, err := parse(t, []string{"--name", "n1"}, []string{"ETCD_NAME=n2"}); err == nil ||
		!strings.Contains(err.Error(), "shadowed") {
		t.Fatalf("conflict: err = %v", err)
	}
	if _, err := parse(t, nil, []string{"CAIRN_HEARTBEAT_INTERVAL=abc"}); err == nil {
		t.Fatal("bad value accepted")
	}
}

// A warning about the environment is a JSON log line, like everything
// cairn writes to stderr once it starts.
func TestStderrIsJSONLines(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	os.WriteFile(file, nil, 0o600)
	var stdout, stderr bytes.Buffer
	code := run("cairn", []string{"--data-dir", file, "--backend-batch-limit", "7", "--max-snapshots", "3"},
		[]string{"ETCD_FOO=1"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var sawEnv, sawNoEffect, sawDeprecated bool
	for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		sawEnv = sawEnv || m["msg"] == "unrecognized environment variable" && m["environment-variable"] == "ETCD_FOO=1"
		sawNoEffect = sawNoEffect || m["flag"] == "--backend-batch-limit"
		sawDeprecated = sawDeprecated || strings.Contains(m["msg"].(string), "--max-snapshots is deprecated")
	}
	if !sawEnv || !sawNoEffect || !sawDeprecated {
		t.Fatalf("missing lines (env %v, no effect %v, deprecated %v):\n%s", sawEnv, sawNoEffect, sawDeprecated, stderr.String())
	}
	// A configuration etcd refuses is refused in etcd's words, as log
	// lines too.
	stderr.Reset()
	if code := run("cairn", []string{"--listen-client-urls", "http://127.0.0.1:1"}, []string{"ETCD_FOO=1"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d", code)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		msgs = append(msgs, m["msg"].(string))
	}
	if got := strings.Join(msgs, "|"); got != "unrecognized environment variable|Running: |failed to verify flags|advertise client URLs are not set" {
		t.Fatalf("lines: %s\n%s", got, stderr.String())
	}
}

// A config file with etcd's keys replaces flags and environment:
// durations in integer nanoseconds, URL lists as comma strings, TLS and
// discovery in etcd's nested sections.
func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`name: fromfile
heartbeat-interval: 50
auto-compaction-retention: "2h"
initial-cluster-state: new
listen-client-urls: http://127.0.0.1:1,http://127.0.0.1:2
listen-metrics-urls: http://127.0.0.1:3
log-outputs: [stderr]
max-concurrent-streams: 100
grpc-keepalive-timeout: 3000000000
strict-reconfig-check: false
feature-gates: InitialCorruptCheck=true
socket-options:
  reuse-port: true
client-transport-security:
  cert-file: /c.crt
peer-transport-security:
  allowed-cn: [a, b]
discovery-config:
  client:
    dial-timeout: 1000000000
    max-request-bytes: 1048576
    secure:
      server-name: discovery.example
    auth:
      token: tok
unknown-key: 1
`), 0o600)
	c, err := parse(t, []string{"--config-file", path, "--name", "flag"}, []string{"CAIRN_DATA_DIR=/x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (discoveryFileKeys{ServerName: "discovery.example", Token: "tok", MaxRequestBytes: 1 << 20}); c.DiscoveryFile != want {
		t.Errorf("discovery-config.client's file-only keys read as %+v, want %+v", c.DiscoveryFile, want)
	}
	if c.Name != "fromfile" || c.HeartbeatIntervalMs != 50 || c.AutoCompactionRetention != "2h" || c.DataDir != "" ||
		strings.Join(c.ListenClientURLs, " ") != "http://127.0.0.1:1 http://127.0.0.1:2" || c.ListenMetricsURLs[0] != "http://127.0.0.1:3" ||
		c.LogOutputs[0] != "stderr" || c.MaxConcurrentStreams != 100 || c.GRPCKeepAliveTimeout != 3*time.Second ||
		c.StrictReconfigCheck || !c.SocketReusePort || c.CertFile != "/c.crt" || strings.Join(c.PeerCertAllowedCN, ",") != "a,b" ||
		c.DiscoveryDialTimeout != time.Second {
		t.Fatalf("config %+v", c)
	}
	if on, _ := c.FeatureGates.enabled(gateNamed("InitialCorruptCheck")); !on {
		t.Fatal("feature-gates from the file lost")
	}
	for _, bad := range []string{"heartbeat-interval: \"50\"\n", "grpc-keepalive-timeout: 3s\n", "pre-vote: yes-please\n"} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := parse(t, []string{"--config-file", path}, nil); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	os.WriteFile(path, []byte("name: viaenv\n"), 0o600)
	if c, err := parse(t, nil, []string{"ETCD_CONFIG_FILE=" + path}); err != nil || c.Name != "viaenv" {
		t.Fatalf("ETCD_CONFIG_FILE: %v %q", err, c.Name)
	}
}

func TestRetention(t *testing.T) {
	for _, tc := range []struct {
		mode, s string
		d       time.Duration
		revs    int64
		bad     bool
	}{
		{"periodic", "1", time.Hour, 0, false},
		{"periodic", "30m", 30 * time.Minute, 0, false},
		{"periodic", "0", 0, 0, false},
		{"revision", "1000", 0, 1000, false},
		{"periodic", "1.5", 0, 0, true},
		{"revision", "1h", 0, 0, true},
	} {
		d, revs, err := parseRetention(tc.mode, tc.s)
		if (err != nil) != tc.bad || d != tc.d || revs != tc.revs {
			t.Errorf("%s %q: %v %v %v", tc.mode, tc.s, d, revs, err)
		}
	}
}

// Bad flags and unusable data directories are a message and a non-zero
// exit, never a panic: 2 for what the flag package refuses (etcd's), 1
// for what validation or the start refuses.
func TestBadInvocations(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--bogus-flag"}, 2, "flag provided but not defined"},
		{[]string{"--heartbeat-interval", "abc"}, 2, "invalid value"},
		{[]string{"--initial-cluster-state", "bogus"}, 2, `invalid value "bogus" for flag -initial-cluster-state`},
		{[]string{"--listen-client-urls", "http://localhost"}, 2, `does not have the form "host:port"`},
		{[]string{"--cors", "http://a.example"}, 2, "invalid value"},
		{[]string{"--feature-gates", "NoSuchGate=true"}, 2, "unrecognized feature gate: NoSuchGate"},
		{[]string{"--feature-gates", "InitialCorruptCheck"}, 2, "missing bool value for InitialCorruptCheck"},
		{[]string{"--v2-deprecation", "not-yet"}, 2, "invalid value"},
		{[]string{"--discovery", "https://discovery.etcd.io/x"}, 2, "v2 discovery is removed"},
		{[]string{"--max-concurrent-streams", "4294967296"}, 2, "invalid value"},
		{[]string{"extra"}, 1, "is not a valid flag"},
		{[]string{"--auto-compaction-mode", "bogus"}, 1, `unknown auto-compaction-mode \"bogus\"`},
		{[]string{"--tls-min-version", "TLS1.1"}, 1, `unexpected TLS version \"TLS1.1\"`},
		{[]string{"--listen-client-urls", "http://127.0.0.1:2379"}, 1, "--advertise-client-urls is required"},
		{[]string{"--discovery-fallback", "proxy"}, 1, "v2 proxy is deprecated"},
		{[]string{"--discovery-token", "t"}, 1, "both --discovery-token and --discovery-endpoints must be set"},
		{[]string{"--discovery-token", "t", "--discovery-endpoints", "http://a:2379,,http://b:2379"}, 1, "--discovery-endpoints must not contain empty endpoints"},
		{[]string{"--discovery-token", "t", "--discovery-endpoints", "http://a:2379, "}, 1, "--discovery-endpoints must not contain empty endpoints"},
		{[]string{"--compact-hash-check-time", "0s"}, 1, "--compact-hash-check-time must be >0"},
		{[]string{"--feature-gates", "LeaseCheckpointPersist=true"}, 1, "requires enabling feature gate LeaseCheckpoint"},
		{[]string{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"}, 1, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--data-dir", filepath.Join(file, "sub")}, 1, "cannot access data directory"},
		{[]string{"--election-timeout", "100", "--data-dir", t.TempDir()}, 1, "election-timeout"},
		{[]string{"--initial-cluster", "x=http://localhost:2380", "--data-dir", t.TempDir()}, 1, "couldn't find local name"},
		{[]string{"--log-level", "loud"}, 1, "--log-level"},
		{[]string{"--dashboard", "yes"}, 1, "--dashboard must be 'auto', 'on' or 'off'"},
	} {
		var stdout, stderr bytes.Buffer
		code := run("cairn", tc.args, nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
}

// --version prints etcd's four lines first (tools read "etcd Version:"),
// naming the etcd release Cairn follows, then Cairn's own version.
func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run("cairn", []string{"--version"}, nil, &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "etcd Version: 3.7.3" || !strings.HasPrefix(lines[1], "Git SHA: ") ||
		!strings.HasPrefix(lines[2], "Go Version: go") || !strings.HasPrefix(lines[3], "Go OS/Arch: ") ||
		lines[4] != "cairn Version: "+version.Cairn {
		t.Fatalf("--version:\n%s", stdout.String())
	}
}

// --watch-progress-notify-interval, or etcd 3.5's experimental name when
// the new one is left alone; durations in the config file are
// nanoseconds, as in etcd's.
func TestWatchProgressNotifyInterval(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 10 * time.Minute},
		{[]string{"--watch-progress-notify-interval", "2s"}, 2 * time.Second},
		{[]string{"--experimental-watch-progress-notify-interval", "3s"}, 3 * time.Second},
		{[]string{"--watch-progress-notify-interval", "2s", "--experimental-watch-progress-notify-interval", "3s"}, 2 * time.Second},
	} {
		if got := mustParse(t, tc.args...).WatchProgressNotifyInterval; got != tc.want {
			t.Fatalf("%v: %v, want %v", tc.args, got, tc.want)
		}
	}
	if _, err := parse(t, []string{"--watch-progress-notify-interval", "0s"}, nil); err == nil {
		t.Fatal("a zero interval was accepted")
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("watch-progress-notify-interval: 5000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, "--config-file", path).WatchProgressNotifyInterval; got != 5*time.Second {
		t.Fatalf("config file: %v", got)
	}
}

func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// etcd 2's flags that etcd 3.7 still accepts and ignores are accepted,
// and each one given is logged as ignored.
func TestIgnoredFlags(t *testing.T) {
	c := mustParse(t, "--force", "-v", "--snapshot=x", "--name", "n")
	var ignored []string
	for _, n := range c.notes {
		if n.msg == "flag is no longer supported - ignoring" {
			ignored = append(ignored, n.fields[0].String)
		}
	}
	if strings.Join(ignored, " ") != "force snapshot v" {
		t.Fatalf("logged as ignored: %v", ignored)
	}
	if c.Name != "n" {
		t.Fatalf("--name after the ignored flags: %q", c.Name)
	}
}

// --dashboard auto serves the dashboard only where every URL serving the
// client HTTP endpoints listens on a loopback address or a unix socket.
func TestDashboardAuto(t *testing.T) {
	for _, tc := range []struct {
		args []string
		on   bool
	}{
		{nil, true}, // http://localhost:2379
		{[]string{"--listen-client-urls", "http://127.0.0.1:2379,http://[::1]:2379", "--advertise-client-urls", "http://127.0.0.1:2379"}, true},
		{[]string{"--listen-client-urls", "unix://cairn.sock:2379", "--advertise-client-urls", "unix://cairn.sock:2379"}, true},
		{[]string{"--listen-client-urls", "http://127.0.0.1:2379,http://10.0.0.5:2379", "--advertise-client-urls", "http://10.0.0.5:2379"}, false},
		{[]string{"--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://10.0.0.5:2379"}, false},
		{[]string{"--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://10.0.0.5:2379",
			"--listen-client-http-urls", "http://127.0.0.1:2378"}, true},
		{[]string{"--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://10.0.0.5:2379", "--dashboard", "on"}, true},
		{[]string{"--dashboard", "off"}, false},
	} {
		c := mustParse(t, tc.args...)
		if on := c.dashboardOn(); on != tc.on {
			t.Errorf("%v: dashboard on = %v, want %v", tc.args, on, tc.on)
		}
	}
}

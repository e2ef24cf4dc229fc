package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// A flag whose mechanism Cairn lacks logs one warning naming it; a flag
// asking for a feature not built yet fails the start naming the flag and
// the feature; defaults do neither.
func TestEffects(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		noEffect []string // flags or gates logged as having no effect
		fail     string   // the start-up error, if any
	}{
		{args: nil},
		{args: []string{"--backend-batch-limit", "5", "--raft-read-timeout", "10s", "--backend-bbolt-freelist-type", "array"},
			noEffect: []string{"--backend-batch-limit", "--raft-read-timeout", "--backend-bbolt-freelist-type"}},
		// TLS is built: its flags neither fail nor warn here (the files
		// are read when the member starts).
		{args: []string{"--cert-file", "/s.crt", "--key-file", "/s.key", "--peer-client-cert-auth", "--tls-max-version", "TLS1.3",
			"--auto-tls", "--peer-cert-allowed-cn", "etcd-peer", "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
		{args: []string{"--discovery-srv", "example.com"}, fail: "--discovery-srv: DNS SRV discovery is not built yet"},
		// v3 discovery is built: its flags neither fail nor warn.
		{args: []string{"--discovery-endpoints", "http://d:2379", "--discovery-token", "t", "--discovery-cacert", "/ca.crt",
			"--discovery-user", "u:p", "--discovery-insecure-transport=false"}},
		{args: []string{"--enable-distributed-tracing"}, fail: "--enable-distributed-tracing: distributed tracing is not built yet"},
		{args: []string{"--corrupt-check-time", "5m", "--compact-hash-check-time", "10s"}},
		{args: []string{"--feature-gates", "CompactHashCheck=true"}},
		{args: []string{"--feature-gates", "AllAlpha=true"},
			noEffect: []string{"LeaseCheckpoint=true", "LeaseCheckpointPersist=true", "PriorityRequest=true", "StopGRPCServiceOnDefrag=true"}},
		{args: []string{"--feature-gates", "TxnModeWriteWithSharedBuffer=false,FastLeaseKeepAlive=false"},
			noEffect: []string{"TxnModeWriteWithSharedBuffer=false", "FastLeaseKeepAlive=false"}},
		{args: []string{"--feature-gates", "SetMemberLocalAddr=true"}},
		// kubeadm's.
		{args: []string{"--feature-gates", "InitialCorruptCheck=true"}},
	} {
		c, err := parse(t, tc.args, nil)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		logger, logs := observedLogger()
		err = applyEffects(&c, logger)
		if tc.fail == "" && err != nil || tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.fail)
		}
		var logged []string
		for _, e := range logs.FilterMessageSnippet("no effect").All() {
			m := e.ContextMap()
			if f, ok := m["flag"]; ok {
				logged = append(logged, f.(string))
			} else {
				logged = append(logged, m["feature-gate"].(string))
			}
		}
		if tc.fail == "" && strings.Join(sorted(logged), " ") != strings.Join(sorted(tc.noEffect), " ") {
			t.Errorf("%v: logged no effect for %v, want %v", tc.args, logged, tc.noEffect)
		}
	}
	// Older kubeadm's flag for the same, and etcd 3.6's other names for
	// the corruption checks.
	c := mustParse(t, "--experimental-initial-corrupt-check=true", "--experimental-compact-hash-check-enabled",
		"--experimental-corrupt-check-time=3s", "--experimental-compact-hash-check-time=4s")
	for _, gate := range []string{"InitialCorruptCheck", "CompactHashCheck"} {
		if on, given := c.FeatureGates.enabled(gateNamed(gate)); !on || !given {
			t.Fatalf("the experimental flag did not turn %s on", gate)
		}
	}
	scfg := serverConfig(c, 0, 0, 0, nil, nil)
	if !scfg.InitialCorruptCheck || !scfg.CompactHashCheck || scfg.CorruptCheckTime != 3*time.Second || scfg.CompactHashCheckTime != 4*time.Second {
		t.Fatalf("server config %+v", scfg)
	}
	// The new names win.
	c = mustParse(t, "--experimental-corrupt-check-time=3s", "--corrupt-check-time=5s")
	if c.CorruptCheckTime != 5*time.Second {
		t.Fatalf("--corrupt-check-time = %v", c.CorruptCheckTime)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// etcd's gate syntax and semantics: an explicit value wins over
// AllAlpha/AllBeta, which cover the gates of their level left unnamed.
func TestFeatureGates(t *testing.T) {
	c := mustParse(t, "--feature-gates", "AllBeta=false, LeaseCheckpoint=true", "--feature-gates", "FastLeaseKeepAlive=true")
	for name, want := range map[string]bool{
		"FastLeaseKeepAlive": true, "TxnModeWriteWithSharedBuffer": false, "LeaseCheckpoint": true, "InitialCorruptCheck": false,
	} {
		if on, _ := c.FeatureGates.enabled(gateNamed(name)); on != want {
			t.Errorf("%s = %v, want %v", name, on, want)
		}
	}
	if got := c.FeatureGates.String(); got != "AllBeta=false,FastLeaseKeepAlive=true,LeaseCheckpoint=true" {
		t.Errorf("String() = %q", got)
	}
}

// The flags whose mechanisms live in the server reach server.Config.
func TestServerConfigWiring(t *testing.T) {
	c := mustParse(t, "--wal-dir", "/w", "--max-snapshots", "2", "--max-wals", "3", "--unsafe-no-fsync", "--force-new-cluster",
		"--pre-vote=false", "--initial-election-tick-advance=false", "--strict-reconfig-check=false",
		"--max-concurrent-streams", "10", "--grpc-keepalive-min-time", "1s", "--grpc-keepalive-interval", "2s",
		"--grpc-keepalive-timeout", "3s", "--metrics", "extensive", "--warning-apply-duration", "4s",
		"--warning-unary-request-duration", "5s", "--snapshot-catchup-entries", "6", "--lease-checkpoint-interval", "7s")
	sc := serverConfig(c, 0, 0, 0, zap.NewNop(), nil)
	if sc.WALDir != "/w" || sc.MaxSnapshots != 2 || sc.MaxWALs != 3 || !sc.UnsafeNoFsync || !sc.ForceNewCluster ||
		!sc.DisablePreVote || !sc.DisableInitialElectionTickAdvance || sc.StrictReconfigCheck ||
		sc.MaxConcurrentStreams != 10 || sc.GRPCKeepAliveMinTime != time.Second || sc.GRPCKeepAliveInterval != 2*time.Second ||
		sc.GRPCKeepAliveTimeout != 3*time.Second || sc.Metrics != "extensive" || sc.WarningApplyDuration != 4*time.Second ||
		sc.WarningUnaryRequestDuration != 5*time.Second || sc.SnapshotCatchUpEntries != 6 || sc.LeaseCheckpointInterval != 7*time.Second {
		t.Fatalf("server config %+v", sc)
	}
	sc = serverConfig(mustParse(t), 0, 0, 0, zap.NewNop(), nil)
	if sc.DisablePreVote || sc.DisableInitialElectionTickAdvance || !sc.StrictReconfigCheck || sc.MaxSnapshots != 5 || sc.MaxWALs != 5 {
		t.Fatalf("default server config %+v", sc)
	}
}

// --host-whitelist refuses other Host headers with etcd's 421; --cors
// echoes an allowed origin, and "*" allows all.
func TestAccessController(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	for _, tc := range []struct {
		cors, hosts    []string
		host, origin   string
		code           int
		allowedOrigins string
	}{
		{[]string{"*"}, []string{"*"}, "evil.example:2379", "http://x.example", 200, "*"},
		{[]string{"*"}, []string{"localhost", "127.0.0.1"}, "127.0.0.1:2379", "", 200, "*"},
		{[]string{"*"}, []string{"localhost"}, "evil.example:2379", "", http.StatusMisdirectedRequest, ""},
		{[]string{"http://a.example:80"}, []string{"*"}, "h:1", "http://a.example:80", 200, "http://a.example:80"},
		{[]string{"http://a.example:80"}, []string{"*"}, "h:1", "http://b.example:80", 200, ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/health", nil)
		req.Host = tc.host
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		newAccessController(accessConfig{cors: tc.cors, hosts: tc.hosts, logger: zap.NewNop()}, ok).ServeHTTP(rec, req)
		if rec.Code != tc.code || rec.Header().Get("Access-Control-Allow-Origin") != tc.allowedOrigins {
			t.Errorf("%+v: %d %q", tc, rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
		}
		if tc.code == http.StatusMisdirectedRequest && !strings.Contains(rec.Body.String(), "--host-whitelist") {
			t.Errorf("421 body %q", rec.Body.String())
		}
	}
}

// --socket-reuse-port lets a second listener bind a port in use.
func TestSocketReusePort(t *testing.T) {
	lc := listenConfig(true, true)
	l1, err := listen(lc, "http://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	u := "http://" + l1.Addr().String()
	l2, err := listen(lc, u)
	if err != nil {
		t.Fatalf("second listener with SO_REUSEPORT: %v", err)
	}
	l2.Close()
	if l3, err := listen(net.ListenConfig{}, u); err == nil {
		l3.Close()
		t.Fatal("a plain listener bound a port in use")
	}
}

// With SetMemberLocalAddr the member dials its peers from the first
// advertised peer URL's address that is neither loopback nor unspecified,
// as etcd; without a suitable one, or without the gate, from the kernel's
// choice.
func TestPeerLocalAddr(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for none
	}{
		{[]string{"--initial-advertise-peer-urls", "http://10.0.0.4:2380"}, ""},
		{[]string{"--feature-gates", "SetMemberLocalAddr=true", "--initial-advertise-peer-urls",
			"http://127.0.0.1:2380,https://localhost:2381,http://0.0.0.0:2382,https://10.0.0.4:2380,http://10.0.0.5:2380"}, "10.0.0.4"},
		{[]string{"--feature-gates", "SetMemberLocalAddr=true", "--initial-advertise-peer-urls", "http://[fd00::4]:2380"}, "fd00::4"},
		{[]string{"--feature-gates", "SetMemberLocalAddr=true", "--initial-advertise-peer-urls", "http://127.0.0.1:2380,http://node4:2380"}, ""},
	} {
		c, err := parse(t, tc.args, nil)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		logger, logs := observedLogger()
		got := peerLocalAddr(c, logger)
		if tc.want == "" && got != nil || tc.want != "" && !got.Equal(net.ParseIP(tc.want)) {
			t.Errorf("%v: local address %v, want %q", tc.args, got, tc.want)
		}
		warned := logs.FilterMessageSnippet("unable to set a member local address").Len() > 0
		if gated := len(tc.args) > 2; warned != (gated && tc.want == "") {
			t.Errorf("%v: warned %v", tc.args, warned)
		}
	}
}

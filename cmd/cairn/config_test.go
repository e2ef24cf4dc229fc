package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreEtcds(t *testing.T) {
	c, err := parseConfig(nil, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "default" || c.ListenClientURLs != "http://localhost:2379" || c.ListenPeerURLs != "http://localhost:2380" ||
		c.HeartbeatIntervalMs != 100 || c.ElectionTimeoutMs != 1000 || c.MaxRequestBytes != 1572864 || c.MaxTxnOps != 128 {
		t.Fatalf("defaults %+v", c)
	}
	if got := defaultInitialCluster(c.Name, c.InitialAdvertisePeerURLs); got != "default=http://localhost:2380" {
		t.Fatalf("initial cluster %q", got)
	}
}

// Environment variables fill flags not given, CAIRN_ before ETCD_; one
// that shadows a given flag is an error, an unknown one a warning.
func TestEnvironment(t *testing.T) {
	var out bytes.Buffer
	c, err := parseConfig([]string{"--name", "n1"}, []string{
		"CAIRN_DATA_DIR=/d1", "ETCD_DATA_DIR=/d2", "ETCD_SNAPSHOT_COUNT=7", "CAIRN_BOGUS=1", "PATH=/bin",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "n1" || c.DataDir != "/d1" || c.SnapshotCount != 7 {
		t.Fatalf("config %+v", c)
	}
	if !strings.Contains(out.String(), "unrecognized environment variable CAIRN_BOGUS=1") {
		t.Fatalf("warning missing: %q", out.String())
	}
	if _, err := parseConfig([]string{"--name", "n1"}, []string{"ETCD_NAME=n2"}, &out); err == nil ||
		!strings.Contains(err.Error(), "shadowed") {
		t.Fatalf("conflict: err = %v", err)
	}
	if _, err := parseConfig(nil, []string{"CAIRN_HEARTBEAT_INTERVAL=abc"}, &out); err == nil {
		t.Fatal("bad value accepted")
	}
}

// A config file with etcd's keys replaces flags and environment.
func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("name: fromfile\nheartbeat-interval: 50\nauto-compaction-retention: \"2h\"\ninitial-cluster-state: new\nunknown-key: 1\n"), 0o600)
	c, err := parseConfig([]string{"--config-file", path, "--name", "flag"}, []string{"CAIRN_DATA_DIR=/x"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "fromfile" || c.HeartbeatIntervalMs != 50 || c.AutoCompactionRetention != "2h" || c.DataDir != "" {
		t.Fatalf("config %+v", c)
	}
	os.WriteFile(path, []byte("heartbeat-interval: \"50\"\n"), 0o600)
	if _, err := parseConfig([]string{"--config-file", path}, nil, &bytes.Buffer{}); err == nil {
		t.Fatal("a string heartbeat-interval was accepted")
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
// exit, never a panic.
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
		{[]string{"extra"}, 1, "is not a valid flag"},
		{[]string{"--data-dir", filepath.Join(file, "sub")}, 1, "cannot access data directory"},
		{[]string{"--initial-cluster-state", "bogus", "--data-dir", t.TempDir()}, 1, "initial-cluster-state"},
		{[]string{"--election-timeout", "100", "--data-dir", t.TempDir()}, 1, "election-timeout"},
		{[]string{"--initial-cluster", "x=http://localhost:2380", "--data-dir", t.TempDir()}, 1, "couldn't find local name"},
		{[]string{"--log-level", "loud"}, 1, "--log-level"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if code := run([]string{"--version"}, nil, &stdout, &bytes.Buffer{}); code != 0 ||
		!strings.Contains(stdout.String(), "etcd API Version: 3.7.0") {
		t.Fatalf("exit %d, %q", code, stdout.String())
	}
}

// --watch-progress-notify-interval, etcd 3.6's name, or 3.5's
// experimental one when the new one is left alone; durations in the config
// file are nanoseconds, as in etcd's.
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
		c, err := parseConfig(tc.args, nil, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.watchProgressNotifyInterval(); err != nil || got != tc.want {
			t.Fatalf("%v: %v %v, want %v", tc.args, got, err, tc.want)
		}
	}
	c, _ := parseConfig([]string{"--watch-progress-notify-interval", "0s"}, nil, &bytes.Buffer{})
	if _, err := c.watchProgressNotifyInterval(); err == nil {
		t.Fatal("a zero interval was accepted")
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("watch-progress-notify-interval: 5000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig([]string{"--config-file", path}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.watchProgressNotifyInterval(); got != 5*time.Second {
		t.Fatalf("config file: %v", got)
	}
}

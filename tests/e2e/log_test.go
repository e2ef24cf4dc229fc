package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// Cairn logs etcd 3.7's lines at the same moments, so that what operators,
// scripts and etcd's own test framework grep for is there, and means the
// same. The one that matters most: etcd's e2e framework waits for "ready
// to serve client requests" and then uses the member at once.

// logText is what m has logged so far (all its starts).
func logText(t *testing.T, m *member) string {
	t.Helper()
	data, err := os.ReadFile(m.logPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

// waitLog waits until m's log holds want at least n times, and returns the
// log then.
func waitLog(t *testing.T, m *member, want string, n int) string {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		text := logText(t, m)
		if strings.Count(text, want) >= n {
			return text
		}
		if time.Now().After(deadline) {
			lines := strings.Split(text, "\n")
			t.Fatalf("%s: %q not logged %d times within %v; last lines:\n%s", m.name, want, n, waitDeadline,
				strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
		time.Sleep(10 * time.Millisecond) // polling a real process's log file
	}
}

// putNow is one Put through m alone, with no retry: a ready member must
// take it.
func putNow(t *testing.T, m *member, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := m.client().Put(ctx, key, "v"); err != nil {
		t.Fatalf("%s logged ready to serve client requests, then a Put failed: %v", m.name, err)
	}
	t.Logf("%s: Put right after ready took %v", m.name, time.Since(start))
}

// logEntry is a log line as etcd's TestServerJsonLogging reads it.
type logEntry struct {
	Level  string `json:"level"`
	TS     string `json:"ts"`
	Caller string `json:"caller"`
	Msg    string `json:"msg"`
}

// checkJSONLines checks, as etcd's TestServerJsonLogging does, that every
// line of a member's log is JSON with a level, a ts in etcd's layout, a
// caller and a msg, and that none is an error; it returns the lines'
// messages.
func checkJSONLines(t *testing.T, m *member) []string {
	t.Helper()
	var msgs []string
	for i, line := range strings.Split(strings.TrimSuffix(logText(t, m), "\n"), "\n") {
		var e logEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("%s line %d is not JSON: %v: %s", m.name, i+1, err, line)
			continue
		}
		if _, err := time.Parse("2006-01-02T15:04:05.999999Z0700", e.TS); err != nil || e.Level == "" || e.Caller == "" || e.Msg == "" {
			t.Errorf("%s line %d lacks level, ts (%v), caller or msg: %s", m.name, i+1, err, line)
		}
		// etcd's TestNoErrorLogsDuringNormalOperations: starts, restarts
		// and stops log no errors.
		if e.Level == "error" {
			t.Errorf("%s line %d: an error during normal operation: %s", m.name, i+1, line)
		}
		msgs = append(msgs, e.Msg)
	}
	return msgs
}

// TestLogReadyMeansReady: a member logs "ready to serve client requests"
// only once it can serve (it cannot without a quorum), and then takes a
// request at once; after a restart it says so again. Every line, at
// --log-level debug (gRPC's own lines included), is a JSON log line; the
// raft lines and the start and stop lines are etcd's.
func TestLogReadyMeansReady(t *testing.T) {
	c := newUnstartedCluster(t, 3, "--log-level", "debug")
	m0 := c.members[0]
	m0.start()
	// Alone, m0 campaigns and cannot win: it serves its ports but is not
	// ready.
	waitLog(t, m0, "now serving peer/client/metrics", 1)
	waitLog(t, m0, "became pre-candidate at term", 1)
	if strings.Contains(logText(t, m0), "ready to serve client requests") {
		t.Fatalf("m0 logged ready to serve client requests without a quorum")
	}
	c.members[1].start()
	c.members[2].start()
	for _, m := range c.members {
		waitLog(t, m, "ready to serve client requests", 1)
		putNow(t, m, "k-"+m.name)
	}
	lead := c.waitLeader()

	// A restart publishes again, and is ready again.
	m := c.members[(lead+1)%3]
	m.proc.interrupt(t)
	m.start()
	waitLog(t, m, "ready to serve client requests", 2)
	putNow(t, m, "after-restart")
	// Stopped, so that no log line is being written as it is read.
	for _, m := range c.members {
		m.proc.interrupt(t)
	}

	for _, m := range c.members {
		msgs := checkJSONLines(t, m)
		text := logText(t, m)
		want := []string{
			"Running: ", "starting an etcd server", "starting local member", "added member", "serving peer traffic",
			"serving client traffic insecurely; this is strongly discouraged!",
			"now serving peer/client/metrics", "published local member to cluster through raft",
			"ready to serve client requests",
			"received signal; shutting down", "closing etcd server", "closed etcd server",
		}
		for _, w := range want {
			found := false
			for _, msg := range msgs {
				found = found || msg == w
			}
			if !found {
				t.Errorf("%s never logged %q", m.name, w)
			}
		}
		// The v2store level in force (etcd 3.7 enforces write-only); etcd's
		// TestV2DeprecationEnforceDefaultValue waits for it.
		if !strings.Contains(text, `"v2-deprecation":"write-only"`) {
			t.Errorf("%s's start-up lines lack \"v2-deprecation\":\"write-only\"", m.name)
		}
		// Published, then ready: the order etcd's framework relies on.
		if strings.Index(text, "published local member to cluster through raft") > strings.Index(text, "ready to serve client requests") {
			t.Errorf("%s logged ready before published", m.name)
		}
		if !strings.Contains(text, `"logger":"raft"`) || !strings.Contains(text, " elected leader ") {
			t.Errorf("%s has no raft.node leader line", m.name)
		}
	}
	if text := logText(t, c.members[lead]); !strings.Contains(text, " became leader at term ") {
		t.Errorf("the leader, %s, never logged became leader at term", c.members[lead].name)
	}
}

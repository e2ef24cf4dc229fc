package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A member that cannot start says why in exactly one line: an error log
// line, or a plain one when --log-level hides errors. (The other lines
// are etcd's warnings about the configuration and its "Running: " line.)
func TestStartFailureOneLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		level, prefix string
	}{
		{"info", `{"level":"error"`},
		{"fatal", "cairn: "},
	} {
		var stdout, stderr bytes.Buffer
		code := run("cairn", []string{"--log-level", tc.level, "--data-dir", file}, nil, &stdout, &stderr)
		var lines []string
		for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
			if !strings.HasPrefix(l, `{"level":"warn"`) && !strings.HasPrefix(l, `{"level":"info"`) {
				lines = append(lines, l)
			}
		}
		if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], tc.prefix) ||
			!strings.Contains(lines[0], file) || !strings.Contains(lines[0], "not a directory") {
			t.Errorf("--log-level %s: exit %d, stderr:\n%s\nwant exit 1 and one line starting %q naming %s and the cause",
				tc.level, code, stderr.String(), tc.prefix, file)
		}
	}
}

// Logging settings that cannot be honoured stop the start, said as etcd
// says it: a JSON warning "failed to verify flags" from a default logger,
// and exit status 1.
func TestBadLoggingConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run("cairn", []string{"--log-level", "loud", "--data-dir", t.TempDir()}, nil, &stdout, &stderr)
	lines := parseLines(t, stderr.String())
	last := lines[len(lines)-1]
	if code != 1 || last.Level != "warn" || last.Msg != "failed to verify flags" || !strings.Contains(stderr.String(), `--log-level: \"loud\"`) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and a warning: failed to verify flags, naming --log-level", code, stderr.String())
	}
}

// A unix socket file left by a member that died does not keep the next
// start from listening there (etcd removes it too).
func TestListenOverStaleUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket file is not there: %v", err)
	}
	l, err = listen(net.ListenConfig{}, "unix://"+path)
	if err != nil {
		t.Fatalf("listening over a stale socket file: %v", err)
	}
	l.Close()
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// zapLog is etcd's default logging configuration with outputs.
func zapLog(outputs ...string) logConfig {
	return logConfig{Logger: "zap", Outputs: outputs, Level: "info", Format: "json"}
}

// logLine is a JSON log line as tools read it.
type logLine struct {
	Level  string `json:"level"`
	TS     string `json:"ts"`
	Logger string `json:"logger"`
	Caller string `json:"caller"`
	Msg    string `json:"msg"`
	Key    string `json:"key"`
}

// parseLines parses every line of out as a JSON log line.
func parseLines(t *testing.T, out string) []logLine {
	t.Helper()
	var lines []logLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", l, err)
		}
		lines = append(lines, ll)
	}
	return lines
}

// The default (etcd's): JSON lines on stderr with etcd's keys and its
// timestamp (microseconds, "Z" in UTC), the caller, the logger's name.
func TestLoggerDefaultJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	lg, err := newLogger(zapLog(), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	lg.Named("raft").Info("hello", zap.String("key", "v"))
	lg.Debug("hidden at info")
	if stdout.Len() != 0 {
		t.Errorf("stdout got %q", stdout.String())
	}
	lines := parseLines(t, stderr.String())
	if len(lines) != 1 {
		t.Fatalf("want one line, got %q", stderr.String())
	}
	l := lines[0]
	if l.Level != "info" || l.Msg != "hello" || l.Key != "v" || l.Logger != "raft" || !strings.HasPrefix(l.Caller, "cairn/logger_test.go:") {
		t.Errorf("line %+v", l)
	}
	// etcd's e2e TestServerJsonLogging parses ts with this layout.
	ts, err := time.Parse("2006-01-02T15:04:05.999999Z0700", l.TS)
	if err != nil || len(l.TS) < len("2006-01-02T15:04:05.000000") || time.Since(ts) > time.Hour {
		t.Errorf("ts %q: %v", l.TS, err)
	}
	if time.Local == time.UTC && !strings.HasSuffix(l.TS, "Z") {
		t.Errorf("ts %q does not end in Z", l.TS)
	}
}

func TestLoggerConsoleFormat(t *testing.T) {
	var stderr bytes.Buffer
	lc := zapLog("stderr")
	lc.Format = "console"
	lg, err := newLogger(lc, &bytes.Buffer{}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	lg.Warn("careful", zap.String("key", "v"))
	// etcd's console lines: ts, level, caller, msg, then the fields as JSON.
	f := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\t")
	if len(f) != 5 || f[1] != "warn" || !strings.HasPrefix(f[2], "cairn/logger_test.go:") || f[3] != "careful" || f[4] != `{"key": "v"}` {
		t.Errorf("console line %q", stderr.String())
	}
}

func TestLoggerLevel(t *testing.T) {
	var stderr bytes.Buffer
	lc := zapLog()
	lc.Level = "debug"
	lg, err := newLogger(lc, &bytes.Buffer{}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	lg.Debug("shown at debug")
	if l := parseLines(t, stderr.String()); len(l) != 1 || l[0].Level != "debug" {
		t.Errorf("debug line: %q", stderr.String())
	}
	stderr.Reset()
	lc.Level = "error"
	if lg, err = newLogger(lc, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatal(err)
	}
	lg.Warn("hidden at error")
	if stderr.Len() != 0 {
		t.Errorf("warn at --log-level error: %q", stderr.String())
	}
}

// Outputs: stdout, files (appended to, created if missing), several at
// once; each line goes to every output.
func TestLoggerOutputs(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.log")
	if err := os.WriteFile(existing, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(dir, "created.log")
	var stdout, stderr bytes.Buffer
	lg, err := newLogger(zapLog("stdout", existing, created, "stdout"), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("to all")
	if stderr.Len() != 0 {
		t.Errorf("stderr got %q", stderr.String())
	}
	if l := parseLines(t, stdout.String()); len(l) != 1 || l[0].Msg != "to all" {
		t.Errorf("stdout (listed twice, written once): %q", stdout.String())
	}
	data, err := os.ReadFile(existing)
	if err != nil {
		t.Fatal(err)
	}
	if rest, ok := strings.CutPrefix(string(data), "kept\n"); !ok || parseLines(t, rest)[0].Msg != "to all" {
		t.Errorf("existing file not appended to: %q", data)
	}
	data, err = os.ReadFile(created)
	if err != nil {
		t.Fatal(err)
	}
	if parseLines(t, string(data))[0].Msg != "to all" {
		t.Errorf("created file: %q", data)
	}
}

func TestLoggerDevNull(t *testing.T) {
	var stdout, stderr bytes.Buffer
	lg, err := newLogger(zapLog("stderr", "/dev/null"), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	lg.Error("nowhere")
	if stdout.Len()+stderr.Len() != 0 {
		t.Errorf("/dev/null among the outputs discards everything; got %q %q", stdout.String(), stderr.String())
	}
}

// What etcd 3.7 refuses, refused with its messages (checked against the
// etcd 3.7.3 binary).
func TestLoggerRefuses(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	rotate := func(lc logConfig, configJSON string) logConfig {
		lc.EnableRotation, lc.RotationConfigJSON = true, configJSON
		return lc
	}
	const okJSON = `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`
	for _, tc := range []struct {
		name string
		lc   logConfig
		want string
	}{
		{"capnslog", logConfig{Logger: "capnslog", Level: "info"}, "--logger=capnslog is removed in v3.5"},
		{"other logger", logConfig{Logger: "foo", Level: "info"}, `unknown logger option "foo"`},
		{"default among others", zapLog("default", "stderr"), `multi logoutput for "default" is not supported yet`},
		{"format", logConfig{Logger: "zap", Level: "info", Format: "xml"}, "unknown log format: xml, supported values json, console"},
		{"level", logConfig{Logger: "zap", Level: "loud"}, `--log-level: "loud" is not one of`},
		{"unopenable file", zapLog(filepath.Join(dir, "no", "such", "dir")), `open sink "` + filepath.Join(dir, "no", "such", "dir") + `"`},
		{"journal", zapLog("systemd/journal"), "not supported"},
		{"rotate stderr", rotate(zapLog("stderr"), okJSON), "--log-outputs requires a single file path when --log-rotate-config-json is defined"},
		{"rotate default", rotate(zapLog(), okJSON), "--log-outputs requires a single file path"},
		{"rotate two files", rotate(zapLog(a, b), okJSON), "--log-outputs requires a single file path"},
		{"rotation JSON syntax", rotate(zapLog(a), "{bad"), "improperly formatted log rotation config: invalid character 'b'"},
		{"rotation JSON types", rotate(zapLog(a), `{"maxsize":"x"}`), "invalid log rotation config: json: cannot unmarshal string into Go struct field logRotationConfig.Logger.maxsize of type int"},
	} {
		_, err := newLogger(tc.lc, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// Rotation of one file, other outputs being stderr or stdout, is
	// allowed, as in etcd.
	if _, err := newLogger(rotate(zapLog("stderr", a), okJSON), &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("rotating one file besides stderr: %v", err)
	}
}

// With rotation, a file past its maxsize (in MB) is moved aside and a new
// one started.
func TestLoggerRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cairn.log")
	lc := zapLog(path)
	lc.EnableRotation, lc.RotationConfigJSON = true, `{"maxsize": 1, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`
	lg, err := newLogger(lc, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 200)
	for i := range 8000 { // about 2 MB; distinct messages, so none sampled away
		lg.Info(fmt.Sprintf("line %d", i), zap.String("pad", pad))
	}
	files, err := filepath.Glob(filepath.Join(dir, "cairn*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("files after 2 MB with maxsize 1 MB: %v", files)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over maxsize", f, fi.Size())
		}
	}
}

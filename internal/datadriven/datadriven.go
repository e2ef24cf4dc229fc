// Package datadriven runs scripted tests: a file of commands, each followed
// by the output it must produce. It is how Cairn tests state machines (the
// raft core first): a scenario reads as a story, and a behaviour change
// shows up as a reviewed diff of expected output.
//
// File format:
//
//	# A comment says what the next scenario proves.
//	command arg1 key=value key=(v1,v2)
//	----
//	expected output, any number of non-empty lines
//	<blank line>
//
// Run `go test ... -rewrite` to regenerate the expected output in place;
// review every rewritten line as a behaviour change.
package datadriven

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of datadriven test files")

// TestData is one command of a script.
type TestData struct {
	// Pos is file:line of the command, for failure messages.
	Pos     string
	Cmd     string
	CmdArgs []CmdArg
	// Expected is the expected output, without its trailing newline.
	Expected string
}

// CmdArg is key, key=value or key=(v1,v2).
type CmdArg struct {
	Key  string
	Vals []string
}

// HasArg reports whether the command has an argument named key.
func (d *TestData) HasArg(key string) bool {
	_, ok := d.arg(key)
	return ok
}

func (d *TestData) arg(key string) (CmdArg, bool) {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return a, true
		}
	}
	return CmdArg{}, false
}

// Str returns the value of key, or def if absent.
func (d *TestData) Str(t testing.TB, key, def string) string {
	a, ok := d.arg(key)
	if !ok {
		return def
	}
	if len(a.Vals) != 1 {
		t.Fatalf("%s: %s wants one value", d.Pos, key)
	}
	return a.Vals[0]
}

// Uint returns the numeric value of key, or def if absent.
func (d *TestData) Uint(t testing.TB, key string, def uint64) uint64 {
	s := d.Str(t, key, "")
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %s: %v", d.Pos, key, err)
	}
	return v
}

// Uints returns the numeric values of key (nil if absent).
func (d *TestData) Uints(t testing.TB, key string) []uint64 {
	a, ok := d.arg(key)
	if !ok {
		return nil
	}
	out := make([]uint64, len(a.Vals))
	for i, s := range a.Vals {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %s: %v", d.Pos, key, err)
		}
		out[i] = v
	}
	return out
}

// Positional returns the arguments that have no value, as numbers.
func (d *TestData) Positional(t testing.TB) []uint64 {
	var out []uint64
	for _, a := range d.CmdArgs {
		if len(a.Vals) > 0 {
			continue
		}
		v, err := strconv.ParseUint(a.Key, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	return out
}

// RunTest runs the script at path, calling f for each command; f returns the
// command's output.
func RunTest(t *testing.T, path string, f func(t *testing.T, d *TestData) string) {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parse(path, string(content))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, b := range blocks {
		out.WriteString(b.preamble)
		if b.data == nil {
			continue
		}
		d := b.data
		actual := strings.TrimRight(f(t, d), "\n")
		if strings.Contains(actual, "\n\n") {
			t.Fatalf("%s: output of %s contains a blank line, which the format cannot hold:\n%s", d.Pos, d.Cmd, actual)
		}
		if actual == "" {
			actual = "ok"
		}
		out.WriteString(b.cmdLine + "\n----\n" + actual + "\n")
		if !*rewrite && actual != d.Expected {
			t.Fatalf("%s: %s\nexpected:\n%s\n\nfound:\n%s", d.Pos, b.cmdLine, d.Expected, actual)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type block struct {
	preamble string // comments and blank lines before the command
	cmdLine  string
	data     *TestData
}

func parse(path, content string) ([]block, error) {
	var blocks []block
	var pre strings.Builder
	sc := bufio.NewScanner(strings.NewReader(content))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			pre.WriteString(line + "\n")
			continue
		}
		d := &TestData{Pos: fmt.Sprintf("%s:%d", path, lineNo)}
		cmd, args, err := parseCmd(trimmed)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", d.Pos, err)
		}
		d.Cmd, d.CmdArgs = cmd, args
		if sep, ok := next(); !ok || sep != "----" {
			return nil, fmt.Errorf("%s: want ---- after the command", d.Pos)
		}
		var exp []string
		for {
			l, ok := next()
			if !ok || l == "" {
				break
			}
			exp = append(exp, l)
		}
		d.Expected = strings.Join(exp, "\n")
		blocks = append(blocks, block{preamble: pre.String(), cmdLine: trimmed, data: d})
		pre.Reset()
		pre.WriteString("\n")
	}
	if sc.Err() != nil {
		return nil, sc.Err()
	}
	// Trailing comments survive a rewrite; the separator blank line after the
	// last block does not double.
	if rest := strings.TrimPrefix(pre.String(), "\n"); rest != "" {
		blocks = append(blocks, block{preamble: "\n" + rest})
	}
	return blocks, nil
}

func parseCmd(line string) (string, []CmdArg, error) {
	fields := strings.Fields(line)
	var args []CmdArg
	for _, f := range fields[1:] {
		key, val, hasVal := strings.Cut(f, "=")
		if !hasVal {
			args = append(args, CmdArg{Key: key})
			continue
		}
		if strings.HasPrefix(val, "(") {
			if !strings.HasSuffix(val, ")") {
				return "", nil, fmt.Errorf("unterminated list in %q", f)
			}
			val = strings.TrimSuffix(strings.TrimPrefix(val, "("), ")")
			var vals []string
			if val != "" {
				vals = strings.Split(val, ",")
			}
			args = append(args, CmdArg{Key: key, Vals: vals})
			continue
		}
		args = append(args, CmdArg{Key: key, Vals: []string{val}})
	}
	return fields[0], args, nil
}

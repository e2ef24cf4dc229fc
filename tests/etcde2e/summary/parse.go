package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// action is a test2json event's Action for the events that end a test.
type action string

const (
	actionPass action = "pass"
	actionFail action = "fail"
	actionSkip action = "skip"
)

// event is one line of test2json output (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64 // seconds
	Output  string
}

// test is a test (or, with an empty name, the package itself) as a run
// left it.
type test struct {
	pkg, name string
	// action is how the test ended, empty while it has not: a test still
	// without one when its stream ends was cut short.
	action  action
	elapsed time.Duration
	output  []string
	// run is the stream the test came from.
	run *run
}

func (t *test) hasOutput(s string) bool {
	for _, line := range t.output {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// fullName is the test's package (as test2json's -p named it) and name,
// "common TestKVPut/NoTLS": etcd's two test packages share test names.
func (t *test) fullName() string { return t.pkg + " " + t.name }

// outcome is how the test ended, a test that never ended counting as
// failed.
func (t *test) outcome() action {
	if t.action == "" {
		return actionFail
	}
	return t.action
}

// run is one test2json stream: one test binary's tests, in the order
// they started.
type run struct {
	tests  []*test
	byName map[string]*test
}

func parse(r io.Reader) (*run, error) {
	rn := &run{byName: map[string]*test{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for line := 1; sc.Scan(); line++ {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		t := rn.byName[ev.Test]
		if t == nil {
			t = &test{pkg: ev.Package, name: ev.Test, run: rn}
			rn.byName[ev.Test] = t
			rn.tests = append(rn.tests, t)
		}
		switch ev.Action {
		case "output":
			t.output = append(t.output, ev.Output)
		case string(actionPass), string(actionFail), string(actionSkip):
			t.action = action(ev.Action)
			t.elapsed = time.Duration(ev.Elapsed * float64(time.Second))
		}
	}
	return rn, sc.Err()
}

// hasSubtests reports whether a test named name ran subtests.
func (rn *run) hasSubtests(name string) bool {
	for n := range rn.byName {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}

func (rn *run) anyTestFailed() bool {
	for _, t := range rn.tests {
		if t.name != "" && t.outcome() == actionFail {
			return true
		}
	}
	return false
}

// Command summary reads the `go test -json` (test2json) streams of a run of
// etcd's end-to-end tests (scripts/etcd-e2e.sh) and prints what a reader
// needs: every failed test with the end of its output, the pass, fail and
// skip counts, and the slowest tests. It exits 1 when a test failed, or
// when a package failed without naming a test (a panic, a timeout, a
// binary that would not start), so that CI fails with it.
//
//	summary [-label cairn] [-results out.txt] [-tail 40] run-common.json run-e2e.json
//
// Counts are of leaf tests (a test with subtests counts through its
// subtests), since etcd runs one test body per cluster configuration as
// subtests. A test that started but never finished (the binary died under
// it) counts as failed. -results writes one line per leaf test, "PASS
// TestKVPut/NoTLS 0.60", sorted by name, so that two runs (Cairn and stock
// etcd) can be compared with diff.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	label := flag.String("label", "", "what ran (cairn, etcd 3.7.3), printed with the counts")
	results := flag.String("results", "", "write one 'ACTION name seconds' line per leaf test to this file")
	tail := flag.Int("tail", 40, "lines of a failed test's output to print")
	slowest := flag.Int("slowest", 10, "how many of the slowest leaf tests to list")
	flag.Parse()

	var runs []*run
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "summary:", err)
			os.Exit(2)
		}
		r, err := parse(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "summary: %s: %v\n", path, err)
			os.Exit(2)
		}
		runs = append(runs, r)
	}
	rep := summarize(runs)
	rep.print(os.Stdout, *label, *tail, *slowest)
	if *results != "" {
		if err := os.WriteFile(*results, []byte(rep.resultLines()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "summary:", err)
			os.Exit(2)
		}
	}
	if rep.failed() {
		os.Exit(1)
	}
}

// report is the outcome of one or more runs, leaf tests only.
type report struct {
	leaves []*test
	// brokenPackages are packages that failed with no failed test to
	// show for it, each with the end of its own output.
	brokenPackages []*test
	// leakedAfterPassing are packages whose tests passed and whose only
	// failure is etcd's check for goroutines left running after them.
	leakedAfterPassing []*test
	elapsed            time.Duration
}

// leakReport is what etcd's testutil.CheckLeakedGoroutine prints when a
// goroutine outlives a package's tests.
const leakReport = "Unexpected goroutines running after all test(s)"

func summarize(runs []*run) *report {
	rep := &report{}
	for _, r := range runs {
		for _, t := range r.tests {
			if t.name == "" {
				switch {
				case t.action != actionFail || r.anyTestFailed():
				case t.hasOutput(leakReport):
					rep.leakedAfterPassing = append(rep.leakedAfterPassing, t)
				default:
					rep.brokenPackages = append(rep.brokenPackages, t)
				}
				rep.elapsed += t.elapsed
				continue
			}
			if !r.hasSubtests(t.name) {
				rep.leaves = append(rep.leaves, t)
			}
		}
	}
	sort.Slice(rep.leaves, func(i, j int) bool { return rep.leaves[i].fullName() < rep.leaves[j].fullName() })
	return rep
}

func (rep *report) count(a action) int {
	n := 0
	for _, t := range rep.leaves {
		if t.outcome() == a {
			n++
		}
	}
	return n
}

func (rep *report) failed() bool {
	return rep.count(actionFail) > 0 || len(rep.brokenPackages) > 0
}

func (rep *report) print(w io.Writer, label string, tailLines, slowest int) {
	for _, t := range rep.leaves {
		if t.outcome() != actionFail {
			continue
		}
		how := "FAIL"
		if t.action == "" {
			how = "FAIL (did not finish)"
		}
		fmt.Fprintf(w, "--- %s: %s (%.2fs)\n", how, t.fullName(), t.elapsed.Seconds())
		for _, line := range lastLines(t.output, tailLines) {
			fmt.Fprintf(w, "    %s", line)
		}
	}
	for _, p := range rep.brokenPackages {
		fmt.Fprintf(w, "--- FAIL: package %s, with no failed test to show for it\n", p.pkg)
		for _, line := range lastLines(p.output, tailLines) {
			fmt.Fprintf(w, "    %s", line)
		}
	}
	for _, p := range rep.leakedAfterPassing {
		var names []string
		for _, t := range rep.leaves {
			if t.run == p.run {
				names = append(names, t.fullName())
			}
		}
		fmt.Fprintf(w, "note: package %s failed after its tests passed (%s): a goroutine outlived them (etcd's leak check)\n",
			p.pkg, strings.Join(names, ", "))
	}
	if slowest > 0 && len(rep.leaves) > 0 {
		bySlowness := append([]*test(nil), rep.leaves...)
		sort.SliceStable(bySlowness, func(i, j int) bool { return bySlowness[i].elapsed > bySlowness[j].elapsed })
		if len(bySlowness) > slowest {
			bySlowness = bySlowness[:slowest]
		}
		fmt.Fprintln(w, "slowest:")
		for _, t := range bySlowness {
			fmt.Fprintf(w, "  %7.2fs %s %s\n", t.elapsed.Seconds(), t.outcome(), t.fullName())
		}
	}
	if label != "" {
		label += ": "
	}
	fmt.Fprintf(w, "%s%d passed, %d failed, %d skipped (leaf tests) in %s\n", label,
		rep.count(actionPass), rep.count(actionFail), rep.count(actionSkip), rep.elapsed.Round(time.Second))
}

func (rep *report) resultLines() string {
	var b strings.Builder
	for _, t := range rep.leaves {
		fmt.Fprintf(&b, "%s %s %.2f\n", strings.ToUpper(string(t.outcome())), t.fullName(), t.elapsed.Seconds())
	}
	return b.String()
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

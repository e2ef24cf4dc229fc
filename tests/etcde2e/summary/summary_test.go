package main

import (
	"strings"
	"testing"
)

// A stream as `go tool test2json -p common` writes it for a test with two
// subtests (one fails), a skipped test, a passing test, and a test the
// binary's timeout cut short.
const stream = `{"Action":"start","Package":"common"}
{"Action":"run","Package":"common","Test":"TestKVPut"}
{"Action":"run","Package":"common","Test":"TestKVPut/NoTLS"}
{"Action":"output","Package":"common","Test":"TestKVPut/NoTLS","Output":"ok\n"}
{"Action":"pass","Package":"common","Test":"TestKVPut/NoTLS","Elapsed":0.6}
{"Action":"run","Package":"common","Test":"TestKVPut/PeerTLS_and_ClientTLS"}
{"Action":"output","Package":"common","Test":"TestKVPut/PeerTLS_and_ClientTLS","Output":"    kv_test.go:50: unexpected error\n"}
{"Action":"fail","Package":"common","Test":"TestKVPut/PeerTLS_and_ClientTLS","Elapsed":0.85}
{"Action":"fail","Package":"common","Test":"TestKVPut","Elapsed":1.5}
{"Action":"run","Package":"common","Test":"TestAlarm"}
{"Action":"skip","Package":"common","Test":"TestAlarm","Elapsed":0}
{"Action":"run","Package":"common","Test":"TestStatus"}
{"Action":"pass","Package":"common","Test":"TestStatus","Elapsed":2}
{"Action":"run","Package":"common","Test":"TestWatch"}
{"Action":"output","Package":"common","Test":"TestWatch","Output":"panic: test timed out after 1m0s\n"}
{"Action":"fail","Package":"common","Elapsed":60}
`

func TestSummaryCountsLeavesAndUnfinishedTests(t *testing.T) {
	r, err := parse(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	rep := summarize([]*run{r})
	if got, want := rep.resultLines(), `SKIP common TestAlarm 0.00
PASS common TestKVPut/NoTLS 0.60
FAIL common TestKVPut/PeerTLS_and_ClientTLS 0.85
PASS common TestStatus 2.00
FAIL common TestWatch 0.00
`; got != want {
		t.Errorf("result lines:\n%s\nwant:\n%s", got, want)
	}
	if p, f, s := rep.count(actionPass), rep.count(actionFail), rep.count(actionSkip); p != 2 || f != 2 || s != 1 {
		t.Errorf("pass/fail/skip = %d/%d/%d, want 2/2/1 (the unfinished TestWatch fails)", p, f, s)
	}
	if !rep.failed() {
		t.Error("a run with failed tests must fail")
	}
	var out strings.Builder
	rep.print(&out, "cairn", 40, 2)
	for _, want := range []string{
		"--- FAIL: common TestKVPut/PeerTLS_and_ClientTLS (0.85s)\n    " + "    kv_test.go:50: unexpected error\n",
		"--- FAIL (did not finish): common TestWatch",
		"panic: test timed out",
		"cairn: 2 passed, 2 failed, 1 skipped (leaf tests) in 1m0s\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// A package that fails with no failed test (TestMain's leaked-goroutine
// check, a binary that cannot start) fails the run, with its output.
func TestSummaryFailsOnPackageFailureWithoutFailedTest(t *testing.T) {
	r, err := parse(strings.NewReader(`{"Action":"run","Package":"e2e","Test":"TestGateway"}
{"Action":"pass","Package":"e2e","Test":"TestGateway","Elapsed":1}
{"Action":"output","Package":"e2e","Output":"leaked goroutine\n"}
{"Action":"fail","Package":"e2e","Elapsed":3}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := summarize([]*run{r})
	if !rep.failed() || len(rep.brokenPackages) != 1 {
		t.Fatalf("failed=%v broken=%d, want a failed run naming package e2e", rep.failed(), len(rep.brokenPackages))
	}
	var out strings.Builder
	rep.print(&out, "", 40, 0)
	if !strings.Contains(out.String(), "package e2e, with no failed test") || !strings.Contains(out.String(), "leaked goroutine") {
		t.Errorf("output:\n%s", out.String())
	}
}

// etcd's leak check failing a package whose tests passed is a note, not a
// failure: it fails against stock etcd too.
func TestSummaryNotesALeakAfterPassingTests(t *testing.T) {
	r, err := parse(strings.NewReader(`{"Action":"run","Package":"e2e","Test":"TestEtcdExampleConfig"}
{"Action":"pass","Package":"e2e","Test":"TestEtcdExampleConfig","Elapsed":0.7}
{"Action":"output","Package":"e2e","Output":"PASS\n"}
{"Action":"output","Package":"e2e","Output":"Unexpected goroutines running after all test(s).\n"}
{"Action":"fail","Package":"e2e","Elapsed":1}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := summarize([]*run{r})
	if rep.failed() {
		t.Error("a leak after passing tests failed the run")
	}
	var out strings.Builder
	rep.print(&out, "", 40, 0)
	if want := "note: package e2e failed after its tests passed (e2e TestEtcdExampleConfig)"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

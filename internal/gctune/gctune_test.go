package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{20 * mib, 64 * mib, 320}, // the package doc's examples
		{32 * mib, 64 * mib, 200},
		{512 * mib, 64 * mib, 100}, // a large heap keeps Go's default
		{64 * mib, 64 * mib, 100},
		{30 * mib, 64 * mib, 214}, // rounded up: never less headroom than asked
		{1 * mib, 64 * mib, 1600}, // bounded: the runtime's 4 MiB minimum heap, scaled by 16, is the headroom
		{0, 64 * mib, 1600},       // nothing live yet
		{1 * mib, 2 * mib, 100},   // a headroom below the minimum heap: Go's default
	} {
		if got := Percent(c.live, c.headroom); got != c.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", c.live, c.headroom, got, c.want)
		}
	}
}

func TestWanted(t *testing.T) {
	if !Wanted([]string{"HOME=/root", "GOMEMLIMIT=1GiB", "XGOGC=50"}) {
		t.Error("not wanted without GOGC")
	}
	for _, env := range [][]string{{"GOGC=100"}, {"PATH=/bin", "GOGC=off"}, {"GOGC="}} {
		if Wanted(env) {
			t.Errorf("wanted with %q: the operator's GOGC must stand", env)
		}
	}
}

// read returns the named runtime metrics.
func read(names ...string) []uint64 {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	out := make([]uint64, len(s))
	for i := range s {
		out[i] = s[i].Value.Uint64()
	}
	return out
}

// TestTunerKeepsHeadroom checks what the tuner is for: the next collection
// waits until the heap has grown by the headroom while the live heap is
// smaller than that, Go's default GOGC holds once it is larger, and Stop
// puts the operator's GOGC back.
func TestTunerKeepsHeadroom(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(80))
	const headroom = 64 << 20
	runtime.GC()
	tu := Start(headroom, time.Millisecond)
	defer tu.Stop()
	// Start adjusts at once, from the last collection's live heap.
	v := read(liveMetric, "/gc/heap/goal:bytes", percentMetric)
	live, goal, percent := v[0], v[1], v[2]
	if goal < live+headroom*9/10 {
		t.Fatalf("live heap %d, next collection at %d (GOGC %d): less than %d of headroom", live, goal, percent, headroom)
	}
	if percent <= 100 {
		t.Fatalf("GOGC %d with a live heap of %d: not raised", percent, live)
	}

	// A live heap above the headroom: back to Go's default.
	big := make([][]byte, 96)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	runtime.GC()
	deadline := time.Now().Add(30 * time.Second)
	for read(percentMetric)[0] != 100 {
		if time.Now().After(deadline) {
			v := read(liveMetric, percentMetric)
			t.Fatalf("live heap %d, GOGC %d after 30 s: want 100", v[0], v[1])
		}
		time.Sleep(time.Millisecond) // polling a condition, not timing it
	}
	runtime.KeepAlive(big)

	tu.Stop()
	tu.Stop()
	if p := read(percentMetric)[0]; p != 80 {
		t.Fatalf("GOGC after Stop: %d, want the 80 it found", p)
	}
}

// The tuner leaves GOGC alone for moves under a tenth, but always goes
// back to Go's default once the live heap is past the headroom: a
// collection in the middle of the heap's growth (live just under the
// headroom: GOGC 105) must not keep it above 100 (TestTunerKeepsHeadroom
// failed so).
func TestChanges(t *testing.T) {
	for _, c := range []struct {
		prev, p int
		want    bool
	}{
		{0, 100, true}, {0, 1600, true},
		{1600, 1600, false}, {1600, 1500, false}, {1600, 1700, false},
		{1600, 1440, true}, {1600, 1760, true},
		{105, 100, true}, {110, 100, true}, {100, 100, false},
		{100, 105, false}, {100, 110, true},
	} {
		if got := changes(c.prev, c.p); got != c.want {
			t.Errorf("changes(%d, %d) = %v, want %v", c.prev, c.p, got, c.want)
		}
	}
}

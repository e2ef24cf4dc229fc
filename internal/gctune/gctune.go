package gctune

import (
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultHeadroomBytes is the least heap growth between two
	// collections cairn allows: 64 MiB.
	DefaultHeadroomBytes = 64 << 20
	// minPercent is Go's default GOGC, kept for any heap at least
	// Headroom large.
	minPercent = 100
	// heapMinimumBytes is the runtime's least heap goal at GOGC 100 (its
	// defaultHeapMinimum), which it scales by GOGC: at GOGC 6,400 no
	// collection comes before 256 MiB, whatever is live. Percent stays at
	// or below headroom / heapMinimumBytes so that the goal stays near the
	// live heap plus the headroom.
	heapMinimumBytes = 4 << 20
	liveMetric       = "/gc/heap/live:bytes"
	stacksMetric     = "/gc/scan/stack:bytes"
	globalsMetric    = "/gc/scan/globals:bytes"
	percentMetric    = "/gc/gogc:percent"
)

// Percent is the GOGC that lets a heap grow by at least headroomBytes
// before the next collection: headroom / live, in percent, rounded up, at
// least 100 and at most headroom / 4 MiB (see heapMinimumBytes). Go's
// pacer applies GOGC to the live heap plus the goroutine stacks and
// globals it scans, so those count in liveBytes.
func Percent(liveBytes, headroomBytes uint64) int {
	most := max(headroomBytes*100/heapMinimumBytes, minPercent)
	if liveBytes == 0 {
		return int(most)
	}
	p := (headroomBytes*100 + liveBytes - 1) / liveBytes
	return int(min(max(p, minPercent), most))
}

// Wanted reports whether the tuner should run in a process with this
// environment: not if the operator set GOGC.
func Wanted(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOGC=") {
			return false
		}
	}
	return true
}

// Tuner sets GOGC from the live heap until stopped.
type Tuner struct {
	headroomBytes uint64
	every         time.Duration
	stop          chan struct{}
	done          chan struct{}
	stopOnce      sync.Once

	// Owned by the tuner's goroutine.
	sample  []metrics.Sample
	percent int // what the tuner last set; 0 before it set any
	before  int // GOGC when it started, restored by Stop
}

// Start starts a tuner keeping headroomBytes of headroom, looking at the
// live heap every interval.
func Start(headroomBytes uint64, every time.Duration) *Tuner {
	t := &Tuner{
		headroomBytes: headroomBytes,
		every:         every,
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
		sample:        []metrics.Sample{{Name: liveMetric}, {Name: stacksMetric}, {Name: globalsMetric}},
	}
	t.before = currentPercent()
	t.adjust()
	go t.run()
	return t
}

func (t *Tuner) run() {
	defer close(t.done)
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.adjust()
		}
	}
}

// adjust sets GOGC for the live heap the last collection found, when it
// moved by more than a tenth: every change recomputes the heap goal.
func (t *Tuner) adjust() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() == metrics.KindUint64 && t.sample[0].Value.Uint64() == 0 {
		return // no collection yet: nothing measured, and a raised GOGC would raise the first goal
	}
	var scanned uint64
	for _, s := range t.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return // not this runtime's metrics: leave GOGC alone
		}
		scanned += s.Value.Uint64()
	}
	p := Percent(scanned, t.headroomBytes)
	if !changes(t.percent, p) {
		return
	}
	debug.SetGCPercent(p)
	t.percent = p
}

// changes reports whether the tuner, having set GOGC to prev (0: nothing
// yet), sets it to p: when it moved by a tenth or more, or reached Go's
// default. Without the second, a collection that happened to find a live
// heap just under the headroom (GOGC 105, say) kept GOGC there once the
// heap was much larger, where the default belongs.
func changes(prev, p int) bool {
	if prev == 0 {
		return true
	}
	if p == prev {
		return false
	}
	return p == minPercent || p*10 <= prev*9 || p*10 >= prev*11
}

// Stop ends the tuner and puts back the GOGC it found. It may be called
// more than once.
func (t *Tuner) Stop() {
	t.stopOnce.Do(func() {
		close(t.stop)
		<-t.done
		debug.SetGCPercent(t.before)
	})
}

// currentPercent is GOGC as the runtime has it now.
func currentPercent() int {
	s := []metrics.Sample{{Name: percentMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return minPercent
	}
	return int(s[0].Value.Uint64())
}

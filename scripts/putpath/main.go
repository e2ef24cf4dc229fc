// Command putpath reads a member's Go execution trace, as printed by
// `go tool trace -d=parsed`, taken while one client puts one key after
// another (scripts/trace-put1c.sh takes them), and prints where a put's
// time goes: the medians and 90th percentiles of the steps of its path
// through the member's goroutines, found by the stacks that wake each
// goroutine (the gRPC handler proposing to the raft loop, the raft loop
// handing messages to a peer's goroutine, and so on).
//
//	putpath -role leader leader.txt
//	putpath -role follower follower.txt
//
// A leader's put runs from a request handed to a gRPC worker to the next
// one; a follower's from an append handed to its raft loop to the
// acknowledgement on the wire.
// A put whose steps do not all appear, in order, is left out and counted.
// The stacks named here are Cairn's and gRPC's function names: renaming
// one of them makes the tool find no complete put, which it says.
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// event is one goroutine state transition of the trace.
type event struct {
	at     float64 // microseconds since the trace's first event
	g      int64   // the goroutine that caused it (-1: none)
	target int64   // the goroutine whose state changed
	what   string  // e.g. "Waiting->Runnable"
	stack  string  // the first frames of the stacks, space-separated
}

var (
	header = regexp.MustCompile(`^M=-?\d+ P=-?\d+ G=(-?\d+) (\w+) Time=(\d+)(.*)$`)
	goID   = regexp.MustCompile(`GoID=(\d+) (\w+->\w+)`)
)

// stackFrames is how many frames of an event's stacks are matched.
const stackFrames = 6

func parse(r io.Reader) ([]event, error) {
	var evs []event
	var cur *event
	var frames int
	var t0 int64 = -1
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			if cur != nil {
				evs = append(evs, *cur)
				cur = nil
			}
			t, _ := strconv.ParseInt(m[3], 10, 64)
			if t0 < 0 {
				t0 = t
			}
			if m[2] != "StateTransition" {
				continue
			}
			gm := goID.FindStringSubmatch(m[4])
			if gm == nil {
				continue // a processor's or thread's transition
			}
			g, _ := strconv.ParseInt(m[1], 10, 64)
			target, _ := strconv.ParseInt(gm[1], 10, 64)
			cur = &event{at: float64(t-t0) / 1e3, g: g, target: target, what: gm[2]}
			frames = 0
			continue
		}
		s := strings.TrimSpace(line)
		if cur == nil || s == "" || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "=") || frames >= stackFrames {
			continue
		}
		fn, _, _ := strings.Cut(s, " @")
		cur.stack += fn + " "
		frames++
	}
	if cur != nil {
		evs = append(evs, *cur)
	}
	return evs, sc.Err()
}

func (e event) wakes(stack ...string) bool {
	if e.what != "Waiting->Runnable" {
		return false
	}
	for _, s := range stack {
		if !strings.Contains(e.stack, s) {
			return false
		}
	}
	return true
}

func (e event) syscall(name string) bool {
	return e.what == "Running->Syscall" && strings.Contains(e.stack, "syscall."+name)
}

// mark is one step of a put, seen at a time.
type mark struct {
	at   float64
	step int
}

// step is one step of a put's path: its name, and the event that marks
// it (the first step's starts a put).
type step struct {
	name  string
	match func(event) bool
}

// path is a path's steps in order and their marks: a put has one mark of
// each, the first starting it. With next, the last step is the next put's
// first (its step is not in steps).
type path struct {
	steps []step
	next  string
	marks []mark
}

// newPath marks the events of evs that match steps, each with the first
// step it matches.
func newPath(evs []event, next string, steps ...step) path {
	p := path{steps: steps, next: next}
	for _, e := range evs {
		for i, s := range steps {
			if s.match(e) {
				p.marks = append(p.marks, mark{e.at, i})
				break
			}
		}
	}
	return p
}

// names are the steps' names, and the next put's first if the path has one.
func (p path) names() []string {
	var names []string
	for _, s := range p.steps {
		names = append(names, s.name)
	}
	if p.next != "" {
		names = append(names, p.next)
	}
	return names
}

// woken matches an event that wakes a goroutine from a stack holding all
// of stack.
func woken(stack ...string) func(event) bool {
	return func(e event) bool { return e.wakes(stack...) }
}

// The hand-offs both roles' paths and goroutine sets are found by.
var (
	handedToPeer = woken("Transport).Send", "handleReady") // the raft loop to a peer goroutine
	handedToRaft = woken("raftAdapter).Process")           // a peer's message to the raft loop
)

// targets are the goroutines whose transitions match.
func targets(evs []event, match func(event) bool) set {
	gs := set{}
	for _, e := range evs {
		if match(e) {
			gs.add(e.target)
		}
	}
	return gs
}

// peerWriters are gRPC's writer goroutines of the peers' connections:
// those the peer goroutines wake.
func peerWriters(evs []event, peers set) set {
	return targets(evs, func(e event) bool { return e.wakes("executeAndPut") && peers.has(e.g) })
}

// leaderPath marks a leader's steps. gRPC's writer goroutine of a client's
// connection is the one a response's headers wake.
func leaderPath(evs []event) path {
	peers := targets(evs, handedToPeer)
	writers := peerWriters(evs, peers)
	clientWriters := targets(evs, woken("writeHeaderLocked"))
	return newPath(evs, "the next request handed to a worker (the client's turnaround)",
		step{"a client's request handed to a gRPC worker", woken("operateHeaders")},
		step{"its handler proposes to the raft loop", woken("raftnode.(*Node).propose")},
		step{"the raft loop hands the append to a peer goroutine", handedToPeer},
		step{"the peer goroutine running", func(e event) bool { return e.what == "Runnable->Running" && peers.has(e.target) }},
		step{"the append on the wire (first write)", func(e event) bool { return e.syscall("write") && writers.has(e.g) }},
		step{"the ack handed to the raft loop", handedToRaft},
		step{"committed: the entry handed to the applier", woken("sendApply")},
		step{"applied: the writer woken", woken("waitRegistry).trigger")},
		step{"the response queued to gRPC's writer", woken("writeHeaderLocked")},
		step{"the response on the wire", func(e event) bool { return e.syscall("write") && clientWriters.has(e.g) }},
	)
}

// followerPath marks a follower's steps, from an append handed to its
// raft loop to the ack on the wire.
func followerPath(evs []event) path {
	writers := peerWriters(evs, targets(evs, handedToPeer))
	raftLoop := targets(evs, handedToRaft)
	return newPath(evs, "",
		step{"the append handed to the raft loop", handedToRaft},
		step{"the WAL's fdatasync begins", func(e event) bool { return e.syscall("Fdatasync") && raftLoop.has(e.g) }},
		step{"the raft loop back from it", func(e event) bool { return strings.HasPrefix(e.what, "Syscall->") && raftLoop.has(e.g) }},
		step{"the ack handed to the peer goroutine", handedToPeer},
		step{"the ack on the wire", func(e event) bool { return e.syscall("write") && writers.has(e.g) }},
	)
}

// puts cuts the marks into puts: from each first step, the first mark of
// every later step in order (with next, then the next put's first). A put
// that misses a step, or whose steps come out of order, is left out.
func (p path) puts() (complete [][]float64, partial int) {
	slices.SortStableFunc(p.marks, func(a, b mark) int { return cmp.Compare(a.at, b.at) })
	var cur []float64
	for _, m := range p.marks {
		switch {
		case m.step == 0:
			switch {
			case cur != nil && p.next != "" && len(cur) == len(p.steps):
				complete = append(complete, append(cur, m.at))
			case cur != nil:
				partial++
			}
			cur = []float64{m.at}
		case cur != nil && m.step == len(cur) && len(cur) < len(p.steps):
			cur = append(cur, m.at)
			if p.next == "" && len(cur) == len(p.steps) {
				complete = append(complete, cur)
				cur = nil
			}
		}
	}
	if cur != nil {
		partial++
	}
	return complete, partial
}

func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

type set map[int64]bool

func (s set) add(g int64)      { s[g] = true }
func (s set) has(g int64) bool { return s[g] }

func main() {
	role := flag.String("role", "leader", "the member the trace is of: leader or follower")
	flag.Parse()
	if flag.NArg() != 1 || (*role != "leader" && *role != "follower") {
		fmt.Fprintln(os.Stderr, "usage: putpath -role leader|follower TRACE.txt (go tool trace -d=parsed's output)")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	evs, err := parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := leaderPath(evs)
	if *role == "follower" {
		p = followerPath(evs)
	}
	puts, partial := p.puts()
	fmt.Printf("%s: %d puts complete, %d partial\n", *role, len(puts), partial)
	if len(puts) == 0 {
		os.Exit(1)
	}
	fmt.Println("| step (microseconds since the one before) | median | p90 |")
	fmt.Println("| --- | --- | --- |")
	names := p.names()
	for i := 1; i < len(names); i++ {
		d := make([]float64, len(puts))
		for j, put := range puts {
			d[j] = put[i] - put[i-1]
		}
		fmt.Printf("| %s | %.0f | %.0f |\n", names[i], quantile(d, 0.5), quantile(d, 0.9))
	}
	total := make([]float64, len(puts))
	for j, put := range puts {
		total[j] = put[len(put)-1] - put[0]
	}
	fmt.Printf("| all of it | %.0f | %.0f |\n", quantile(total, 0.5), quantile(total, 0.9))
}

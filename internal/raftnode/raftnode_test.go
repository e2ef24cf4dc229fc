package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

type nopTransport struct{}

func (nopTransport) Send([]raftpb.Message) {}

// startOne runs a one-member node on fs (the WAL's) and returns it with
// the entries it asks to apply, as they arrive.
func startOne(t *testing.T, fs vfs.FS) *Node {
	t.Helper()
	return startOneWith(t, fs, 0)
}

// startOneWith is startOne with a bound on the bytes the applier holds.
func startOneWith(t *testing.T, fs vfs.FS, maxApplyBytes int64) *Node {
	t.Helper()
	n := newOne(t, fs, maxApplyBytes)
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// newOne is startOneWith without starting the loop.
func newOne(t *testing.T, fs vfs.FS, maxApplyBytes int64) *Node {
	t.Helper()
	return newOneRefusing(t, fs, maxApplyBytes, nil)
}

// newOneRefusing is newOne with Config.Refused.
func newOneRefusing(t *testing.T, fs vfs.FS, maxApplyBytes int64, refused func(tag uint64, err error)) *Node {
	t.Helper()
	storage := raft.NewMemoryStorage()
	if err := raft.Bootstrap(storage, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(fs, "/wal", wal.Metadata{MemberID: 1, ClusterID: 1}, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ents, _ := storage.Entries(1, 2, ^uint64(0))
	if err := w.Save(storage.HardState(), ents, true); err != nil {
		t.Fatal(err)
	}
	sn, err := snap.New(vfs.NewMem(), "/snap", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{
		ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, TickInterval: time.Millisecond,
		Storage: storage, WAL: w, Snap: sn, Transport: nopTransport{},
		CampaignOnStart: true, Limits: Limits{MaxApplyBytes: maxApplyBytes}, Refused: refused,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// proposeUntilApplied proposes data until an entry holding it comes out to
// apply (the first proposals can precede the election).
func proposeUntilApplied(t *testing.T, n *Node, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := n.Propose(ctx, []byte(data)); err != nil && !errors.Is(err, raft.ErrProposalDropped) {
			t.Fatal(err)
		}
		timeout := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case ta, ok := <-n.Apply():
				if !ok {
					t.Fatalf("loop stopped: %v", n.Err())
				}
				n.ApplyDone(ta)
				for _, e := range ta.Entries {
					if string(e.Data) == data {
						return
					}
				}
			case <-timeout:
				break wait
			case <-ctx.Done():
				t.Fatal("not applied in 10s")
			}
		}
	}
}

// A failed fsync of the WAL stops the member: the loop ends with the
// error, and the entry whose write failed is never handed out to apply.
func TestFailedSyncStopsTheLoop(t *testing.T) {
	fs := vfs.NewErrorFS(vfs.NewMem())
	n := startOne(t, fs)
	proposeUntilApplied(t, n, "before")
	fs.FailNth(vfs.OpSync, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.Propose(ctx, []byte("after"))
	for ta := range n.Apply() { // closed when the loop stops
		for _, e := range ta.Entries {
			if string(e.Data) == "after" {
				t.Fatalf("entry %d was handed out to apply although its WAL write failed", e.Index)
			}
		}
	}
	<-n.Done()
	if err := n.Err(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Err() = %v, want the injected fsync failure", err)
	}
	if err := n.Propose(ctx, []byte("later")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose after the failure: %v, want ErrStopped", err)
	}
}

// The applier never holds more than MaxApplyBytes of entries it has not
// reported applied (a single larger batch aside): the loop waits for
// ApplyDone instead of queueing without bound.
func TestApplyHandOffBoundedInBytes(t *testing.T) {
	const maxApply = 4 << 10
	n := startOneWith(t, vfs.NewMem(), maxApply)
	proposeUntilApplied(t, n, "warm-up")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := make([]byte, 1000)
	const proposals = 64
	go func() {
		// Proposals may block once the loop waits on the applier: this
		// goroutine ends when they are all taken, or the test's node stops.
		for i := range proposals {
			value[0] = byte(i)
			if err := n.Propose(ctx, append([]byte(nil), value...)); err != nil {
				return
			}
		}
	}()
	var held []ToApply
	got := 0
	for got < proposals {
		var ta ToApply
		var ok bool
		select {
		case ta, ok = <-n.Apply():
		default:
			// Apply late: a batch is reported done only when nothing new
			// has come (the loop may be waiting for room: it hands over a
			// batch only if it fits beside those held, or alone).
			if len(held) > 0 {
				n.ApplyDone(held[0])
				held = held[1:]
				continue
			}
			select {
			case ta, ok = <-n.Apply():
			case <-ctx.Done():
				t.Fatalf("%d of %d proposals applied in 30 s", got, proposals)
			}
		}
		if !ok {
			t.Fatalf("loop stopped: %v", n.Err())
		}
		if b := n.applyBytes.Load(); b > maxApply && b != int64(ta.Bytes()) {
			t.Fatalf("the applier holds %d bytes, over the bound %d", b, maxApply)
		}
		held = append(held, ta)
		for _, e := range ta.Entries {
			if len(e.Data) == len(value) {
				got++
			}
		}
	}
	for _, ta := range held {
		n.ApplyDone(ta)
	}
	if b := n.applyBytes.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after every batch was reported applied", b)
	}
}

// Limits refuse a request size no WAL record can hold, and combinations
// that cannot work together.
func TestLimitsCheck(t *testing.T) {
	for _, tc := range []struct {
		lim     Limits
		request int
		ok      bool
	}{
		{Limits{}, 1536 * 1024, true},
		{Limits{}, MaxRequestBytesLimit, true},
		{Limits{}, MaxRequestBytesLimit + 1, false},
		{Limits{}, 0, false},
		{Limits{MaxUncommittedBytes: 1 << 20}, 2 << 20, false},
		{Limits{MaxApplyBytes: 1 << 20, MaxCommittedSizePerReady: 2 << 20}, 1 << 10, false},
	} {
		if err := tc.lim.Check(tc.request); (err == nil) != tc.ok {
			t.Errorf("%+v with requests of %d bytes: %v, want ok=%v", tc.lim, tc.request, err, tc.ok)
		}
	}
}

// catchUpAfterSnapshot logs 40 entries of 1 KiB behind the founding one,
// takes a snapshot at 40 with limits, and returns the first index the
// in-memory log keeps.
func catchUpAfterSnapshot(t *testing.T, limits Limits) uint64 {
	t.Helper()
	storage := raft.NewMemoryStorage()
	if err := raft.Bootstrap(storage, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(vfs.NewMem(), "/wal", wal.Metadata{MemberID: 1, ClusterID: 1}, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ents, _ := storage.Entries(1, 2, ^uint64(0))
	var more []raftpb.Entry
	for i := uint64(2); i <= 41; i++ {
		more = append(more, raftpb.Entry{Term: 1, Index: i, Data: make([]byte, 1<<10)})
	}
	hs := raftpb.HardState{Term: 1, Vote: 1, Commit: 41}
	if err := w.Save(hs, append(ents, more...), true); err != nil {
		t.Fatal(err)
	}
	if err := storage.Append(more); err != nil {
		t.Fatal(err)
	}
	storage.SetHardState(hs)
	sn, err := snap.New(vfs.NewMem(), "/snap", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverConfig{
		ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, Storage: storage, Applied: 41,
		Log: w, Snaps: sn, Sender: nopTransport{}, Rand: rand.New(rand.NewPCG(1, 1)), Limits: limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.TakeSnapshot(40, raftpb.ConfState{Voters: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	first, _ := storage.FirstIndex()
	return first
}

// After a snapshot the in-memory log keeps SnapshotCatchUpEntries entries
// before it for slow followers, fewer when their data passes
// SnapshotCatchUpBytes: large values do not hold gigabytes in memory.
func TestCatchUpEntriesBoundedInBytes(t *testing.T) {
	if first := catchUpAfterSnapshot(t, Limits{SnapshotCatchUpEntries: 30}); first != 11 {
		t.Fatalf("30 catch-up entries, 512 MiB: the log starts at %d, want 11", first)
	}
	// 10 KiB hold entries 31 to 40 exactly.
	limits := Limits{SnapshotCatchUpEntries: 30, SnapshotCatchUpBytes: 10 << 10}
	if first := catchUpAfterSnapshot(t, limits); first != 31 {
		t.Fatalf("30 catch-up entries in at most 10 KiB: the log starts at %d, want 31", first)
	}
	limits.SnapshotCatchUpBytes = 100 << 10
	if first := catchUpAfterSnapshot(t, limits); first != 11 {
		t.Fatalf("30 catch-up entries in at most 100 KiB: the log starts at %d, want 11", first)
	}
}

// ProposeTagged, the server's request path: a proposal that finds the
// loop's queue full gives up with context.DeadlineExceeded once its timer
// fires; accepted proposals are applied and never reported; a refused
// one is reported to Config.Refused with its own tag and raft's reason.
func TestProposeTagged(t *testing.T) {
	type refusal struct {
		tag uint64
		err error
	}
	refusals := make(chan refusal, 1)
	refused := func(tag uint64, err error) {
		select {
		case refusals <- refusal{tag, err}:
		default:
			t.Errorf("a second refusal: %d, %v", tag, err)
		}
	}
	idle := newOneRefusing(t, vfs.NewMem(), 0, refused) // its loop never runs
	expired := make(chan time.Time)
	close(expired)
	queued := 0
	for ; ; queued++ {
		err := idle.ProposeTagged(context.Background(), expired, []byte("x"), 0, uint64(queued))
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil || queued > 1<<20 {
			t.Fatalf("proposal %d to a loop that never runs: %v", queued, err)
		}
	}
	if queued != cap(idle.propc) {
		t.Fatalf("%d proposals queued before one timed out, want the queue's %d", queued, cap(idle.propc))
	}
	if idle.Taken(1) {
		t.Fatal("a loop that never ran took a proposal")
	}
	if err := newOne(t, vfs.NewMem(), 0).ProposeTagged(context.Background(), nil, []byte("x"), 0, 1); err == nil {
		t.Fatal("ProposeTagged without Config.Refused: no error")
	}

	n := newOneRefusing(t, vfs.NewMem(), 0, refused)
	n.Start()
	t.Cleanup(n.Stop)
	proposeUntilApplied(t, n, "warm-up")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const proposals = 200
	// The applier, beside the proposer: the loop hands out no more than
	// it is told were applied.
	applied := make(chan int)
	go func() {
		seen := map[string]bool{}
		defer func() { applied <- len(seen) }()
		for len(seen) < proposals {
			select {
			case ta, ok := <-n.Apply():
				if !ok {
					return
				}
				for _, e := range ta.Entries {
					if len(e.Data) == 4 && e.Data[0] == 'p' {
						seen[string(e.Data)] = true
					}
				}
				n.ApplyDone(ta)
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := range proposals {
		if err := n.ProposeTagged(ctx, nil, fmt.Appendf(nil, "p%03d", i), 0, uint64(i)); err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
	}
	// A leader-only proposal in another term is refused, with its tag.
	if err := n.ProposeTagged(ctx, nil, []byte("stale"), n.Term()+1, 9999); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-refusals:
		if r.tag != 9999 || !errors.Is(r.err, ErrNotLeader) {
			t.Fatalf("refusal %d, %v; want 9999, ErrNotLeader", r.tag, r.err)
		}
	case <-ctx.Done():
		t.Fatal("the stale proposal was never refused")
	}
	if got := <-applied; got != proposals {
		t.Fatalf("%d of %d proposals applied (loop error: %v)", got, proposals, n.Err())
	}
	if !n.Taken(proposals - 1) {
		t.Fatalf("proposals applied but not taken (Taken(%d) false)", proposals-1)
	}
	n.Stop()
	if err := n.ProposeTagged(context.Background(), nil, []byte("late"), 0, 10000); !errors.Is(err, ErrStopped) {
		t.Fatalf("a proposal to a stopped loop: %v, want %v", err, ErrStopped)
	}
}

package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// The crash test drives a WAL on the in-memory file system with a random,
// raft-like sequence of saves, overwrites, snapshots, releases and installed
// snapshots, sometimes making a disk operation fail, and crashes the file
// system at random points. After each crash it reopens from the newest valid
// snapshot and checks what it reads against a model: the list of records the
// test asked the WAL to write, of which a prefix is known to be synced.
//
// What it proves: what Open returns is exactly the state after some prefix
// of the records written, never shorter than the synced prefix. So nothing
// synced is lost, nothing torn or half-written is returned, and nothing
// after damage is trusted.
//
//	CAIRN_WAL_SEED=N   run one seed, logging each step
//	CAIRN_WAL_SEEDS=N  run seeds 1..N (default 500)

type modelKind int

const (
	modelEntry modelKind = iota
	modelState
	modelTaken
	modelInstalled
)

// modelRecord is one record as the test asked for it.
type modelRecord struct {
	kind  modelKind
	entry raftpb.Entry
	state raftpb.HardState
	snap  Snapshot
}

// modelState is the result of replaying records: what Open should return.
type modelResult struct {
	found      bool
	superseded bool
	state      raftpb.HardState
	entries    []raftpb.Entry
}

// replayModel is the reading rule of the package doc, written plainly over
// the whole record list (no segments, no checksums).
func replayModel(recs []modelRecord, from Snapshot) modelResult {
	var r modelResult
	for _, rec := range recs {
		switch rec.kind {
		case modelEntry:
			if rec.entry.Index > from.Index {
				r.entries = append(r.entries[:rec.entry.Index-from.Index-1], rec.entry)
			}
		case modelState:
			r.state = rec.state
		case modelTaken, modelInstalled:
			if rec.kind == modelInstalled {
				if rec.snap.Index > from.Index {
					r.superseded = true
					return r
				}
				r.entries = nil
				r.state.Commit = max(r.state.Commit, rec.snap.Index)
			}
			if rec.snap == from {
				r.found = true
			}
		}
	}
	return r
}

// validModel is ValidSnapshots over the record list.
func validModel(recs []modelRecord) []Snapshot {
	var snaps, valid []Snapshot
	var commit uint64
	for _, rec := range recs {
		switch rec.kind {
		case modelState:
			commit = rec.state.Commit
		case modelInstalled:
			commit = max(commit, rec.snap.Index)
			snaps = slices.DeleteFunc(snaps, func(s Snapshot) bool { return s.Index < rec.snap.Index })
			snaps = append(snaps, rec.snap)
		case modelTaken:
			snaps = append(snaps, rec.snap)
		}
	}
	for _, s := range snaps {
		if s.Index <= commit {
			valid = append(valid, s)
		}
	}
	return valid
}

// crashRun is one seed's run.
type crashRun struct {
	t    *testing.T
	rng  *rand.Rand
	mem  *vfs.MemFS
	efs  *vfs.ErrorFS
	opts Options
	log  bool

	w       *WAL
	records []modelRecord
	synced  int // records known to be durable
	failed  bool

	// The raft-like state the generator keeps, so its saves are ones raft
	// could make.
	term, vote, commit uint64
	snapIndex          uint64 // the newest snapshot's index
	lastIndex          uint64
	hs                 raftpb.HardState // last state saved
	// terms holds the term of every entry after the newest snapshot.
	terms map[uint64]uint64
}

const walDir = "/wal"

func (r *crashRun) logf(format string, args ...any) {
	if r.log {
		r.t.Logf(format, args...)
	}
}

// fail records an error from the WAL: expected only when a fault was
// injected, and fatal for the run until the next crash, as for a server.
func (r *crashRun) check(op string, err error) bool {
	if err == nil {
		return true
	}
	if !errors.Is(err, vfs.ErrInjected) {
		r.t.Fatalf("%s: %v", op, err)
	}
	r.logf("  %s failed: %v", op, err)
	r.failed = true
	return false
}

func (r *crashRun) entry(i uint64) raftpb.Entry {
	size := r.rng.IntN(64)
	if r.rng.IntN(8) == 0 {
		size = r.rng.IntN(3000)
	}
	data := make([]byte, size)
	for j := range data {
		data[j] = byte(r.rng.IntN(256))
	}
	typ := raftpb.EntryNormal
	if r.rng.IntN(20) == 0 {
		typ = raftpb.EntryConfChange
	}
	return raftpb.Entry{Index: i, Term: r.term, Type: typ, Data: data}
}

// save saves es and the current HardState as raft would, recording both.
func (r *crashRun) save(es []raftpb.Entry, mustSync bool) {
	hs := raftpb.HardState{Term: r.term, Vote: r.vote, Commit: r.commit}
	for _, e := range es {
		r.records = append(r.records, modelRecord{kind: modelEntry, entry: e})
	}
	if hs != r.hs {
		r.records = append(r.records, modelRecord{kind: modelState, state: hs})
	}
	r.logf("  save %s %+v sync=%v", describe(es), hs, mustSync)
	if !r.check("save", r.w.Save(hs, es, mustSync)) {
		return
	}
	r.hs = hs
	if len(es) > 0 {
		r.lastIndex = es[len(es)-1].Index
	}
	for _, e := range es {
		r.terms[e.Index] = e.Term
	}
	if mustSync {
		r.synced = len(r.records)
	}
}

func (r *crashRun) step() {
	switch p := r.rng.IntN(100); {
	case p < 45: // append
		n := 1 + r.rng.IntN(5)
		var es []raftpb.Entry
		for i := range uint64(n) {
			es = append(es, r.entry(r.lastIndex+1+i))
		}
		if r.rng.IntN(4) == 0 && r.lastIndex > r.commit {
			// Advance the commit index with the append.
			r.commit += 1 + uint64(r.rng.IntN(int(r.lastIndex-r.commit)))
		}
		r.save(es, r.rng.IntN(10) < 8)
	case p < 55: // a new term overwrites the uncommitted suffix
		if r.lastIndex <= r.commit {
			return
		}
		r.term++
		r.vote = uint64(1 + r.rng.IntN(3))
		from := r.commit + 1 + uint64(r.rng.IntN(int(r.lastIndex-r.commit)))
		n := 1 + r.rng.IntN(4)
		var es []raftpb.Entry
		for i := range uint64(n) {
			es = append(es, r.entry(from+i))
		}
		r.save(es, true)
	case p < 70: // commit only, not synced
		if r.lastIndex > r.commit {
			r.commit += 1 + uint64(r.rng.IntN(int(r.lastIndex-r.commit)))
			r.save(nil, false)
		}
	case p < 78: // take a snapshot, maybe release
		if r.commit <= r.snapIndex || r.hs.Commit < r.commit {
			return
		}
		idx := r.snapIndex + 1 + uint64(r.rng.IntN(int(r.commit-r.snapIndex)))
		snap := Snapshot{Index: idx, Term: r.terms[idx]}
		r.records = append(r.records, modelRecord{kind: modelTaken, snap: snap})
		r.logf("  snapshot %+v", snap)
		if !r.check("snapshot", r.w.SaveSnapshot(snap)) {
			return
		}
		r.synced = len(r.records)
		r.snapIndex = idx
		if r.rng.IntN(2) == 0 {
			n, err := r.w.Release(idx)
			r.logf("  release %d: removed %d", idx, n)
			r.check("release", err)
		}
	case p < 81: // install a snapshot from a leader that is ahead
		r.term += uint64(r.rng.IntN(2))
		idx := max(r.commit, r.snapIndex) + 1 + uint64(r.rng.IntN(10))
		snap := Snapshot{Index: idx, Term: r.term}
		r.records = append(r.records, modelRecord{kind: modelInstalled, snap: snap})
		r.logf("  install %+v", snap)
		if !r.check("install", r.w.ResetToSnapshot(snap)) {
			return
		}
		r.synced = len(r.records)
		r.snapIndex, r.lastIndex, r.commit = idx, idx, idx
		r.hs.Commit = max(r.hs.Commit, idx) // as the WAL reads it back
		r.terms = map[uint64]uint64{idx: snap.Term}
		// Raft saves the HardState in the same Ready; a crash can come
		// first.
		if r.rng.IntN(2) == 0 {
			r.save(nil, r.rng.IntN(2) == 0)
		}
	case p < 85:
		r.logf("  sync")
		if r.check("sync", r.w.Sync()) {
			r.synced = len(r.records)
		}
	default: // a bigger batch, as under load
		n := 5 + r.rng.IntN(30)
		var es []raftpb.Entry
		for i := range uint64(n) {
			es = append(es, r.entry(r.lastIndex+1+i))
		}
		r.save(es, true)
	}
}

// crashAndRecover crashes the file system, reopens, checks the result
// against the model and adopts it.
func (r *crashRun) crashAndRecover() {
	if r.rng.IntN(2) == 0 {
		r.logf("crash (synced data only)")
		r.mem.Crash()
	} else {
		r.logf("crash (random unsynced sectors survive)")
		r.mem.CrashRandom(r.rng)
	}
	r.failed = false

	valid, err := ValidSnapshots(r.efs, walDir)
	if err != nil {
		r.t.Fatalf("ValidSnapshots after crash: %v\n%s", err, r.mem)
	}
	from := valid[len(valid)-1]
	w, st, err := Open(r.efs, walDir, from, r.opts)
	if err != nil {
		r.t.Fatalf("Open(%+v) after crash: %v\n%s", from, err, r.mem)
	}
	// Find the prefix of the records this is the state after.
	match := -1
	for k := len(r.records); k >= r.synced; k-- {
		want := replayModel(r.records[:k], from)
		// Released segments take their snapshot records with them.
		mv := validModel(r.records[:k])
		if len(mv) >= len(valid) && slices.Equal(mv[len(mv)-len(valid):], valid) && want.found && !want.superseded &&
			want.state == st.HardState && entriesEqual(want.entries, st.Entries) {
			match = k
			break
		}
	}
	if match < 0 {
		want := replayModel(r.records[:r.synced], from)
		r.t.Fatalf("after the crash, from %+v: read state %+v entries %s, valid snapshots %v;\n"+
			"no prefix of the %d records written (%d synced) gives that; the synced prefix gives state %+v entries %s, valid snapshots %v",
			from, st.HardState, describe(st.Entries), valid, len(r.records), r.synced,
			want.state, describe(want.entries), validModel(r.records[:r.synced]))
	}
	r.logf("recovered %d of %d records (%d synced): from %+v, state %+v, entries %s",
		match, len(r.records), r.synced, from, st.HardState, describe(st.Entries))
	// Every other valid snapshot opens too, to the same log.
	for _, s := range valid[:len(valid)-1] {
		w, st, err := Open(r.efs, walDir, s, r.opts)
		if err != nil {
			r.t.Fatalf("Open(%+v), a valid snapshot, after crash: %v\n%s", s, err, r.mem)
		}
		w.Close()
		want := replayModel(r.records[:match], s)
		if !want.found || want.superseded || want.state != st.HardState || !entriesEqual(want.entries, st.Entries) {
			r.t.Fatalf("Open(%+v): state %+v entries %s; the model says state %+v entries %s",
				s, st.HardState, describe(st.Entries), want.state, describe(want.entries))
		}
	}
	r.records = r.records[:match]
	r.synced = match
	r.w = w
	r.checkValidSnapshots()
	r.hs = st.HardState
	r.term, r.vote, r.commit = st.HardState.Term, st.HardState.Vote, st.HardState.Commit
	r.snapIndex = from.Index
	r.lastIndex = from.Index + uint64(len(st.Entries))
	r.terms = map[uint64]uint64{from.Index: from.Term}
	for _, e := range st.Entries {
		r.terms[e.Index] = e.Term
	}
	if r.term == 0 {
		r.term = 1
	}
}

// checkValidSnapshots checks that the WAL's list of valid snapshots, kept
// in memory, is the one read from its segments.
func (r *crashRun) checkValidSnapshots() {
	got, err := r.w.ValidSnapshots()
	if err != nil {
		r.t.Fatalf("(*WAL).ValidSnapshots: %v", err)
	}
	want, err := ValidSnapshots(r.efs, walDir)
	if err != nil {
		r.t.Fatalf("ValidSnapshots: %v\n%s", err, r.mem)
	}
	if !slices.Equal(got, want) {
		r.t.Fatalf("the WAL holds the valid snapshots %v, its segments %v", got, want)
	}
}

func entriesEqual(a, b []raftpb.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y raftpb.Entry) bool {
		return x.Index == y.Index && x.Term == y.Term && x.Type == y.Type && string(x.Data) == string(y.Data)
	})
}

func runCrashSeed(t *testing.T, seed uint64, log bool) {
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	mem := vfs.NewMem()
	r := &crashRun{
		t:     t,
		rng:   rng,
		mem:   mem,
		efs:   vfs.NewErrorFS(mem),
		opts:  Options{SegmentBytes: randomSegmentBytes(rng), KeepReleased: rng.IntN(3)},
		log:   log,
		term:  1,
		terms: map[uint64]uint64{0: 0},
	}
	r.logf("seed %d: segments of %d bytes, keep %d released", seed, r.opts.SegmentBytes, r.opts.KeepReleased)
	w, err := Create(r.efs, walDir, testMD, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	r.records = []modelRecord{{kind: modelTaken}}
	r.synced = 1

	for cycle := range 1 + rng.IntN(4) {
		steps := 1 + rng.IntN(150)
		if rng.IntN(3) == 0 {
			// Fail one disk operation somewhere in this cycle.
			ops := []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpCreate, vfs.OpRemove}
			op := ops[rng.IntN(len(ops))]
			n := 1 + rng.IntN(steps)
			r.logf("cycle %d: %d steps; operation %s #%d will fail", cycle, steps, op, n)
			r.efs.FailNth(op, n, nil)
		} else {
			r.logf("cycle %d: %d steps", cycle, steps)
		}
		for range steps {
			if r.failed {
				break
			}
			r.step()
			if !r.failed {
				r.checkValidSnapshots()
			}
		}
		// Disarm whatever did not fire before recovering.
		for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpCreate, vfs.OpRemove} {
			r.efs.FailNth(op, 1<<30, nil)
		}
		if rng.IntN(4) == 0 {
			// Segment size is an option; it can change between runs.
			r.opts.SegmentBytes = randomSegmentBytes(rng)
		}
		r.crashAndRecover()
	}
}

// randomSegmentBytes picks a small segment size, so runs cut many segments;
// sometimes not a multiple of 8.
func randomSegmentBytes(rng *rand.Rand) int64 {
	if rng.IntN(4) == 0 {
		return int64(500 + rng.IntN(8000))
	}
	return int64(2048 << rng.IntN(4))
}

func TestCrash(t *testing.T) {
	if s := os.Getenv("CAIRN_WAL_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		runCrashSeed(t, seed, true)
		return
	}
	seeds := 500
	if s := os.Getenv("CAIRN_WAL_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		seeds = n
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runCrashSeed(t, seed, false) })
		if !ok {
			t.Fatalf("seed %d failed; replay it with CAIRN_WAL_SEED=%d go test ./internal/wal -run TestCrash -v", seed, seed)
		}
	}
}

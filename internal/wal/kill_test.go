package wal

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// killEntry is entry i as the child process writes it: its content is a
// function of i, so the parent can check what it reads without being told.
func killEntry(i uint64) raftpb.Entry {
	data := fmt.Appendf(nil, "entry %d:", i)
	data = append(data, bytes.Repeat([]byte{byte(i)}, int(i*37%900))...)
	return raftpb.Entry{Index: i, Term: 1, Data: data}
}

var killOptions = Options{SegmentBytes: 64 << 10, KeepReleased: 1}

// killChild is the child process's work: open (or create) the WAL in dir,
// then save batches of entries for ever, printing "ack N" after each
// synced save, and taking a snapshot and releasing segments now and then.
// It never returns; the parent kills it.
func killChild(dir string, seed uint64) {
	fs := vfs.OS()
	var w *WAL
	exists, err := Exists(fs, dir)
	if err != nil {
		panic(err)
	}
	if exists {
		valid, err := ValidSnapshots(fs, dir)
		if err != nil {
			panic(err)
		}
		w, _, err = Open(fs, dir, valid[len(valid)-1], killOptions)
		if err != nil {
			panic(err)
		}
	} else if w, err = Create(fs, dir, testMD, killOptions); err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	out := bufio.NewWriter(os.Stdout)
	for {
		last := w.LastIndex()
		var es []raftpb.Entry
		for i := range uint64(1 + rng.IntN(10)) {
			es = append(es, killEntry(last+1+i))
		}
		last = es[len(es)-1].Index
		if err := w.Save(raftpb.HardState{Term: 1, Commit: last - 1}, es, true); err != nil {
			panic(err)
		}
		fmt.Fprintf(out, "ack %d\n", last)
		out.Flush()
		if rng.IntN(50) == 0 {
			if err := w.SaveSnapshot(Snapshot{Index: last - 1, Term: 1}); err != nil {
				panic(err)
			}
			if _, err := w.Release(last - 1); err != nil {
				panic(err)
			}
		}
	}
}

// TestKillDuringSaves runs a real process that saves to a WAL on the real
// disk and SIGKILLs it at a random point, five times over the same WAL.
// After each kill, every entry whose synced save was acknowledged is read
// back intact, and so is everything up to the end of the log read.
func TestKillDuringSaves(t *testing.T) {
	if dir := os.Getenv("CAIRN_WAL_KILL_CHILD"); dir != "" {
		seed, _ := strconv.ParseUint(os.Getenv("CAIRN_WAL_KILL_SEED"), 10, 64)
		killChild(dir, seed)
		return
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringSaves$")
		cmd.Env = append(os.Environ(), "CAIRN_WAL_KILL_CHILD="+dir, fmt.Sprintf("CAIRN_WAL_KILL_SEED=%d", round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Should the test fail before the kill, the child goes with it. (It
		// also dies of SIGPIPE if this process does.)
		t.Cleanup(func() { cmd.Process.Kill() })
		acks := 50 + rng.IntN(400)
		var acked uint64
		scanner := bufio.NewScanner(stdout)
		for n := 0; n < acks && scanner.Scan(); n++ {
			acked, err = strconv.ParseUint(strings.TrimPrefix(scanner.Text(), "ack "), 10, 64)
			if err != nil {
				t.Fatalf("round %d: child said %q", round, scanner.Text())
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if acked == 0 {
			t.Fatalf("round %d: the child acknowledged nothing; it said:\n%s", round, stderr.String())
		}

		valid, err := ValidSnapshots(vfs.OS(), dir)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		snap := valid[len(valid)-1]
		w, st, err := Open(vfs.OS(), dir, snap, killOptions)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		w.Close()
		last := snap.Index + uint64(len(st.Entries))
		if last < acked {
			t.Fatalf("round %d: read entries up to %d, but %d was acknowledged", round, last, acked)
		}
		want := make([]raftpb.Entry, 0, len(st.Entries))
		for i := snap.Index + 1; i <= last; i++ {
			want = append(want, killEntry(i))
		}
		checkEntries(t, st.Entries, want)
		t.Logf("round %d: killed after %d acknowledged; read %d entries after the snapshot at %d",
			round, acked, len(st.Entries), snap.Index)
	}
}

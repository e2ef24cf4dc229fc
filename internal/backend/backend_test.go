package backend

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-db/cairn/internal/lograte"
)

func mustOpen(t *testing.T, dir string) *Backend {
	t.Helper()
	return mustOpenOn(t, nil, dir)
}

func mustOpenOn(t *testing.T, fs vfs.FS, dir string) *Backend {
	t.Helper()
	b, err := Open(dir, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func commit(t *testing.T, b *Backend, index uint64, kvs ...string) {
	t.Helper()
	wb := b.NewBatch()
	for i := 0; i < len(kvs); i += 2 {
		if kvs[i+1] == "" {
			wb.Delete([]byte(kvs[i]))
		} else {
			wb.Set([]byte(kvs[i]), []byte(kvs[i+1]))
		}
	}
	if err := wb.Commit(index, 1); err != nil {
		t.Fatal(err)
	}
}

// scanAll returns the view's keys and values as "k=v" strings.
func scanAll(t *testing.T, r *ReadView, reverse bool) []string {
	t.Helper()
	var out []string
	fn := func(k, v []byte) bool { out = append(out, string(k)+"="+string(v)); return true }
	var err error
	if reverse {
		err = r.ScanReverse(nil, nil, fn)
	} else {
		err = r.Scan(nil, nil, fn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The consistent index is committed with the batch and survives a restart;
// the backend's own keys never show in a scan and cannot be written.
func TestBatchesCarryTheConsistentIndex(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir)
	if i, _ := b.ConsistentIndex(); i != 0 {
		t.Fatalf("a new backend at index %d", i)
	}
	commit(t, b, 5, "a", "1", "b", "2")
	commit(t, b, 6, "a", "", "c", "3")
	for _, write := range []func(*Batch){
		func(wb *Batch) { wb.Set([]byte("\x00consistent_index"), []byte("boom")) },
		func(wb *Batch) { wb.Set([]byte("\xffconsistent_index"), []byte("boom")) },
		func(wb *Batch) { wb.Delete([]byte("\xffconsistent_term")) },
		func(wb *Batch) { wb.DeleteRange([]byte("a"), []byte("\xffz")) },
		func(wb *Batch) { wb.Set(recordKey(9), []byte("boom")) },
		func(wb *Batch) { wb.Delete(recordKey(0)) },
	} {
		wb := b.NewBatch()
		write(wb)
		if err := wb.Commit(7, 1); !errors.Is(err, ErrReservedKey) {
			t.Fatalf("writing a reserved key: got %v, want ErrReservedKey", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = mustOpen(t, dir)
	defer b.Close()
	if i, term := b.ConsistentIndex(); i != 6 || term != 1 {
		t.Fatalf("consistent index %d/%d after restart, want 6/1", i, term)
	}
	r := b.NewReadView()
	defer r.Close()
	if got := strings.Join(scanAll(t, r, false), " "); got != "b=2 c=3" {
		t.Fatalf("scan: %s", got)
	}
	if got := strings.Join(scanAll(t, r, true), " "); got != "c=3 b=2" {
		t.Fatalf("reverse scan: %s", got)
	}
	// The record sorts after every key at its position (0 for keys
	// outside 'r'; see the package doc, Keys).
	if _, last, err := b.keyBounds(); err != nil || !bytes.Equal(last, recordKey(0)) {
		t.Fatalf("last key %q (%v), want %q", last, err, recordKey(0))
	}
}

// A database an older Cairn wrote keeps its consistent index under single
// keys, 0x00's (before 2026-12) or 0xff's (before 2026-12-06): it opens at
// that index, and the next commit writes a record and deletes the old keys.
func TestMovesTheConsistentIndexOfAnOlderDatabase(t *testing.T) {
	for _, old := range [][2][]byte{{legacyIndexKey, legacyTermKey}, {oldIndexKey, oldTermKey}} {
		t.Run(fmt.Sprintf("%x", old[0][:1]), func(t *testing.T) {
			dir := t.TempDir()
			b := mustOpen(t, dir)
			wb := b.NewBatch()
			wb.Set([]byte("a"), []byte("1"))
			wb.Set([]byte("r\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00"), []byte("rev7"))
			var buf [8]byte
			binary.BigEndian.PutUint64(buf[:], 41)
			wb.batch.Set(old[0], buf[:], nil)
			binary.BigEndian.PutUint64(buf[:], 3)
			wb.batch.Set(old[1], buf[:], nil)
			if err := wb.batch.Commit(pebble.NoSync); err != nil { // as an older Cairn did: no record
				t.Fatal(err)
			}
			wb.Close()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}

			b = mustOpen(t, dir)
			if i, term := b.ConsistentIndex(); i != 41 || term != 3 {
				t.Fatalf("an older database opens at %d/%d, want 41/3", i, term)
			}
			commit(t, b, 42, "b", "2")
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}

			b = mustOpen(t, dir)
			defer b.Close()
			if i, term := b.ConsistentIndex(); i != 42 || term != 1 {
				t.Fatalf("consistent index %d/%d after the move, want 42/1", i, term)
			}
			for _, k := range [][]byte{legacyIndexKey, legacyTermKey, oldIndexKey, oldTermKey} {
				if _, found, err := b.getUint64(k); found || err != nil {
					t.Fatalf("the old key %q is still there (%v)", k, err)
				}
			}
			// The record went after the revision already there.
			if _, last, err := b.keyBounds(); err != nil || !bytes.Equal(last, recordKey(7)) {
				t.Fatalf("last key %x (%v), want the record %x", last, err, recordKey(7))
			}
			r := b.NewReadView()
			defer r.Close()
			if got := strings.Join(scanAll(t, r, false), " "); got != "a=1 b=2 r\x00\x00\x00\x00\x00\x00\x00\a\x00\x00\x00\x00\x00\x00\x00\x00=rev7" {
				t.Fatalf("scan: %q", got)
			}
		})
	}
}

// A database holding its index both in a record and under an old key was
// written by something other than a backend (a commit moves the old keys
// atomically): Open refuses it rather than pick one.
func TestRefusesTheConsistentIndexInTwoPlaces(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir)
	commit(t, b, 5, "a", "1")
	wb := b.NewBatch()
	wb.batch.Set(oldIndexKey, binary.BigEndian.AppendUint64(nil, 9), nil)
	if err := wb.batch.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	wb.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			b.Close()
		}
		t.Fatalf("opening: got %v, want ErrCorrupt", err)
	}
}

// revKey is a key under 'r' at position pos, as the MVCC store's
// revision keys are.
func revKey(pos, sub uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{'r'}, pos), sub)
}

// recordsIn returns the record keys b holds, in order.
func recordsIn(t *testing.T, b *Backend) [][]byte {
	t.Helper()
	view := b.NewReadView()
	defer view.Close()
	var records [][]byte
	if err := view.ScanWithRecords(nil, nil, func(k, _ []byte) bool {
		if IsRecord(k) {
			records = append(records, bytes.Clone(k))
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return records
}

// Each commit's record goes after every key it and the batches before it
// wrote under 'r', so the keys of successive batches never interleave: a
// flushed table's keys all come after the tables flushed before it, and
// none of them overlap (which is what lets pebble move a flushed table
// down the levels instead of rewriting it). Records never show in a scan,
// only the latest one counts at a restart, and old ones can be deleted but
// not the latest.
func TestRecordsFollowTheirBatches(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir)
	value := bytes.Repeat([]byte("v"), 1000)
	index, pos := uint64(0), uint64(1)
	for flush := 0; flush < 6; flush++ {
		for i := 0; i < 200; i++ {
			index++
			wb := b.NewBatch()
			if i%10 != 9 { // else an entry that writes nothing: its record stays at the last position

				pos++
				for sub := uint64(0); sub < 3; sub++ {
					wb.Set(revKey(pos, sub), value)
				}
			}
			if err := wb.Commit(index, 2); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	tables, err := b.db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ lo, hi []byte }
	var spans []span
	for _, level := range tables {
		for _, tbl := range level {
			spans = append(spans, span{tbl.Smallest.UserKey, tbl.Largest.UserKey})
		}
	}
	if len(spans) < 6 {
		t.Fatalf("%d tables after 6 flushes", len(spans))
	}
	slices.SortFunc(spans, func(a, c span) int { return bytes.Compare(a.lo, c.lo) })
	for i := 1; i < len(spans); i++ {
		if bytes.Compare(spans[i].lo, spans[i-1].hi) <= 0 {
			t.Fatalf("tables %x-%x and %x-%x overlap", spans[i-1].lo, spans[i-1].hi, spans[i].lo, spans[i].hi)
		}
	}

	view := b.NewReadView()
	n := 0
	err = view.Scan([]byte{'r'}, []byte{'s'}, func(k, _ []byte) bool {
		if IsRecord(k) {
			t.Fatalf("a scan shows record %x", k)
		}
		n++
		return true
	})
	view.Close()
	if err != nil || n != 6*180*3 {
		t.Fatalf("scan: %d revisions (%v), want %d", n, err, 6*180*3)
	}

	// One record a position: an empty entry's overwrites the one before
	// it. Old records go; the latest stays, asked to go or not.
	records := recordsIn(t, b)
	if len(records) != 6*180 {
		t.Fatalf("%d records, want one a position, %d", len(records), 6*180)
	}
	latest := records[len(records)-1]
	if !bytes.Equal(latest, recordKey(pos)) {
		t.Fatalf("latest record %x, want %x", latest, recordKey(pos))
	}
	wb := b.NewBatch()
	for _, k := range records {
		wb.DeleteRecord(k)
	}
	if err := wb.CommitMaintenance(); err != nil {
		t.Fatal(err)
	}
	if records = recordsIn(t, b); len(records) != 1 || !bytes.Equal(records[0], latest) {
		t.Fatalf("records %x left, want the latest only", records)
	}
	wb = b.NewBatch()
	wb.DeleteRange([]byte("a"), []byte("s"))
	if err := wb.CommitMaintenance(); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("a range over the records: got %v, want ErrReservedKey", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir)
	if i, term := b.ConsistentIndex(); i != index || term != 2 {
		t.Fatalf("reopened at %d/%d, want %d/2", i, term, index)
	}
	// A write of no revision overwrites the record at its position.
	commit(t, b, index+1, "l-lease", "y")
	if _, last, err := b.keyBounds(); err != nil || !bytes.Equal(last, recordKey(pos)) {
		t.Fatalf("after a reopen the record went to %x (%v), want %x", last, err, recordKey(pos))
	}
	if records := recordsIn(t, b); len(records) != 1 {
		t.Fatalf("%d records, want 1", len(records))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir)
	defer b.Close()
	if i, term := b.ConsistentIndex(); i != index+1 || term != 1 {
		t.Fatalf("reopened at %d/%d, want %d/1", i, term, index+1)
	}
}

// A read view sees the database as it was when made, whatever commits
// after.
func TestReadViewIsolation(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	commit(t, b, 1, "a", "1")
	r := b.NewReadView()
	defer r.Close()
	commit(t, b, 2, "a", "2", "b", "2")
	v, ok, err := r.Get([]byte("a"))
	if err != nil || !ok || string(v) != "1" {
		t.Fatalf("Get(a) = %q, %v, %v", v, ok, err)
	}
	if _, ok, _ := r.Get([]byte("b")); ok {
		t.Fatal("the view sees a key committed after it was made")
	}
	// Bounds: [b, d).
	commit(t, b, 3, "c", "3", "d", "4")
	r2 := b.NewReadView()
	defer r2.Close()
	var keys []string
	r2.Scan([]byte("b"), []byte("d"), func(k, _ []byte) bool { keys = append(keys, string(k)); return true })
	if strings.Join(keys, ",") != "b,c" {
		t.Fatalf("scan [b, d) = %v", keys)
	}
}

// The applier applies each raft entry once, in order: an older index is
// refused (a panic under the invariants tag, an error without).
func TestCommitRefusesAnOlderIndex(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	commit(t, b, 10)
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return b.NewBatch().Commit(9, 1)
	}()
	if err == nil {
		t.Fatal("committing index 9 after 10 succeeded")
	}
	if i, _ := b.ConsistentIndex(); i != 10 {
		t.Fatalf("consistent index %d after a refused commit", i)
	}
}

// A checkpoint opens as a backend holding exactly what was committed
// before it, with its consistent index: on the real disk and on a file
// system in memory.
func TestCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fs        vfs.FS
		dir, copy string
	}{
		{"disk", vfs.Default, t.TempDir(), filepath.Join(t.TempDir(), "checkpoint")},
		{"mem", vfs.NewCrashableMem(), "/data/db", "/data/checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustOpenOn(t, tc.fs, tc.dir)
			defer b.Close()
			for i := uint64(1); i <= 100; i++ {
				commit(t, b, i, fmt.Sprintf("key%03d", i), fmt.Sprint(i))
			}
			index, _, err := b.Checkpoint(tc.copy)
			if err != nil || index != 100 {
				t.Fatalf("Checkpoint = %d, %v", index, err)
			}
			commit(t, b, 101, "key101", "101")

			c := mustOpenOn(t, tc.fs, tc.copy)
			defer c.Close()
			if i, _ := c.ConsistentIndex(); i != 100 {
				t.Fatalf("the checkpoint is at index %d, want 100", i)
			}
			r := c.NewReadView()
			defer r.Close()
			if got := scanAll(t, r, false); len(got) != 100 || got[99] != "key100=100" {
				t.Fatalf("the checkpoint holds %d keys, last %q", len(got), got[len(got)-1])
			}
		})
	}
}

// setBatch fills wb as batch i of a crash test: it sets "key<i>" to a
// value from 8 bytes to 3 KiB long, so that batches straddle the 4 KiB
// blocks a crash keeps or drops, and "last" to i.
func setBatch(wb *Batch, i uint64) {
	wb.Set(fmt.Appendf(nil, "key%08d", i), batchValue(i))
	wb.Set([]byte("last"), fmt.Appendf(nil, "%d", i))
}

func batchValue(i uint64) []byte {
	return fmt.Appendf(nil, "value %d %s", i, strings.Repeat("v", int(i*37%3000)))
}

// checkBatchesWhole checks a backend that setBatch filled, with batches
// 1, 2, ..., after a crash: its consistent index is at least synced and at
// most committed, and its data is exactly that of the batches up to the
// index, none torn, none missing, none extra. It returns the index.
func checkBatchesWhole(t *testing.T, b *Backend, synced, committed uint64) uint64 {
	t.Helper()
	index, _ := b.ConsistentIndex()
	if index < synced || index > committed {
		t.Fatalf("consistent index %d, but %d was synced and %d committed", index, synced, committed)
	}
	r := b.NewReadView()
	defer r.Close()
	last, _, err := r.Get([]byte("last"))
	if err != nil {
		t.Fatal(err)
	}
	if index > 0 && string(last) != fmt.Sprint(index) {
		t.Fatalf("index %d but the last batch applied says %q", index, last)
	}
	n := uint64(0)
	err = r.Scan([]byte("key"), []byte("key\xff"), func(k, v []byte) bool {
		n++
		if want := fmt.Sprintf("key%08d", n); string(k) != want || string(v) != string(batchValue(n)) {
			t.Fatalf("key %d is %s=%.20s...", n, k, v)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != index {
		t.Fatalf("%d keys for index %d", n, index)
	}
	return index
}

// killChild commits batches for ever: batch i is setBatch's; after every 10th it syncs and prints "synced i".
func killChild(dir string) {
	b, err := Open(dir, Options{})
	if err != nil {
		panic(err)
	}
	out := bufio.NewWriter(os.Stdout)
	start, _ := b.ConsistentIndex()
	for i := start + 1; ; i++ {
		wb := b.NewBatch()
		setBatch(wb, i)
		if err := wb.Commit(i, 1); err != nil {
			panic(err)
		}
		if i%10 == 0 {
			if err := b.Sync(); err != nil {
				panic(err)
			}
			fmt.Fprintf(out, "synced %d\n", i)
			out.Flush()
		}
	}
}

// TestKillKeepsBatchesWhole SIGKILLs a process committing batches, three
// times over one database: after each kill the consistent index covers
// every synced batch, and the data is exactly that of the batches up to
// it (checkBatchesWhole).
func TestKillKeepsBatchesWhole(t *testing.T) {
	if dir := os.Getenv("CAIRN_BACKEND_KILL_CHILD"); dir != "" {
		killChild(dir)
		return
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillKeepsBatchesWhole$")
		cmd.Env = append(os.Environ(), "CAIRN_BACKEND_KILL_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		var synced uint64
		scanner := bufio.NewScanner(stdout)
		for n := 0; n < 20+round*15 && scanner.Scan(); n++ {
			synced, _ = strconv.ParseUint(strings.TrimPrefix(scanner.Text(), "synced "), 10, 64)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if synced == 0 {
			t.Fatalf("round %d: the child synced nothing", round)
		}

		b := mustOpen(t, dir)
		index := checkBatchesWhole(t, b, synced, math.MaxUint64)
		b.Close()
		t.Logf("round %d: synced %d, recovered %d", round, synced, index)
	}
}

// TestPowerLossKeepsBatchesWhole cuts the power of an in-memory disk under
// a backend committing batches, five times over one database, as the
// simulator does (see the package doc, Crashing): after each crash the
// consistent index covers every synced batch (by Sync, or by a FlushAsync
// that ended before the crash, batches committed meanwhile aside) and no
// more than was
// committed, and the data is exactly that of the batches up to it. The
// crashes keep none, some or all of what was written but not synced
// (batches not yet flushed are in memory only, so even "all" loses them).
func TestPowerLossKeepsBatchesWhole(t *testing.T) {
	for _, unsyncedPercent := range []int{0, 30, 100} {
		t.Run(fmt.Sprintf("unsynced-kept-%d%%", unsyncedPercent), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(unsyncedPercent)))
			fs := vfs.NewCrashableMem()
			const dir = "/member/db"
			b := mustOpenOn(t, fs, dir)
			var synced, committed, flushingAt uint64
			var flushing *Flush
			for round := range 5 {
				for i, end := committed+1, committed+100+rng.Uint64N(200); i <= end; i++ {
					wb := b.NewBatch()
					setBatch(wb, i)
					if err := wb.Commit(i, 1); err != nil {
						t.Fatal(err)
					}
					committed = i
					switch {
					case rng.IntN(60) == 0:
						if err := b.Sync(); err != nil {
							t.Fatal(err)
						}
						synced = i
					case flushing == nil && rng.IntN(60) == 0:
						// Batches go on while it flushes.
						flushing, flushingAt = b.FlushAsync(), i
					case flushing != nil && rng.IntN(10) == 0:
						if err := flushing.Err(); err != nil {
							t.Fatal(err)
						}
						synced, flushing = max(synced, flushingAt), nil
					}
				}
				// A flush still under way when the power goes promises
				// nothing.
				flushing = nil
				fs = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent, RNG: rng})
				if err := b.Close(); err != nil { // on the file system the crash discarded
					t.Fatal(err)
				}
				b = mustOpenOn(t, fs, dir)
				index := checkBatchesWhole(t, b, synced, committed)
				t.Logf("round %d: synced %d, committed %d, recovered %d", round, synced, committed, index)
				// The raft log replays what the crash lost; here the
				// next round writes those indexes again.
				synced, committed = index, index
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Pebble's write stalls are logged when they end, with pebble's reason:
// the first at once, later ones summed into at most one line per period,
// so that "request timed out" lines have their cause beside them.
func TestWriteStallsAreLogged(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	l := &stallLog{logger: zap.New(core), every: time.Hour}
	stall := func(reason string) {
		l.begin(pebble.WriteStallBeginInfo{Reason: reason})
		l.end()
	}
	stall("memtable count limit reached")
	stall("L0 file count limit exceeded")
	stall("memtable count limit reached")
	l.end() // an end without a begin (pebble's listener before the open) counts nothing
	lines := logs.FilterMessageSnippet("backend writes stalled").All()
	if len(lines) != 1 || lines[0].ContextMap()["stalls"] != int64(1) ||
		lines[0].ContextMap()["last-reason"] != "memtable count limit reached" {
		t.Fatalf("after three stalls within the period: %v", logs.All())
	}
	l.mu.Lock()
	l.logged = l.logged.Add(-time.Hour) // the period is over
	l.mu.Unlock()
	stall("L0 file count limit exceeded")
	lines = logs.FilterMessageSnippet("backend writes stalled").All()
	if len(lines) != 2 || lines[1].ContextMap()["stalls"] != int64(3) ||
		lines[1].ContextMap()["last-reason"] != "L0 file count limit exceeded" {
		t.Fatalf("after the period: %v", logs.All())
	}
}

// A database an older Cairn wrote, with pebble's WAL on and its last
// batches only in that log (never flushed), opens with every batch and
// its consistent index: pebble replays the log and flushes it.
func TestOpensADatabaseWrittenWithPebblesWAL(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest,
		Logger: pebbleLogger{l: zap.NewNop().Sugar(), errs: &lograte.Limit{}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	for i := uint64(1); i <= 50; i++ {
		wb := db.NewBatch()
		setBatch(&Batch{batch: wb}, i)
		binary.BigEndian.PutUint64(buf[:], i)
		wb.Set(legacyIndexKey, buf[:], nil)
		binary.BigEndian.PutUint64(buf[:], 1)
		wb.Set(legacyTermKey, buf[:], nil)
		if err := wb.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Metrics().Flush.Count; n != 0 {
		t.Fatalf("%d flushes: the batches must be in the log only", n)
	}
	if err := db.Close(); err != nil { // pebble's Close does not flush
		t.Fatal(err)
	}

	b := mustOpen(t, dir)
	checkBatchesWhole(t, b, 50, 50)
	commit(t, b, 51, "key00000051", string(batchValue(51)), "last", "51")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir)
	defer b.Close()
	checkBatchesWhole(t, b, 51, 51)
}

// A flush the disk refuses (here: the database's directory is gone) is
// an error of Sync, Checkpoint, Defragment and Close, not a wait for ever: pebble
// retries a failed flush without end. Its error lines, one per retry,
// are limited to one a second.
func TestFlushFailureIsAnError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	core, logs := observer.New(zap.ErrorLevel)
	start := time.Now()
	b, err := Open(dir, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, b, 1, "k", "v")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "backend: flushing "+dir) {
		t.Fatalf("Sync with the directory gone: %v", err)
	}
	if err := b.FlushAsync().Err(); err == nil || !strings.Contains(err.Error(), "backend: flushing "+dir) {
		t.Fatalf("FlushAsync with the directory gone: %v", err)
	}
	if _, _, err := b.Checkpoint(filepath.Join(t.TempDir(), "copy")); err == nil {
		t.Fatal("Checkpoint with the directory gone: no error")
	}
	if err := b.Defragment(); err == nil {
		t.Fatal("Defragment with the directory gone: no error")
	}
	if err := b.Close(); err == nil {
		t.Fatal("Close with the directory gone: no error")
	}
	if err := b.FlushAsync().Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("FlushAsync after Close: %v, want ErrClosed", err)
	}
	lines := logs.FilterMessageSnippet("pebble: background error").Len()
	if max := int(time.Since(start)/time.Second) + 1; lines < 1 || lines > max {
		t.Fatalf("%d pebble error lines in %v, want 1 to %d", lines, time.Since(start), max)
	}
}

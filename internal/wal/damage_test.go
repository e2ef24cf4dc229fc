package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// bigEnts makes entries lo..hi whose records span several sectors, so a
// test can zero one sector in the middle of a record.
func bigEnts(lo, hi, term uint64) []raftpb.Entry {
	es := ents(lo, hi, term)
	for i := range es {
		es[i].Data = append(es[i].Data, strings.Repeat("x", 1500)...)
	}
	return es
}

// records returns the frames of a segment file in order.
func records(t *testing.T, path string) []record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rr := recordReader{r: strings.NewReader(string(data)), size: int64(len(data))}
	var recs []record
	rec, err := rr.read(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	crc := uint32(0)
	for {
		recs = append(recs, record{typ: rec.typ, payload: make([]byte, len(rec.payload)), offset: rec.offset, next: rec.next})
		if rec.typ == crcType {
			crc = binary.LittleEndian.Uint32(rec.payload)
		} else {
			crc = rec.crc
		}
		rec, err = rr.read(rec.next, crc)
		if err == errEnd {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func modify(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// smallSegments keeps test files small: reading and rewriting 64 MiB
// segments would dominate the tests' time.
var smallSegments = Options{SegmentBytes: 256 << 10}

// writeLog makes a WAL of one segment holding bigEnts 1..n, all synced.
func writeLog(t *testing.T, n uint64) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	w := mustCreate(t, vfs.OS(), dir, smallSegments)
	for i := uint64(1); i <= n; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i - 1}, bigEnts(i, i, 1))
	}
	segs := w.Segments()
	w.Close()
	return dir, filepath.Join(dir, segs[len(segs)-1])
}

// lastEntryRecord returns the last entry record of a segment.
func lastEntryRecord(t *testing.T, path string) record {
	recs := records(t, path)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].typ == entryType {
			return recs[i]
		}
	}
	t.Fatal("no entry record")
	return record{}
}

// zeroSector zeroes the first whole sector inside rec.
func zeroSector(rec record) func([]byte) []byte {
	return func(data []byte) []byte {
		start := (rec.offset + headerBytes + sectorBytes - 1) / sectorBytes * sectorBytes
		if start+sectorBytes > rec.next {
			panic("record holds no whole sector")
		}
		clear(data[start : start+sectorBytes])
		return data
	}
}

// A crash that tore the last record is repaired: the records before it are
// kept, appends continue after them, and a later open sees no damage.
func TestTornTailIsRepaired(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(rec record) func([]byte) []byte
	}{
		{"zeroed sector", zeroSector},
		{"file cut short", func(rec record) func([]byte) []byte {
			return func(data []byte) []byte { return data[:rec.offset+100] }
		}},
		{"header only", func(rec record) func([]byte) []byte {
			return func(data []byte) []byte { clear(data[rec.offset+headerBytes : rec.next]); return data }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := writeLog(t, 10)
			modify(t, path, tc.tear(lastEntryRecord(t, path)))

			w, st := mustOpen(t, vfs.OS(), dir, Snapshot{}, smallSegments)
			checkEntries(t, st.Entries, bigEnts(1, 9, 1))
			mustSave(t, w, raftpb.HardState{Term: 2, Commit: 9}, bigEnts(10, 12, 2))
			w.Close()

			_, st = mustOpen(t, vfs.OS(), dir, Snapshot{}, smallSegments)
			checkEntries(t, st.Entries, append(bigEnts(1, 9, 1), bigEnts(10, 12, 2)...))
			if st.HardState != (raftpb.HardState{Term: 2, Commit: 9}) {
				t.Fatalf("state %+v", st.HardState)
			}
		})
	}
}

// Damage that a crash cannot cause refuses to open and says where it is.
func TestCorruptionRefusesToOpen(t *testing.T) {
	flip := func(off int64) func([]byte) []byte {
		return func(data []byte) []byte { data[off] ^= 0x10; return data }
	}
	for _, tc := range []struct {
		name string
		// damage returns the modification and the offset it must be
		// reported at.
		damage func(t *testing.T, path string) (func([]byte) []byte, int64)
	}{
		{"bit flip in the last record", func(t *testing.T, path string) (func([]byte) []byte, int64) {
			rec := lastEntryRecord(t, path)
			return flip(rec.offset + 700), rec.offset
		}},
		{"bit flip in an early record", func(t *testing.T, path string) (func([]byte) []byte, int64) {
			var rec record
			for _, r := range records(t, path) {
				if r.typ == entryType {
					rec = r
					break
				}
			}
			return flip(rec.offset + 20), rec.offset
		}},
		{"non-zero padding", func(t *testing.T, path string) (func([]byte) []byte, int64) {
			var padded record
			for _, rec := range records(t, path) {
				if rec.typ == entryType && padding(len(rec.payload)+1) > 0 {
					padded = rec
				}
			}
			return func(data []byte) []byte { data[padded.next-1] = 1; return data }, padded.offset
		}},
		{"impossible length", func(t *testing.T, path string) (func([]byte) []byte, int64) {
			rec := records(t, path)[3]
			return func(data []byte) []byte { data[rec.offset+3] = 0x7f; return data }, rec.offset
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := writeLog(t, 10)
			f, at := tc.damage(t, path)
			modify(t, path, f)
			_, _, err := Open(vfs.OS(), dir, Snapshot{}, smallSegments)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if want := fmt.Sprintf("%s at offset %d", path, at); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %q", err, want)
			}
		})
	}
}

// Any damage in a segment that is not the last is corruption, torn-looking
// or not: the segment was synced before the next one was started.
func TestDamageBeforeTheLastSegment(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	opts := Options{SegmentBytes: 16 << 10}
	w := mustCreate(t, fs, dir, opts)
	for i := uint64(1); i <= 30; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, bigEnts(i, i, 1))
	}
	segs := w.Segments()
	w.Close()
	if len(segs) < 2 {
		t.Fatalf("only %d segments", len(segs))
	}
	path := filepath.Join(dir, segs[0])
	modify(t, path, zeroSector(lastEntryRecord(t, path)))
	if _, _, err := Open(fs, dir, Snapshot{}, opts); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), segs[0]) {
		t.Fatalf("got %v, want ErrCorrupt naming %s", err, segs[0])
	}
}

func TestMissingSegment(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	opts := Options{SegmentBytes: 8 << 10}
	w := mustCreate(t, fs, dir, opts)
	for i := uint64(1); i <= 30; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, bigEnts(i, i, 1))
	}
	segs := w.Segments()
	w.Close()
	if err := os.Remove(filepath.Join(dir, segs[1])); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(fs, dir, Snapshot{}, opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

// A segment from another WAL (its chain does not continue the one before)
// is corruption, even though each of its records is intact.
func TestBrokenChain(t *testing.T) {
	fs := vfs.OS()
	opts := Options{SegmentBytes: 8 << 10}
	var dirs [2]string
	var segs [2][]string
	for k := range dirs {
		dirs[k] = t.TempDir()
		w := mustCreate(t, fs, dirs[k], opts)
		for i := uint64(1); i <= 30; i++ {
			mustSave(t, w, raftpb.HardState{Term: uint64(k + 1), Commit: i}, bigEnts(i, i, uint64(k+1)))
		}
		segs[k] = w.Segments()
		w.Close()
	}
	if segs[0][1] != segs[1][1] {
		t.Fatalf("the two logs cut differently: %v %v", segs[0], segs[1])
	}
	data, err := os.ReadFile(filepath.Join(dirs[1], segs[1][1]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs[0], segs[0][1]), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(fs, dirs[0], Snapshot{}, opts); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chain") {
		t.Fatalf("got %v, want ErrCorrupt for a broken chain", err)
	}
}

// Leftover .tmp segments from a crash during a cut are removed on open.
func TestTempSegmentsRemoved(t *testing.T) {
	fs, dir := vfs.OS(), t.TempDir()
	w := mustCreate(t, fs, dir, Options{})
	mustSave(t, w, raftpb.HardState{Term: 1}, ents(1, 3, 1))
	w.Close()
	tmp := filepath.Join(dir, segment{seq: 1, index: 4}.name()+".tmp")
	if err := os.WriteFile(tmp, []byte("half a segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, st := mustOpen(t, fs, dir, Snapshot{}, Options{})
	w.Close()
	checkEntries(t, st.Entries, ents(1, 3, 1))
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s survived Open: %v", tmp, err)
	}
}

// After a crash, sectors of an unsynced write can lie beyond the zeros
// where the records end (a later sector reached the disk, an earlier one did
// not). Open must clear them: records appended next would otherwise be
// followed by stale bytes, read back as damage.
func TestStaleSectorsAfterCleanEnd(t *testing.T) {
	dir, path := writeLog(t, 3)
	recs := records(t, path)
	end := recs[len(recs)-1].next
	stale := (end/sectorBytes + 2) * sectorBytes
	modify(t, path, func(data []byte) []byte {
		for i := stale; i < stale+sectorBytes; i++ {
			data[i] = byte(i*7 + 1)
		}
		return data
	})
	w, st := mustOpen(t, vfs.OS(), dir, Snapshot{}, smallSegments)
	checkEntries(t, st.Entries, bigEnts(1, 3, 1))
	// One big entry covers part of the stale sector, not all of it.
	big := raftpb.Entry{Index: 4, Term: 1, Data: make([]byte, stale-end+100)}
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 3}, []raftpb.Entry{big})
	w.Close()
	_, st = mustOpen(t, vfs.OS(), dir, Snapshot{}, smallSegments)
	checkEntries(t, st.Entries, append(bigEnts(1, 3, 1), big))
}

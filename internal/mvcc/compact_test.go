package mvcc

import (
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/internal/backend"
)

// countRevisions counts the revision keys in the backend.
func countRevisions(t *testing.T, b *backend.Backend) int {
	t.Helper()
	view := b.NewReadView()
	defer view.Close()
	n := 0
	if err := view.Scan([]byte{'r'}, revisionPrefixEnd, func(_, _ []byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

// records returns the positions of the backend's consistent-index records
// (one a committed batch; see the backend's package doc, Keys).
func records(t *testing.T, b *backend.Backend) []uint64 {
	t.Helper()
	view := b.NewReadView()
	defer view.Close()
	var out []uint64
	if err := view.ScanWithRecords(nil, nil, func(k, _ []byte) bool {
		if backend.IsRecord(k) {
			out = append(out, backend.Position(k))
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Compaction removes superseded revisions from the backend, keeps the
// latest of every live key, and an interrupted removal finishes after a
// restart; versions and creation revisions survive it all.
func TestCompactionRemovesHistory(t *testing.T) {
	for _, crashAfter := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("crash-after-batches=%d", crashAfter), func(t *testing.T) {
			dir := t.TempDir()
			b, err := backend.Open(dir, backend.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := open(b, nil, nil, 5, crashAfter)
			if err != nil {
				t.Fatal(err)
			}
			index := uint64(0)
			// 10 keys, each put 5 times; then key0..key4 deleted.
			for round := range 5 {
				for k := range 10 {
					tw := s.Write()
					tw.Put(fmt.Appendf(nil, "key%d", k), fmt.Appendf(nil, "v%d", round), 0)
					index++
					if _, err := tw.End(index, 1); err != nil {
						t.Fatal(err)
					}
				}
			}
			tw := s.Write()
			if _, err := tw.DeleteRange([]byte("key0"), []byte("key5")); err != nil {
				t.Fatal(err)
			}
			index++
			if _, err := tw.End(index, 1); err != nil {
				t.Fatal(err)
			}
			if n := countRevisions(t, b); n != 55 {
				t.Fatalf("%d revisions before compaction, want 55", n)
			}
			compactWait(t, s, s.Rev(), index+1)
			if crashAfter > 0 {
				s.Close()
				b.Close()
				if b, err = backend.Open(dir, backend.Options{}); err != nil {
					t.Fatal(err)
				}
				if s, err = Open(b, nil, nil); err != nil {
					t.Fatal(err)
				}
				s.compactor.wait()
			}
			defer func() { s.Close(); b.Close() }()
			// Left: the latest put of key5..key9, and the deletes of
			// key0..key4, which are at the compaction revision: kept for
			// watchers starting there until the next compaction.
			if n := countRevisions(t, b); n != 10 {
				t.Fatalf("%d revisions after compaction, want 10", n)
			}
			// And the consistent index's records before the compaction
			// revision (52): left is the compaction's own, at 52 (it
			// overwrote the last write's there).
			if got := fmt.Sprint(records(t, b)); got != "[52]" {
				t.Fatalf("records at %s after compaction, want [52]", got)
			}
			if i, _ := b.ConsistentIndex(); i != index+1 {
				t.Fatalf("consistent index %d after compaction, want %d", i, index+1)
			}
			res, err := s.Range([]byte("key"), []byte("kez"), RangeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := kvString(res.KVs); len(res.KVs) != 5 || res.KVs[0].Version != 5 || res.KVs[0].CreateRevision != 7 {
				t.Fatalf("after compaction: %s", got)
			}
			if _, err := s.Range([]byte("key9"), nil, RangeOptions{Rev: s.Rev() - 1}); err != ErrCompacted {
				t.Fatalf("a read below the compaction: %v", err)
			}
			// A later compaction removes those deletes.
			tw = s.Write()
			tw.Put([]byte("zz"), []byte("v"), 0)
			index += 2
			tw.End(index, 1)
			index++
			compactWait(t, s, s.Rev(), index)
			if n := countRevisions(t, b); n != 6 {
				t.Fatalf("%d revisions after the second compaction, want 6", n)
			}
		})
	}
}

// A new store is at revision 1 with no revision key, so the backend's
// records are below the revision a first compaction asks for: the
// compaction removes the older ones, keeps the latest, and finishes (its
// hash stored), as the next one does.
func TestCompactionOfANewStoreFinishes(t *testing.T) {
	s, b := newTestStore(t)
	index := uint64(0)
	for range 3 {
		index++
		if err := b.NewBatch().Commit(index, 1); err != nil { // entries that write no revision
			t.Fatal(err)
		}
	}
	index++
	compactWait(t, s, 1, index)
	tw := s.Write()
	tw.Put([]byte("a"), []byte("1"), 0)
	index++
	if _, err := tw.End(index, 1); err != nil {
		t.Fatal(err)
	}
	index++
	compactWait(t, s, 2, index)
	if got := len(s.CompactionHashes()); got != 2 {
		t.Fatalf("%d compaction hashes stored, want 2: a removal did not finish", got)
	}
	if got := fmt.Sprint(records(t, b)); got != "[2]" {
		t.Fatalf("records at %s, want [2]", got)
	}
	if i, _ := b.ConsistentIndex(); i != index {
		t.Fatalf("consistent index %d, want %d", i, index)
	}
}

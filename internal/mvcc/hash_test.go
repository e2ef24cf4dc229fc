package mvcc

import (
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/internal/backend"
)

// Stores that applied the same writes and compaction hash alike, whether
// or not the compaction's removal has run; a different history does not.
func TestHashKV(t *testing.T) {
	build := func(crashAfterBatches int, lastValue string) *Store {
		b, err := backend.Open(t.TempDir(), backend.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := open(b, nil, nil, 2, crashAfterBatches)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); b.Close() })
		index := uint64(0)
		for i := range 20 {
			tw := s.Write()
			tw.Put(fmt.Appendf(nil, "k%d", i%5), fmt.Appendf(nil, "v%d", i), 0)
			if i%7 == 6 {
				tw.DeleteRange(fmt.Appendf(nil, "k%d", i%3), nil)
			}
			index++
			tw.End(index, 1)
		}
		index++
		done, err := s.Compact(12, index, 1)
		if err != nil {
			t.Fatal(err)
		}
		<-done
		tw := s.Write()
		tw.Put([]byte("last"), []byte(lastValue), 0)
		tw.End(index+1, 1)
		return s
	}
	finished, interrupted, other := build(0, "x"), build(1, "x"), build(0, "y")
	if countRevisions(t, finished.b) == countRevisions(t, interrupted.b) {
		t.Fatal("the interrupted removal removed as much as the finished one")
	}
	for _, rev := range []int64{0, 12, 15} {
		h1, cur, comp, err := finished.HashKV(rev)
		if err != nil || cur != 22 || comp != 12 {
			t.Fatalf("HashKV(%d) = %d, %d, %v", rev, cur, comp, err)
		}
		h2, _, _, _ := interrupted.HashKV(rev)
		if h1 != h2 {
			t.Fatalf("HashKV(%d): %08x after a finished removal, %08x after an interrupted one", rev, h1, h2)
		}
	}
	h1, _, _, _ := finished.HashKV(0)
	h3, _, _, _ := other.HashKV(0)
	if h1 == h3 {
		t.Fatal("different histories hash alike")
	}
	// Up to 21 the two histories are the same.
	a, _, _, _ := finished.HashKV(21)
	b, _, _, _ := other.HashKV(21)
	if a != b {
		t.Fatal("histories equal up to 21 hash differently there")
	}
	if _, _, _, err := finished.HashKV(11); err != ErrCompacted {
		t.Fatalf("HashKV below the compaction: %v", err)
	}
	if _, _, _, err := finished.HashKV(23); err != ErrFutureRev {
		t.Fatalf("HashKV past the current revision: %v", err)
	}
}

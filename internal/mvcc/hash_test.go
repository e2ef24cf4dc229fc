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
		compactWait(t, s, 12, index)
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
		h1, cur, err := finished.HashKV(rev)
		if err != nil || cur != 22 || h1.CompactRevision != 12 {
			t.Fatalf("HashKV(%d) = %+v, %d, %v", rev, h1, cur, err)
		}
		h2, _, _ := interrupted.HashKV(rev)
		if h1 != h2 {
			t.Fatalf("HashKV(%d): %+v after a finished removal, %+v after an interrupted one", rev, h1, h2)
		}
	}
	h1, _, _ := finished.HashKV(0)
	h3, _, _ := other.HashKV(0)
	if h1 == h3 {
		t.Fatal("different histories hash alike")
	}
	// Up to 21 the two histories are the same.
	a, _, _ := finished.HashKV(21)
	b, _, _ := other.HashKV(21)
	if a != b {
		t.Fatal("histories equal up to 21 hash differently there")
	}
	if _, _, err := finished.HashKV(11); err != ErrCompacted {
		t.Fatalf("HashKV below the compaction: %v", err)
	}
	if _, _, err := finished.HashKV(23); err != ErrFutureRev {
		t.Fatalf("HashKV past the current revision: %v", err)
	}
}

// A compaction keeps the hash of what it compacted, as etcd's does:
// HashByRev at its revision answers it, with the compaction before as
// its compaction revision, until a restart forgets it; one whose removal
// before was unfinished (here: resumed after a restart) keeps none.
func TestCompactionHashes(t *testing.T) {
	dir := t.TempDir()
	b, err := backend.Open(dir, backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(b, nil, nil, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	index := uint64(0)
	put := func(k, v string) {
		index++
		tw := s.Write()
		tw.Put([]byte(k), []byte(v), 0)
		tw.End(index, 1)
	}
	compact := func(rev int64) {
		index++
		compactWait(t, s, rev, index)
	}
	for i := range 8 {
		put(fmt.Sprint("k", i%3), fmt.Sprint("v", i)) // revisions 2..9
	}
	before, _, err := s.HashKV(5)
	if err != nil || before.CompactRevision != -1 || before.Revision != 5 {
		t.Fatalf("HashKV(5) before any compaction = %+v, %v", before, err)
	}
	compact(5)
	compact(7)
	hs := s.CompactionHashes()
	if len(hs) != 2 || hs[0].Revision != 5 || hs[0].CompactRevision != -1 || hs[1].Revision != 7 || hs[1].CompactRevision != 5 {
		t.Fatalf("compaction hashes %+v", hs)
	}
	// Nothing at or below 5 was compacted when the first was taken: it
	// is the hash HashKV(5) gave then.
	if hs[0] != before {
		t.Fatalf("hash at the compaction %+v, HashKV before it %+v", hs[0], before)
	}
	got, cur, err := s.HashByRev(7)
	if err != nil || got != hs[1] || cur != 9 {
		t.Fatalf("HashByRev(7) = %+v, %d, %v; want %+v", got, cur, err, hs[1])
	}
	computed, _, err := s.HashKV(7)
	if err != nil || computed.CompactRevision != 7 || computed == hs[1] {
		t.Fatalf("HashKV(7) = %+v, %v: want one computed after the compaction at 7", computed, err)
	}

	// A restart forgets them; HashByRev computes.
	s.Close()
	s, err = open(b, nil, nil, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if hs := s.CompactionHashes(); len(hs) != 0 {
		t.Fatalf("hashes after a restart: %+v", hs)
	}
	if got, _, err := s.HashByRev(7); err != nil || got != computed {
		t.Fatalf("HashByRev(7) after a restart = %+v, %v; want %+v", got, err, computed)
	}
	s.Close()
	b.Close()

	// An interrupted removal, resumed by Open, keeps no hash (it did
	// not hash all it removed); the next compaction does.
	b, err = backend.Open(dir, backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err = open(b, nil, nil, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	put("k0", "x")
	put("k1", "y")
	compact(9) // gives up after a batch
	s.Close()
	s, err = open(b, nil, nil, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.compactor.wait()
	if hs := s.CompactionHashes(); len(hs) != 0 {
		t.Fatalf("a resumed removal kept %+v", hs)
	}
	put("k2", "z")
	compact(10)
	if hs := s.CompactionHashes(); len(hs) != 1 || hs[0].Revision != 10 || hs[0].CompactRevision != 9 {
		t.Fatalf("compaction hashes %+v", hs)
	}
}

// HashKV at a revision answers the same while writes go on beside it
// (puts of keys old and new, deletes, a key deleted and put back): its
// walks of the index let writes in between chunks of keys, and what they
// add lies above the revision hashed.
func TestHashKVWhileWriting(t *testing.T) {
	s, _ := newTestStore(t)
	index := uint64(0)
	write := func(f func(tw *TxnWrite)) {
		tw := s.Write()
		f(tw)
		index++
		if _, err := tw.End(index, 1); err != nil {
			t.Error(err)
		}
	}
	const keys = 5 * readChunk
	for i := range keys {
		write(func(tw *TxnWrite) { tw.Put(fmt.Appendf(nil, "k%05d", i), []byte("v0"), 0) })
	}
	for i := 0; i < keys; i += 3 {
		write(func(tw *TxnWrite) { tw.Put(fmt.Appendf(nil, "k%05d", i), []byte("v1"), 0) })
	}
	for i := 1; i < keys; i += 7 {
		write(func(tw *TxnWrite) { tw.DeleteRange(fmt.Appendf(nil, "k%05d", i), nil) })
	}
	index++
	compactWait(t, s, s.Rev()-100, index)
	rev := s.Rev()
	want, _, err := s.HashKV(rev)
	if err != nil {
		t.Fatal(err)
	}
	hashed := make(chan error)
	go func() {
		for range 5 {
			if h, _, err := s.HashKV(rev); err != nil || h != want {
				hashed <- fmt.Errorf("HashKV(%d) = %+v, %v while writing; %+v before", rev, h, err, want)
				return
			}
		}
		hashed <- nil
	}()
	for i := 0; ; i++ {
		select {
		case err := <-hashed:
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d writes ran beside the hashes", i)
			return
		default:
		}
		k := fmt.Appendf(nil, "k%05d", (i*131)%keys)
		switch i % 4 {
		case 0:
			write(func(tw *TxnWrite) { tw.Put(k, fmt.Appendf(nil, "w%d", i), 0) })
		case 1:
			write(func(tw *TxnWrite) { tw.DeleteRange(k, nil) })
		case 2:
			write(func(tw *TxnWrite) { tw.DeleteRange(k, nil); tw.Put(k, []byte("back"), 0) })
		case 3:
			write(func(tw *TxnWrite) { tw.Put(fmt.Appendf(nil, "new%d", i), []byte("n"), 0) })
		}
	}
}

// TestCompactionsRunInOrder: two compactions scheduled one right after the
// other have their removals run in that order, whichever goroutine is
// first: the earlier one's hash is what HashKV gave before it, as every
// member's is (the later one, scheduled before the earlier's removal
// ended, keeps none), and the last finished is the later one.
func TestCompactionsRunInOrder(t *testing.T) {
	s, b := newTestStore(t)
	index := uint64(0)
	for round := range 40 {
		for i := range 20 {
			index++
			tw := s.Write()
			tw.Put(fmt.Appendf(nil, "k%d", i%7), fmt.Appendf(nil, "v%d.%d", round, i), 0)
			tw.End(index, 1)
		}
		first, second := s.Rev()-10, s.Rev()-5
		want, _, err := s.HashKV(first)
		if err != nil {
			t.Fatal(err)
		}
		index++
		done1, err := s.Compact(first, index, 1)
		if err != nil {
			t.Fatal(err)
		}
		index++
		done2, err := s.Compact(second, index, 1)
		if err != nil {
			t.Fatal(err)
		}
		<-done1
		<-done2
		got, _, err := s.HashByRev(first)
		if err != nil || got != want {
			t.Fatalf("round %d: the hash kept at the compaction at %d is %+v, %v; HashKV gave %+v before it", round, first, got, err, want)
		}
		view := b.NewReadView()
		finished, err := getRev(view, finishedCompactKey)
		view.Close()
		if err != nil || finished != second {
			t.Fatalf("round %d: the last compaction finished is %d, %v; want %d", round, finished, err, second)
		}
	}
}

package backend

import (
	"fmt"
	"testing"
)

// Sizes count what is written and not yet flushed (the issue: a size
// from flushed tables alone stayed flat for 50 puts of 4 KiB), and a
// Defragment after deleting everything gives the space back.
func TestSizesAndDefragment(t *testing.T) {
	b, err := Open(t.TempDir(), Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	value := make([]byte, 4096)
	index := uint64(0)
	prev := b.Sizes().Total
	for i := range 60 {
		wb := b.NewBatch()
		wb.Set(fmt.Appendf(nil, "k%04d", i), value)
		index++
		if err := wb.Commit(index, 1); err != nil {
			t.Fatal(err)
		}
		est := b.SizesEstimate() // the last Sizes plus this batch
		sz := b.Sizes()
		if sz.Total < prev+4096 || sz.InUse > sz.Total {
			t.Fatalf("after put %d of 4 KiB: sizes %+v, %d before", i+1, sz, prev)
		}
		if est.Total < sz.Total-64 || est.Total > sz.Total+64 {
			t.Fatalf("after put %d of 4 KiB: estimated %+v, sizes %+v", i+1, est, sz)
		}
		prev = sz.Total
	}
	wb := b.NewBatch()
	wb.DeleteRange([]byte("k"), []byte("l"))
	index++
	if err := wb.Commit(index, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Defragment(); err != nil {
		t.Fatal(err)
	}
	if sz := b.Sizes(); sz.Total > 64<<10 || sz.InUse > sz.Total {
		t.Fatalf("sizes %+v after deleting 60 x 4 KiB and defragmenting, %d before", sz, prev)
	}
	if ci, _ := b.ConsistentIndex(); ci != index {
		t.Fatalf("consistent index %d after Defragment, want %d", ci, index)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Defragment(); err != ErrClosed {
		t.Fatalf("Defragment after Close: %v", err)
	}
}

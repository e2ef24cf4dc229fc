package backend

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
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

// Values of separateValueBytes and more live in blob files: they read back
// whole from the database and from a checkpoint, and a Defragment after
// deleting half of them returns only once the blob file holding both
// halves has been rewritten, so the space of the deleted half is back.
func TestLargeValuesInBlobFiles(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2)) // incompressible values
	want := map[string]string{}
	var puts, deletes []string
	for i := range 200 {
		v := make([]byte, 8<<10)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		k := fmt.Sprintf("k%04d", i)
		puts = append(puts, k, string(v))
		want[k] = string(v)
		if i%2 == 0 {
			deletes = append(deletes, k, "")
		}
	}
	commit(t, b, 1, puts...)
	if err := b.Sync(); err != nil { // one flush: one blob file
		t.Fatal(err)
	}
	if m := b.db.Metrics(); m.BlobFiles.LiveCount == 0 || m.BlobFiles.ValueSize < 200*8<<10 {
		t.Fatalf("after flushing 200 values of 8 KiB: %d blob files, %d bytes of values in them",
			m.BlobFiles.LiveCount, m.BlobFiles.ValueSize)
	}
	commit(t, b, 2, deletes...)
	for i := 0; i < len(deletes); i += 2 {
		delete(want, deletes[i])
	}
	before := b.Sizes()
	if err := b.Defragment(); err != nil {
		t.Fatal(err)
	}
	m := b.db.Metrics()
	after := b.Sizes()
	if m.BlobFiles.ValueSize != m.BlobFiles.ReferencedValueSize || after.Total > 100*8<<10+256<<10 || after.InUse > after.Total {
		t.Fatalf("after deleting 100 of 200 values of 8 KiB and defragmenting: sizes %+v (%+v before), "+
			"%d of the blob files' %d value bytes referenced", after, before, m.BlobFiles.ReferencedValueSize, m.BlobFiles.ValueSize)
	}
	checkValues := func(name string, b *Backend) {
		t.Helper()
		r := b.NewReadView()
		defer r.Close()
		n := 0
		err := r.Scan(nil, nil, func(k, v []byte) bool {
			if w, ok := want[string(k)]; !ok || w != string(v) {
				t.Errorf("%s: %s holds %d bytes, want %d (present %v)", name, k, len(v), len(w), ok)
			}
			n++
			return true
		})
		if err != nil || n != len(want) {
			t.Fatalf("%s: scanned %d keys (%v), want %d", name, n, err, len(want))
		}
	}
	checkValues("database", b)
	dir := filepath.Join(t.TempDir(), "checkpoint")
	if _, _, err := b.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, Options{CacheBytes: 1 << 20, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkValues("checkpoint", c)
}

// Defragment returns while writes go on: compactions keep leaving obsolete
// files and deletes keep making blob garbage, so a wait for none to be
// left could last as long as the writes.
func TestDefragmentReturnsUnderWrites(t *testing.T) {
	b := mustOpen(t, t.TempDir())
	defer b.Close()
	value := make([]byte, 2<<10)
	stop, warm := make(chan struct{}), make(chan struct{})
	writerDone := make(chan error, 1)
	go func() { // the writer: puts, deletes of older keys, flushes
		var err error
		defer func() { writerDone <- err }()
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			wb := b.NewBatch()
			for j := range uint64(8) {
				k := i*8 + j
				value[0] = byte(k)
				wb.Set(fmt.Appendf(nil, "k%08d", k), value)
				if k >= 400 {
					wb.Delete(fmt.Appendf(nil, "k%08d", k-400))
				}
			}
			if err = wb.Commit(i, 1); err != nil {
				return
			}
			if i%50 == 0 {
				if err = b.Sync(); err != nil {
					return
				}
			}
			if i == 1000 { // some 40 flushed tables and blob files
				close(warm)
			}
		}
	}()
	select {
	case <-warm:
	case err := <-writerDone:
		t.Fatalf("the writer stopped before its 1,000th batch: %v", err)
	}
	for round := range 3 {
		done := make(chan error, 1)
		go func() { done <- b.Defragment() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Defragment %d: %v", round, err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("Defragment %d has not returned after 2 minutes of writes", round)
		}
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
}

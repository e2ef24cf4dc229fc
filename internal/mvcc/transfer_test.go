package mvcc

import (
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn/internal/backend"
)

// A history exported from one store and imported into an empty backend
// reads back the same at every revision kept, with the same compaction
// and HashKV; a compaction mark past the last revision (etcdutl's
// --bump-revision) moves the store's revision there.
func TestExportImportHistory(t *testing.T) {
	src, srcBe := newTestStore(t)
	index := uint64(0)
	write := func(fn func(tw *TxnWrite)) {
		tw := src.Write()
		fn(tw)
		index++
		if _, err := tw.End(index, 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		write(func(tw *TxnWrite) { tw.Put(fmt.Appendf(nil, "k%02d", i%7), fmt.Appendf(nil, "v%d", i), int64(i%3)) })
	}
	write(func(tw *TxnWrite) {
		if _, err := tw.DeleteRange([]byte("k00"), []byte("k03")); err != nil {
			t.Fatal(err)
		}
	})
	write(func(tw *TxnWrite) { tw.Put([]byte("k00"), []byte("again"), 0) })
	done, err := src.Compact(10, index+1, 1)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	index++

	for _, bump := range []int64{0, 100} {
		t.Run(fmt.Sprintf("bump=%d", bump), func(t *testing.T) {
			dstBe, err := backend.Open(t.TempDir(), backend.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer dstBe.Close()
			im, err := NewImporter(dstBe)
			if err != nil {
				t.Fatal(err)
			}
			view := srcBe.NewReadView()
			var last int64
			err = ScanHistory(view, func(rev Revision, tombstone bool, kv []byte) error {
				last = rev.Main
				return im.Put(rev, tombstone, slices.Clone(kv))
			})
			scheduled, finished, cerr := Compaction(view)
			view.Close()
			if err != nil || cerr != nil {
				t.Fatal(err, cerr)
			}
			if scheduled != 10 || finished != 10 {
				t.Fatalf("compaction marks %d, %d; want 10, 10", scheduled, finished)
			}
			if bump > 0 {
				scheduled = last + bump
			}
			if err := im.Finish(scheduled, finished); err != nil {
				t.Fatal(err)
			}
			dst, err := Open(dstBe, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if bump > 0 {
				if got, want := dst.Rev(), src.Rev()+bump; got != want {
					t.Fatalf("revision after a bump of %d: %d, want %d", bump, got, want)
				}
				// Every key alive at the source's revision still reads the same.
				want, _ := src.Range([]byte{0}, []byte{0}, RangeOptions{})
				got, err := dst.Range([]byte{0}, []byte{0}, RangeOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !equalKVs(want.KVs, got.KVs) {
					t.Fatalf("live keys differ after a bump:\n%v\n%v", want.KVs, got.KVs)
				}
				if _, err := dst.Range([]byte("k01"), nil, RangeOptions{Rev: src.Rev()}); err != ErrCompacted {
					t.Fatalf("a read below the bumped compaction: %v, want ErrCompacted", err)
				}
				return
			}
			if dst.Rev() != src.Rev() {
				t.Fatalf("revision %d, want %d", dst.Rev(), src.Rev())
			}
			for rev := int64(10); rev <= src.Rev(); rev++ {
				want, err1 := src.Range([]byte{0}, []byte{0}, RangeOptions{Rev: rev})
				got, err2 := dst.Range([]byte{0}, []byte{0}, RangeOptions{Rev: rev})
				if err1 != nil || err2 != nil || !equalKVs(want.KVs, got.KVs) {
					t.Fatalf("revision %d: %v %v\n%v\n%v", rev, err1, err2, want.KVs, got.KVs)
				}
			}
			if _, err := dst.Range([]byte("k01"), nil, RangeOptions{Rev: 9}); err != ErrCompacted {
				t.Fatalf("a read below the compaction: %v, want ErrCompacted", err)
			}
			h1, _, err1 := src.HashKV(0)
			h2, _, err2 := dst.HashKV(0)
			if err1 != nil || err2 != nil || h1 != h2 {
				t.Fatalf("HashKV %x (%v) after import, %x (%v) before", h2, err2, h1, err1)
			}
		})
	}
}

func equalKVs(a, b []*mvccpb.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y *mvccpb.KeyValue) bool { return x.String() == y.String() })
}

// The importer refuses what Open would fail on later, and a backend that
// already holds a history.
func TestImportRefusesBadHistory(t *testing.T) {
	kv := func(key string, create, mod, ver int64) []byte {
		b := marshalKV(&mvccpb.KeyValue{Key: []byte(key), CreateRevision: create, ModRevision: mod, Version: ver})
		return b
	}
	for _, tc := range []struct {
		name string
		put  func(im *Importer) error
	}{
		{"out of order", func(im *Importer) error {
			if err := im.Put(Revision{Main: 3}, false, kv("a", 3, 3, 1)); err != nil {
				return nil // not the error under test
			}
			return im.Put(Revision{Main: 2}, false, kv("a", 2, 2, 1))
		}},
		{"undecodable", func(im *Importer) error { return im.Put(Revision{Main: 2}, false, []byte{0xff, 0xff}) }},
		{"no key", func(im *Importer) error { return im.Put(Revision{Main: 2}, false, kv("", 2, 2, 1)) }},
		{"mod revision not its own", func(im *Importer) error { return im.Put(Revision{Main: 2}, false, kv("a", 2, 5, 1)) }},
		{"revision 0", func(im *Importer) error { return im.Put(Revision{Main: 0}, false, kv("a", 0, 0, 1)) }},
		{"finished past scheduled", func(im *Importer) error { return im.Finish(3, 4) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, err := backend.Open(t.TempDir(), backend.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			im, err := NewImporter(be)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.put(im); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	s, be := newTestStore(t)
	tw := s.Write()
	tw.Put([]byte("a"), []byte("1"), 0)
	if _, err := tw.End(1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := NewImporter(be); err == nil {
		t.Fatal("importing into a backend with a history was accepted")
	}
}

package wal

import (
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// BenchmarkSave measures Save on the real disk with n entries of 256 bytes
// per synced Save, as the server's Ready loop calls it under load (one
// Save per Ready, batching whatever proposals arrived meanwhile). It
// reports entries/s, MB/s of entry payload, and syncs per entry (counting
// the file and directory syncs of segment cuts).
//
//	go test ./internal/wal -run '^$' -bench Save -benchtime 2000x
//
// Compare with the disk's raw synced-write rate:
//
//	dd if=/dev/zero of=F bs=4k count=2000 oflag=dsync
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			fs := vfs.NewErrorFS(vfs.OS()) // it counts syncs
			w, err := Create(fs, b.TempDir(), testMD, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			es := make([]raftpb.Entry, n)
			data := make([]byte, 256)
			index := uint64(0)
			b.SetBytes(int64(n * len(data)))
			syncs := fs.Count(vfs.OpSync)
			b.ResetTimer()
			for range b.N {
				for j := range es {
					index++
					es[j] = raftpb.Entry{Index: index, Term: 1, Data: data}
				}
				if err := w.Save(raftpb.HardState{Term: 1, Commit: index - 1}, es, true); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(index)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(fs.Count(vfs.OpSync)-syncs)/float64(index), "syncs/entry")
		})
	}
}

// BenchmarkOpen measures reading back a WAL of 250,000 entries of 256 bytes
// (about 70 MB, two segments; the rest of the last segment is read too, to
// check it is zero) from the page cache: the WAL's share of a restart.
//
//	go test ./internal/wal -run '^$' -bench Open -benchtime 5x
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	w, err := Create(vfs.OS(), dir, testMD, Options{})
	if err != nil {
		b.Fatal(err)
	}
	const total, batch = 250_000, 100
	data := make([]byte, 256)
	es := make([]raftpb.Entry, batch)
	for i := uint64(0); i < total; i += batch {
		for j := range es {
			es[j] = raftpb.Entry{Index: i + uint64(j) + 1, Term: 1, Data: data}
		}
		if err := w.Save(raftpb.HardState{Term: 1, Commit: i}, es, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		w, st, err := Open(vfs.OS(), dir, Snapshot{}, Options{})
		if err != nil || len(st.Entries) != total {
			b.Fatalf("Open: %d entries, %v", len(st.Entries), err)
		}
		w.Close()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

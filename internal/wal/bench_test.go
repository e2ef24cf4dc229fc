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

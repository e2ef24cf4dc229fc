package backend

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCommitDuringCheckpoint: the longest one commit waited while a
// checkpoint (a backup's `snapshot save`, or a raft snapshot for a
// follower: a Sync, then Checkpoint, as Applier.Checkpoint does) ran with 24 MiB committed since the last flush, on the real
// disk, a loop committing 1 KiB batches beside it as fast as it can. Every
// apply commits, so this is how long a member's applying would stall.
//
//	go test ./internal/backend -run '^$' -bench CommitDuringCheckpoint -benchtime 3x
func BenchmarkCommitDuringCheckpoint(b *testing.B) {
	value := make([]byte, 1024)
	for n := range b.N {
		b.StopTimer()
		be, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		index := uint64(0)
		commit := func() {
			index++
			wb := be.NewBatch()
			wb.Set(fmt.Appendf(nil, "key%09d", index), value)
			if err := wb.Commit(index, 1); err != nil {
				b.Fatal(err)
			}
		}
		for range 24 << 10 { // 24 MiB of 1 KiB values, not flushed (a memtable holds 32 MiB)
			commit()
		}
		b.StartTimer()
		done := make(chan error, 1)
		go func() { // as Applier.Checkpoint does
			if err := be.Sync(); err != nil {
				done <- err
				return
			}
			_, _, err := be.Checkpoint(filepath.Join(b.TempDir(), fmt.Sprint("copy", n)))
			done <- err
		}()
		var longest time.Duration
		for running := true; running; {
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				running = false
			default:
				start := time.Now()
				commit()
				longest = max(longest, time.Since(start))
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(longest.Microseconds())/1000, "longest-commit-ms")
		if err := be.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

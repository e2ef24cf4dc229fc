package wal

import (
	"errors"
	"syscall"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// A failed sync or write is fatal: Save reports it, every later call
// reports the same error (a retried fsync can falsely succeed after the
// kernel dropped the dirty pages), and after a restart the WAL holds what
// was synced before, plus at most whole records of what was not.
func TestFailedSyncOrWriteIsFatal(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   vfs.Op
		err  error
	}{
		{"fsync fails", vfs.OpSync, syscall.EIO},
		{"disk full", vfs.OpWrite, syscall.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			efs := vfs.NewErrorFS(mem)
			w := mustCreate(t, efs, "/wal", Options{SegmentBytes: 1 << 20})
			mustSave(t, w, raftpb.HardState{Term: 1, Commit: 1}, bigEnts(1, 3, 1))

			efs.FailNth(tc.op, 1, tc.err)
			err := w.Save(raftpb.HardState{Term: 1, Commit: 3}, bigEnts(4, 6, 1), true)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Save: got %v, want %v", err, tc.err)
			}
			// The disk works again, but the WAL does not trust it.
			if err2 := w.Save(raftpb.HardState{Term: 1, Commit: 3}, bigEnts(7, 7, 1), true); !errors.Is(err2, tc.err) {
				t.Fatalf("Save after the failure: got %v, want the same error", err2)
			}
			if err2 := w.Sync(); !errors.Is(err2, tc.err) {
				t.Fatalf("Sync after the failure: got %v, want the same error", err2)
			}
			if _, err2 := w.Release(3); !errors.Is(err2, tc.err) {
				t.Fatalf("Release after the failure: got %v, want the same error", err2)
			}

			for _, crash := range []func(){mem.Crash, func() {}} {
				crash()
				w, st := mustOpen(t, mem, "/wal", Snapshot{}, Options{SegmentBytes: 1 << 20})
				w.Close()
				// Entries 4..6 may or may not have reached the disk, whole or
				// in part; a part is never returned as valid.
				n := len(st.Entries)
				if n < 3 || n > 6 {
					t.Fatalf("read %s", describe(st.Entries))
				}
				checkEntries(t, st.Entries, bigEnts(1, uint64(n), 1))
			}
		})
	}
}

package raftnode

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

type nopTransport struct{}

func (nopTransport) Send([]raftpb.Message) {}

// startOne runs a one-member node on fs (the WAL's) and returns it with
// the entries it asks to apply, as they arrive.
func startOne(t *testing.T, fs vfs.FS) *Node {
	t.Helper()
	storage := raft.NewMemoryStorage()
	if err := raft.Bootstrap(storage, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(fs, "/wal", wal.Metadata{MemberID: 1, ClusterID: 1}, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ents, _ := storage.Entries(1, 2, ^uint64(0))
	if err := w.Save(storage.HardState(), ents, true); err != nil {
		t.Fatal(err)
	}
	sn, err := snap.New(vfs.NewMem(), "/snap", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{
		ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, TickInterval: time.Millisecond,
		Storage: storage, WAL: w, Snap: sn, FS: fs, WALDir: "/wal", Transport: nopTransport{},
		CampaignOnStart: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// proposeUntilApplied proposes data until an entry holding it comes out to
// apply (the first proposals can precede the election).
func proposeUntilApplied(t *testing.T, n *Node, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := n.Propose(ctx, []byte(data)); err != nil && !errors.Is(err, raft.ErrProposalDropped) {
			t.Fatal(err)
		}
		timeout := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case ta, ok := <-n.Apply():
				if !ok {
					t.Fatalf("loop stopped: %v", n.Err())
				}
				for _, e := range ta.Entries {
					if string(e.Data) == data {
						return
					}
				}
			case <-timeout:
				break wait
			case <-ctx.Done():
				t.Fatal("not applied in 10s")
			}
		}
	}
}

// A failed fsync of the WAL stops the member: the loop ends with the
// error, and the entry whose write failed is never handed out to apply.
func TestFailedSyncStopsTheLoop(t *testing.T) {
	fs := vfs.NewErrorFS(vfs.NewMem())
	n := startOne(t, fs)
	proposeUntilApplied(t, n, "before")
	fs.FailNth(vfs.OpSync, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.Propose(ctx, []byte("after"))
	for ta := range n.Apply() { // closed when the loop stops
		for _, e := range ta.Entries {
			if string(e.Data) == "after" {
				t.Fatalf("entry %d was handed out to apply although its WAL write failed", e.Index)
			}
		}
	}
	<-n.Done()
	if err := n.Err(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Err() = %v, want the injected fsync failure", err)
	}
	if err := n.Propose(ctx, []byte("later")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose after the failure: %v, want ErrStopped", err)
	}
}

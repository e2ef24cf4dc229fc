package raftnode

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

// recordingSender hands every message sent to a channel.
type recordingSender chan raftpb.Message

func (r recordingSender) Send(msgs []raftpb.Message) {
	for _, m := range msgs {
		r <- m
	}
}

type nopApplier struct{}

func (nopApplier) Apply(ToApply) error { return nil }

// threeVoters is member 1's recovered storage and log in a fresh
// three-member cluster.
func threeVoters(t *testing.T) (*raft.MemoryStorage, *wal.WAL, *snap.Snapshotter) {
	t.Helper()
	storage := raft.NewMemoryStorage()
	if err := raft.Bootstrap(storage, []uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	fs := vfs.NewMem()
	w, err := wal.Create(fs, "/wal", wal.Metadata{MemberID: 1, ClusterID: 1}, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	last, _ := storage.LastIndex()
	ents, _ := storage.Entries(1, last+1, ^uint64(0))
	if err := w.Save(storage.HardState(), ents, true); err != nil {
		t.Fatal(err)
	}
	sn, err := snap.New(vfs.NewMem(), "/snap", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return storage, w, sn
}

// A member campaigns with a pre-vote round unless DisablePreVote (etcd's
// --pre-vote=false), when it asks for real votes at once, in a new term.
func TestDisablePreVote(t *testing.T) {
	for _, disable := range []bool{false, true} {
		storage, w, sn := threeVoters(t)
		sent := make(recordingSender, 16)
		d, err := NewDriver(DriverConfig{
			ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, Storage: storage, Log: w, Snaps: sn,
			Sender: sent, Applier: nopApplier{}, Rand: rand.New(rand.NewPCG(1, 2)),
			CampaignOnStart: true, DisablePreVote: disable,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.HandleReady(); err != nil {
			t.Fatal(err)
		}
		want := raftpb.MsgPreVote
		if disable {
			want = raftpb.MsgVote
		}
		if len(sent) != 2 {
			t.Fatalf("DisablePreVote=%v: %d messages sent, want one to each peer", disable, len(sent))
		}
		for range 2 {
			if m := <-sent; m.Type != want {
				t.Fatalf("DisablePreVote=%v: sent %v, want %v", disable, m.Type, want)
			}
		}
	}
}

// AdvanceTicks moves raft's clock at once: two ticks short of an election
// timeout nothing happens, a whole randomized timeout (at most twice the
// election ticks) later the member campaigns. The ticker itself is too
// slow to matter here.
func TestAdvanceTicks(t *testing.T) {
	const electionTicks = 1000
	storage, w, sn := threeVoters(t)
	sent := make(recordingSender, 16)
	n, err := New(Config{
		ID: 1, ElectionTicks: electionTicks, HeartbeatTicks: 1, TickInterval: time.Hour,
		Storage: storage, WAL: w, Snap: sn, Transport: sent,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	defer n.Stop()
	n.AdvanceTicks(electionTicks - 2)
	// A status round trip: the advance before it has been handled.
	if _, err := n.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 0 {
		t.Fatalf("campaigned %v before an election timeout", (<-sent).Type)
	}
	n.AdvanceTicks(electionTicks + 2)
	select {
	case m := <-sent:
		if m.Type != raftpb.MsgPreVote {
			t.Fatalf("sent %v, want a pre-vote", m.Type)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no campaign after advancing past the election timeout")
	}
}

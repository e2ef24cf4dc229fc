package apply

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

func applyCC(t *testing.T, a *Applier, index uint64, cc raftpb.ConfChange, ctx *membership.ChangeContext) Result {
	t.Helper()
	if ctx != nil {
		cc.Context = ctx.Marshal()
	}
	res, applied, err := a.Apply(raftpb.Entry{Type: raftpb.EntryConfChange, Term: 1, Index: index, Data: cc.Marshal()})
	if err != nil || !applied {
		t.Fatalf("apply %v at %d: applied %v, %v", cc, index, applied, err)
	}
	return res
}

func member(t *testing.T, a *Applier, id uint64) (membership.Member, bool) {
	t.Helper()
	i := slices.IndexFunc(a.Members(), func(m membership.Member) bool { return m.ID == id })
	if i < 0 {
		return membership.Member{}, false
	}
	return a.Members()[i], true
}

// The member records follow each change raft makes, and survive a reopen:
// a voter added as a raft learner keeps a voter's record until promoted,
// an update changes only the peer URLs, a removed ID is remembered.
func TestConfChangeRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	a, err := Open(dir, backend.Options{CacheBytes: 1 << 20}, 1, Metrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	founding := membership.Member{ID: 1, Name: "a", PeerURLs: []string{"http://a:2380"}, ClientURLs: []string{"http://a:2379"}}
	applyCC(t, a, 1, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 1}, &membership.ChangeContext{Member: founding})

	// A voter, added as a raft learner: its record says voter, and the
	// result carries the proposer's request ID and the index.
	res := applyCC(t, a, 2, raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 2},
		&membership.ChangeContext{Member: membership.Member{ID: 2, PeerURLs: []string{"http://b:2380"}}, RequestID: 77})
	if res.ID != 77 || res.Index != 2 || res.Err != nil {
		t.Fatalf("result %+v, want ID 77 index 2", res)
	}
	if m, _ := member(t, a, 2); m.IsLearner || !a.ConfState().IsLearner(2) {
		t.Fatalf("pending voter: record %+v, conf %v", m, a.ConfState())
	}
	// A learner.
	applyCC(t, a, 3, raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 3},
		&membership.ChangeContext{Member: membership.Member{ID: 3, PeerURLs: []string{"http://c:2380"}, IsLearner: true}})
	if m, _ := member(t, a, 3); !m.IsLearner {
		t.Fatalf("learner record %+v", m)
	}
	// Promotions keep the records (names, URLs) and clear IsLearner.
	applyCC(t, a, 4, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 2}, &membership.ChangeContext{RequestID: 5})
	applyCC(t, a, 5, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 3}, nil)
	if m, _ := member(t, a, 3); m.IsLearner || len(m.PeerURLs) != 1 || !a.ConfState().IsVoter(3) {
		t.Fatalf("promoted record %+v conf %v", m, a.ConfState())
	}
	// An update changes the peer URLs only.
	applyCC(t, a, 6, raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: 1},
		&membership.ChangeContext{Member: membership.Member{ID: 1, PeerURLs: []string{"http://a2:2380"}}})
	if m, _ := member(t, a, 1); m.Name != "a" || !slices.Equal(m.PeerURLs, []string{"http://a2:2380"}) || len(m.ClientURLs) != 1 {
		t.Fatalf("updated record %+v", m)
	}
	// A removal deletes the record and remembers the ID.
	applyCC(t, a, 7, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 2}, nil)
	if _, ok := member(t, a, 2); ok || !a.IsRemoved(2) || a.ConfState().IsVoter(2) {
		t.Fatalf("after removal: members %+v removed %v conf %v", a.Members(), a.Removed(), a.ConfState())
	}
	// An invalid change (raft ignores it too) moves only the index.
	res = applyCC(t, a, 8, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 2}, &membership.ChangeContext{RequestID: 9})
	if res.ID != 9 || res.Err == nil || a.ConsistentIndex() != 8 {
		t.Fatalf("invalid change: result %+v, consistent index %d", res, a.ConsistentIndex())
	}

	want, wantConf := a.Members(), a.ConfState()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err = Open(dir, backend.Options{CacheBytes: 1 << 20}, 1, Metrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Members(); len(got) != len(want) || !a.IsRemoved(2) || a.IsRemoved(1) ||
		!slices.Equal(a.ConfState().Voters, wantConf.Voters) {
		t.Fatalf("after reopen: members %+v (want %+v), removed %v, conf %v", got, want, a.Removed(), a.ConfState())
	}
}

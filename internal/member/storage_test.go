package member

import (
	"path/filepath"
	"slices"
	"testing"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// threeMembers is member a's configuration in a three-member cluster, on
// dir.
func threeMembers(dir string) Config {
	return Config{
		Name: "a", Dir: filepath.Join(dir, "member"),
		InitialCluster:      "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3",
		InitialClusterToken: "t", InitialClusterState: "new",
		AdvertisePeerURLs: []string{"http://127.0.0.1:1"}, MinLeaseTTL: 1,
	}
}

func mustOpen(t *testing.T, cfg Config) *Storage {
	t.Helper()
	st, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// logOf is the recovered log: its entries and hard state.
func logOf(t *testing.T, st *Storage) ([]raftpb.Entry, raftpb.HardState) {
	t.Helper()
	last, _ := st.Raft.LastIndex()
	first, _ := st.Raft.FirstIndex()
	ents, err := st.Raft.Entries(first, last+1, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	return ents, st.Raft.HardState()
}

// --force-new-cluster on a member of three: what was committed stays, the
// entries after the commit index go, two RemoveNode entries for the other
// members are appended and committed, and raft starts with this member as
// its only voter. Applying the log leaves one member in the membership
// store; a later start without the flag finds the same log.
func TestForceNewCluster(t *testing.T) {
	cfg := threeMembers(t.TempDir())
	st := mustOpen(t, cfg)
	self, founders := st.MemberID, st.Peers
	if len(st.ConfState.Voters) != 3 {
		t.Fatalf("founding configuration %v, want three voters", st.ConfState)
	}
	// Term 2: entries 4 and 5 committed, 6 and 7 not.
	var ents []raftpb.Entry
	for i := uint64(4); i <= 7; i++ {
		ents = append(ents, raftpb.Entry{Type: raftpb.EntryNormal, Term: 2, Index: i})
	}
	if err := st.WAL.Save(raftpb.HardState{Term: 2, Vote: self, Commit: 5}, ents, true); err != nil {
		t.Fatal(err)
	}
	st.Close()

	cfg.ForceNewCluster = true
	st = mustOpen(t, cfg)
	check := func(st *Storage) {
		t.Helper()
		if !slices.Equal(st.ConfState.Voters, []uint64{self}) || len(st.ConfState.Learners) != 0 {
			t.Fatalf("configuration %v, want %x alone", st.ConfState, self)
		}
		for _, m := range st.Peers {
			if m.ID != self {
				t.Fatalf("peers %v: raft would talk to removed members", st.Peers)
			}
		}
		log, hs := logOf(t, st)
		if hs.Commit != 7 || hs.Term != 2 || len(log) != 7 {
			t.Fatalf("hard state %+v, %d entries; want commit 7 of 7 entries in term 2", hs, len(log))
		}
		var removed []uint64
		for _, e := range log[5:] {
			var cc raftpb.ConfChange
			if e.Type != raftpb.EntryConfChange || e.Term != 2 || cc.Unmarshal(e.Data) != nil || cc.Type != raftpb.ConfChangeRemoveNode {
				t.Fatalf("entry %d is %v (term %d), want a RemoveNode in term 2", e.Index, e.Type, e.Term)
			}
			removed = append(removed, cc.NodeID)
		}
		var others []uint64
		for _, m := range founders {
			if m.ID != self {
				others = append(others, m.ID)
			}
		}
		slices.Sort(removed)
		if !slices.Equal(removed, others) {
			t.Fatalf("removed %x, want %x", removed, others)
		}
	}
	check(st)
	log, _ := logOf(t, st)
	for _, e := range log {
		if _, _, err := st.Applier.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	if ms := st.Applier.Members(); len(ms) != 1 || ms[0].ID != self {
		t.Fatalf("members after applying %v, want %x alone", ms, self)
	}
	st.Close()

	cfg.ForceNewCluster = false
	st = mustOpen(t, cfg)
	defer st.Close()
	check(st)
}

// On a first start --force-new-cluster does nothing (etcd ignores it):
// the founding members are the configuration.
func TestForceNewClusterFirstStart(t *testing.T) {
	cfg := threeMembers(t.TempDir())
	cfg.ForceNewCluster = true
	st := mustOpen(t, cfg)
	defer st.Close()
	if len(st.ConfState.Voters) != 3 || len(st.Peers) != 3 {
		t.Fatalf("configuration %v, peers %v: want the three founders", st.ConfState, st.Peers)
	}
}

// With UnsafeNoFsync no sync reaches the file system, from creating the
// member through a synced WAL write and a snapshot file; without it the
// same work syncs.
func TestUnsafeNoFsync(t *testing.T) {
	for _, noFsync := range []bool{false, true} {
		counted := vfs.NewErrorFS(vfs.NewMem())
		cfg := threeMembers("/data")
		cfg.FS, cfg.UnsafeNoFsync = counted, noFsync
		cfg.Backend.FS = pebblevfs.NewMem() // its syncs: see package backend
		st := mustOpen(t, cfg)
		ent := raftpb.Entry{Type: raftpb.EntryNormal, Term: 2, Index: 4}
		if err := st.WAL.Save(raftpb.HardState{Term: 2, Commit: 4}, []raftpb.Entry{ent}, true); err != nil {
			t.Fatal(err)
		}
		snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 4, Term: 2, ConfState: st.ConfState}}
		if err := st.Snap.Save(snap); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if n := counted.Count(vfs.OpSync); noFsync != (n == 0) {
			t.Fatalf("UnsafeNoFsync=%v: %d syncs reached the file system", noFsync, n)
		}
	}
}

// A WAL left in <data-dir>/member/wal is not silently replaced by a new
// member when --wal-dir names an empty directory.
func TestDedicatedWALDirWithWALLeftBehind(t *testing.T) {
	dir := t.TempDir()
	cfg := threeMembers(dir)
	mustOpen(t, cfg).Close()
	cfg.DedicatedWALDir = filepath.Join(dir, "elsewhere")
	if st, err := Open(cfg); err == nil {
		st.Close()
		t.Fatal("opened a new WAL in --wal-dir with the old one left in member/wal")
	}
}

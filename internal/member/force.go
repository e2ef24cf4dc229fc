package member

import (
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// confAfter is the configuration after cs and the configuration changes
// among ents, as raft computes it (an invalid change is a no-op).
func confAfter(cs raftpb.ConfState, ents []raftpb.Entry) raftpb.ConfState {
	cs = cs.Clone()
	for _, e := range ents {
		if e.Type != raftpb.EntryConfChange {
			continue
		}
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			continue // the applier stops on it; raft ignores it
		}
		if next, err := raft.ApplyConfChange(cs, cc); err == nil {
			cs = next
		}
	}
	return cs
}

// forceNewCluster rewrites a recovered log so that this member is the
// only voter (etcd's --force-new-cluster), for a member whose peers are
// gone for good. From
//
//	snapshot ConfState {1 2 3}, entries 11..20, commit 18, term 4, self 1
//
// it keeps entries 11..18 (what is committed stays, whatever the others
// hold; 19 and 20 may never have been acknowledged, and nobody is left to
// commit them), then appends
//
//	19: RemoveNode 2 (term 4)    20: RemoveNode 3 (term 4)
//
// and commits them: a learner is removed as well, and a member that is not
// a voter adds itself as one first. The members are removed from the
// membership store as the entries are applied, like any other change;
// the cluster ID, the member ID and every key stay. The WAL is written,
// synced, before raft sees any of it, so a later start without the flag
// finds the one-member cluster. When there is nothing to remove but
// uncommitted entries were dropped, an empty entry takes their place in
// the WAL, so that they do not come back on the next start.
func forceNewCluster(cfg Config, st *Storage, snapMeta raftpb.SnapshotMetadata, hs raftpb.HardState, ents []raftpb.Entry) (raftpb.HardState, []raftpb.Entry, error) {
	self := st.MemberID
	kept := slices.IndexFunc(ents, func(e raftpb.Entry) bool { return e.Index > hs.Commit })
	if kept < 0 {
		kept = len(ents)
	} else {
		cfg.Logger.Info("discarding uncommitted WAL entries", zap.Uint64("entry-index", ents[kept].Index),
			zap.Uint64("commit-index-from-wal", hs.Commit), zap.Int("number-of-discarded-entries", len(ents)-kept))
	}
	dropped := len(ents) - kept
	ents = ents[:kept:kept]
	last := snapMeta.Index
	if n := len(ents); n > 0 {
		last = ents[n-1].Index
	}
	if last != hs.Commit {
		return hs, nil, fmt.Errorf("--force-new-cluster: the log ends at %d, before its commit index %d", last, hs.Commit)
	}

	cs := confAfter(snapMeta.ConfState, ents)
	var ccs []raftpb.ConfChange
	if !cs.IsVoter(self) {
		cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: self}
		for _, m := range st.Applier.Members() {
			if m.ID == self {
				m.IsLearner = false
				cc.Context = m.Marshal()
			}
		}
		ccs = append(ccs, cc)
	}
	for _, id := range append(slices.Clone(cs.Voters), cs.Learners...) {
		if id != self {
			ccs = append(ccs, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id})
		}
	}
	var added []raftpb.Entry
	for _, cc := range ccs {
		added = append(added, raftpb.Entry{Type: raftpb.EntryConfChange, Term: hs.Term,
			Index: last + 1 + uint64(len(added)), Data: cc.Marshal()})
	}
	if len(added) == 0 && dropped > 0 {
		added = append(added, raftpb.Entry{Type: raftpb.EntryNormal, Term: hs.Term, Index: last + 1})
	}
	walCommit := hs.Commit
	if n := len(added); n > 0 {
		hs.Commit = added[n-1].Index
		if err := st.WAL.Save(hs, added, true); err != nil {
			return hs, nil, err
		}
	}
	cfg.Logger.Info("forcing restart member", zap.String("cluster-id", membership.IDString(st.ClusterID)),
		zap.String("local-member-id", membership.IDString(self)),
		zap.Uint64("wal-commit-index", walCommit), zap.Uint64("commit-index", hs.Commit))
	return hs, append(ents, added...), nil
}

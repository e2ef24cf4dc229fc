package member

import (
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// CaughtUpEntries is how far behind the leader's log a learner may be and
// still count as caught up: promoted (by a client, or on its own if it
// was added as a voter) it then adds no wait to the commits it joins.
const CaughtUpEntries = 1000

// CaughtUp reports whether the leader, with status st, sees member id's
// log as caught up: replicating, at most CaughtUpEntries behind its own,
// and at least 90% of the way there (etcd's rule for promoting).
func CaughtUp(st raft.Status, id uint64) bool {
	pr, ok := st.Progress[id]
	own, ok2 := st.Progress[st.ID]
	if !ok || !ok2 || pr.State != raft.StateReplicate {
		return false
	}
	return pr.Match+CaughtUpEntries >= own.Match && float64(pr.Match) >= 0.9*float64(own.Match)
}

// PromotionsDue returns the members that were added as voters, that raft
// still counts as learners (Cairn adds a voter as a learner first, so
// that a member added and not yet started, or still catching up, is not
// counted in quorums: a one-member cluster could not commit the addition
// of a second voter otherwise), and that have now caught up. The leader
// proposes their promotion, one at a time.
func PromotionsDue(members []membership.Member, cs raftpb.ConfState, st raft.Status) []uint64 {
	var due []uint64
	for _, m := range members {
		if !m.IsLearner && cs.IsLearner(m.ID) && CaughtUp(st, m.ID) {
			due = append(due, m.ID)
		}
	}
	return due
}

package raft

import (
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/internal/invariants"
)

// checkInvariants panics if the core's state is inconsistent. It runs after
// every input when invariants are enabled (tests), and costs nothing
// otherwise.
func (r *raft) checkInvariants() {
	if !invariants.Enabled {
		return
	}
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("raft: invariant violated on member %d (term %d, %s): %s", r.id, r.term, r.state, fmt.Sprintf(format, args...)))
	}
	l := r.raftLog
	if !(l.applied <= l.committed && l.committed <= l.lastIndex()) {
		fail("applied %d <= committed %d <= last %d", l.applied, l.committed, l.lastIndex())
	}
	if r.state == StateLeader && r.lead != r.id {
		fail("leader with lead %d", r.lead)
	}
	if r.state == StateCandidate && r.vote != r.id {
		fail("candidate voted for %d", r.vote)
	}
	prev := uint64(0)
	for _, p := range r.confLog {
		if p.index <= prev || p.index > l.lastIndex() {
			fail("configuration point at %d (previous %d, last index %d)", p.index, prev, l.lastIndex())
		}
		prev = p.index
	}
	cs := r.trk.conf
	if !slices.IsSorted(cs.Voters) || !slices.IsSorted(cs.Learners) {
		fail("configuration not sorted: %s", cs)
	}
	for _, id := range cs.Learners {
		if cs.IsVoter(id) {
			fail("%d is both voter and learner", id)
		}
	}
	if len(r.trk.progress) != len(cs.Voters)+len(cs.Learners) || len(r.trk.ids) != len(r.trk.progress) {
		fail("progress for %d members, %d ids, configuration %s", len(r.trk.progress), len(r.trk.ids), cs)
	}
	if r.state != StateLeader {
		return
	}
	for id, pr := range r.trk.progress {
		if pr.Match >= pr.Next {
			fail("progress of %d: match %d >= next %d", id, pr.Match, pr.Next)
		}
		if pr.Next > l.lastIndex()+1 {
			fail("progress of %d: next %d past last index %d", id, pr.Next, l.lastIndex())
		}
		if pr.IsLearner != cs.IsLearner(id) {
			fail("progress of %d: learner %v, configuration %s", id, pr.IsLearner, cs)
		}
	}
}

package raft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// ErrInvalidConfChange: a configuration change that cannot apply to the
// current configuration (adding a voter twice, removing a non-member, or
// leaving the cluster without a voter). Such a change is refused when
// proposed; if one reaches the log anyway it is a no-op on every member.
var ErrInvalidConfChange = errors.New("raft: invalid configuration change")

// ApplyConfChange returns the configuration cs changed by cc. It is pure and
// deterministic: the core and the application both call it on the same log,
// so they agree on every configuration. cs is not modified.
//
//	{voters=[1 2 3]} + AddLearner(4) -> {voters=[1 2 3] learners=[4]}
//	                 + AddVoter(4)   -> {voters=[1 2 3 4]}          (promotion)
//	                 + RemoveNode(1) -> {voters=[2 3 4]}
//	                 + UpdateNode(2) -> {voters=[2 3 4]}            (a member's URLs)
func ApplyConfChange(cs raftpb.ConfState, cc raftpb.ConfChange) (raftpb.ConfState, error) {
	if cc.NodeID == 0 {
		return cs, fmt.Errorf("%w: node id 0", ErrInvalidConfChange)
	}
	id := cc.NodeID
	voter, learner := cs.IsVoter(id), cs.IsLearner(id)
	out := cs.Clone()
	switch cc.Type {
	case raftpb.ConfChangeAddVoter:
		if voter {
			return cs, fmt.Errorf("%w: %d is already a voter", ErrInvalidConfChange, id)
		}
		out.Learners = remove(out.Learners, id)
		out.Voters = insert(out.Voters, id)
	case raftpb.ConfChangeAddLearner:
		if learner {
			return cs, fmt.Errorf("%w: %d is already a learner", ErrInvalidConfChange, id)
		}
		if voter && len(cs.Voters) == 1 {
			return cs, fmt.Errorf("%w: demoting %d leaves no voter", ErrInvalidConfChange, id)
		}
		out.Voters = remove(out.Voters, id)
		out.Learners = insert(out.Learners, id)
	case raftpb.ConfChangeRemoveNode:
		switch {
		case voter && len(cs.Voters) == 1:
			return cs, fmt.Errorf("%w: removing %d leaves no voter", ErrInvalidConfChange, id)
		case voter:
			out.Voters = remove(out.Voters, id)
		case learner:
			out.Learners = remove(out.Learners, id)
		default:
			return cs, fmt.Errorf("%w: %d is not a member", ErrInvalidConfChange, id)
		}
	case raftpb.ConfChangeUpdateNode:
		if !voter && !learner {
			return cs, fmt.Errorf("%w: %d is not a member", ErrInvalidConfChange, id)
		}
	default:
		return cs, fmt.Errorf("%w: unknown type %d", ErrInvalidConfChange, cc.Type)
	}
	return out, nil
}

func insert(ids []uint64, id uint64) []uint64 {
	i, found := slices.BinarySearch(ids, id)
	if found {
		return ids
	}
	return slices.Insert(ids, i, id)
}

func remove(ids []uint64, id uint64) []uint64 {
	i, found := slices.BinarySearch(ids, id)
	if !found {
		return ids
	}
	out := slices.Delete(ids, i, i+1)
	if len(out) == 0 {
		return nil
	}
	return out
}

// confChangeOf decodes a conf change entry. A conf change entry that does
// not decode can only come from a corrupt log: crash loudly.
func confChangeOf(e *raftpb.Entry) raftpb.ConfChange {
	var cc raftpb.ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		panic(fmt.Sprintf("raft: conf change entry %d/%d: %v", e.Term, e.Index, err))
	}
	return cc
}

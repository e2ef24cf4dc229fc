package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/internal/membership"
)

// Status is what Maintenance.Status reports.
type Status struct {
	// DBSize and DBSizeInUse are the backend's sizes (backend.Sizes).
	DBSize      int64
	DBSizeInUse int64
	// QuotaBytes is --quota-backend-bytes (the default for 0; negative:
	// no quota), as etcd reports it.
	QuotaBytes   int64
	Leader       uint64
	CommitIndex  uint64
	AppliedIndex uint64
	Term         uint64
	IsLearner    bool
	Errors       []string
}

// Status reports the member's state.
func (s *Server) Status() Status {
	sizes := s.applier.Sizes()
	st := Status{
		DBSize:       sizes.Total,
		DBSizeInUse:  sizes.InUse,
		QuotaBytes:   s.cfg.QuotaBackendBytes,
		Leader:       s.rn.Lead(),
		CommitIndex:  s.rn.CommitIndex(),
		AppliedIndex: s.AppliedIndex(),
		Term:         s.rn.Term(),
		IsLearner:    s.IsLearner(),
	}
	// etcd's errors: no leader, then every alarm as etcd 3.7 prints it
	// ("memberID:10276657743932975437 alarm:NOSPACE").
	if st.Leader == 0 {
		st.Errors = append(st.Errors, ErrNoLeader.Error())
	}
	for _, a := range s.Alarms() {
		st.Errors = append(st.Errors, fmt.Sprintf("memberID:%d alarm:%s", a.MemberID, a.Alarm))
	}
	return st
}

// MemberList returns the members, after a linearizable read barrier if
// asked (etcd's clients ask by default).
func (s *Server) MemberList(ctx context.Context, linearizable bool) ([]membership.Member, error) {
	if linearizable {
		if err := s.linearizableReadWait(ctx); err != nil {
			return nil, err
		}
	}
	return s.applier.Members(), nil
}

// RaftStatusJSON is raft's state in the form etcd publishes it as
// "raft.status" on /debug/vars: IDs in hex, the leader's view of each
// member's progress (empty on followers), in member order.
//
//	{"id":"8e9e05c52164694d","term":2,"vote":"8e9e05c52164694d","commit":5,
//	 "lead":"8e9e05c52164694d","raftState":"StateLeader","applied":5,
//	 "progress":{"8e9e05c52164694d":{"match":5,"next":6,"state":"StateReplicate"}},
//	 "leadtransferee":"0"}
func (s *Server) RaftStatusJSON(ctx context.Context) ([]byte, error) {
	st, err := s.rn.Status(ctx)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":"%x","term":%d,"vote":"%x","commit":%d,"lead":"%x","raftState":%q,"applied":%d,"progress":{`,
		st.ID, st.Term, st.Vote, st.Commit, st.Lead, st.RaftState.String(), st.Applied)
	ids := make([]uint64, 0, len(st.Progress))
	for id := range st.Progress {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		pr := st.Progress[id]
		fmt.Fprintf(&b, `"%x":{"match":%d,"next":%d,"state":%q}`, id, pr.Match, pr.Next, pr.State.String())
	}
	fmt.Fprintf(&b, `},"leadtransferee":"%x"}`, st.LeadTransferee)
	return []byte(b.String()), nil
}

package server

import (
	"context"

	"github.com/cairn-db/cairn/internal/membership"
)

// Status is what Maintenance.Status reports.
type Status struct {
	DBSize       int64
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
	st := Status{
		DBSize:       s.applier.DBSize(),
		QuotaBytes:   s.cfg.QuotaBackendBytes,
		Leader:       s.rn.Lead(),
		CommitIndex:  s.rn.CommitIndex(),
		AppliedIndex: s.AppliedIndex(),
		Term:         s.rn.Term(),
	}
	for _, m := range s.applier.Members() {
		if m.ID == s.st.MemberID {
			st.IsLearner = m.IsLearner
		}
	}
	if st.DBSize > st.QuotaBytes {
		st.Errors = append(st.Errors, "memberID:"+membership.IDString(s.st.MemberID)+" alarm:NOSPACE ")
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

package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// Alarm applies an alarm request through raft (a GET too, as etcd: the
// answer is the alarms as of a point in the log) and returns the
// applier's answer (see apply's applyAlarm).
func (s *Server) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	r, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: req})
	if err != nil {
		return nil, err
	}
	return response[*pb.AlarmResponse](r)
}

// activateAlarm raises alarm t for member memberID through raft and
// waits until it is applied here: from then on every member refuses what
// the alarm forbids once it applies the entry.
func (s *Server) activateAlarm(ctx context.Context, memberID uint64, t pb.AlarmType) error {
	_, err := s.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: memberID, Alarm: t})
	return err
}

// Alarms are the cluster's active alarms, as this member applied them, by
// type then member.
func (s *Server) Alarms() []*pb.AlarmMember { return s.applier.Alarms(pb.AlarmType_NONE) }

// checkQuota lets req through if what it may add (apply.Cost) fits under
// the quota with the backend's size now, as etcd's quota does; otherwise
// it raises this member's NOSPACE alarm through raft and refuses req. A
// request that cannot grow the store (cost 0) always passes, and a
// negative quota disables the check.
func (s *Server) checkQuota(ctx context.Context, req any) error {
	cost := apply.Cost(req)
	if cost == 0 || s.cfg.QuotaBackendBytes < 0 || s.applier.SizesEstimate().Total+int64(cost) < s.cfg.QuotaBackendBytes {
		return nil
	}
	if !s.hasAlarm(s.ID(), pb.AlarmType_NOSPACE) {
		s.logger.Warn("message exceeded backend quota; raising alarm",
			zap.Int64("quota-size-bytes", s.cfg.QuotaBackendBytes), zap.Int("cost-bytes", cost))
		if err := s.activateAlarm(ctx, s.ID(), pb.AlarmType_NOSPACE); err != nil {
			s.logger.Warn("raising the NOSPACE alarm", zap.Error(err))
		}
	}
	return ErrNoSpace
}

// hasAlarm reports whether alarm t of member memberID is active here.
func (s *Server) hasAlarm(memberID uint64, t pb.AlarmType) bool {
	for _, a := range s.applier.Alarms(t) {
		if a.MemberID == memberID {
			return true
		}
	}
	return false
}

// checkAppliedQuota is etcd's quota check at apply time, on every member:
// a write that grows the store (apply.Cost > 0), applied while this
// member's backend is at or over its own quota, raises this member's
// NOSPACE alarm, so that a member over its quota stops the cluster's
// writes even if no client writes through it. Unlike etcd, the write's
// proposer is answered that it succeeded, as it did. Called from the
// apply loop: the alarm is proposed from a goroutine.
func (s *Server) checkAppliedQuota(e raftpb.Entry, res apply.Result) {
	if res.Err != nil || s.cfg.QuotaBackendBytes < 0 || res.Op != "Put" && res.Op != "Txn" && res.Op != "LeaseGrant" ||
		s.applier.SizesEstimate().Total < s.cfg.QuotaBackendBytes || s.hasAlarm(s.ID(), pb.AlarmType_NOSPACE) {
		return
	}
	if res.Op == "Txn" {
		// Only now, over the quota, is the entry decoded again.
		var r pb.InternalRaftRequest
		if err := proto.Unmarshal(e.Data, &r); err != nil || apply.Cost(r.Txn) == 0 {
			return
		}
	}
	if !s.raisingNoSpace.CompareAndSwap(false, true) {
		return
	}
	s.logger.Warn("message exceeded backend quota; raising alarm", zap.Int64("quota-size-bytes", s.cfg.QuotaBackendBytes))
	s.goAttached(func() {
		defer s.raisingNoSpace.Store(false)
		// The proposal ends by itself: applied, timed out, or the
		// member stopping.
		if err := s.activateAlarm(context.Background(), s.ID(), pb.AlarmType_NOSPACE); err != nil {
			s.logger.Warn("raising the NOSPACE alarm", zap.Error(err))
		}
	})
}

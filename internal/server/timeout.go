package server

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/membership"
)

// Why a request timed out. etcd answers "request timed out" and logs
// nothing; an operator then cannot tell a slow disk from a slow apply or
// from more load than the member takes. A proposal that times out logs
// one warning with where things stood: the entries committed and applied
// (a wide gap: the apply loop is behind; none: the entry had not
// committed, so replication or the disk was slow, or the leader changed),
// and the proposals this member had in flight, in number and bytes, and
// waiting to be admitted (admission.go). At
// most one line a second, saying how many timed out since the last.

// inflight counts the proposals this member waits on.
type inflight struct {
	n, bytes atomic.Int64
}

func (f *inflight) add(size int) {
	f.n.Add(1)
	f.bytes.Add(int64(size))
}

func (f *inflight) done(size int) {
	f.n.Add(-1)
	f.bytes.Add(-int64(size))
}

// Where a proposal that timed out was (warnTimeout's stage).
const (
	// The client's deadline passed while it waited to be proposed
	// behind earlier proposals (admission.go).
	stageNotAdmitted = "waiting to be proposed: earlier proposals fill the bytes in flight"
	// raft dropped it: no leader to forward to, or a leadership
	// transfer under way.
	stageDropped = "dropped by raft"
	// The raft loop did not take it in time: busy, or stalled on a write.
	stageNotProposed = "not taken by raft in time"
	// Taken, but not committed and applied in time.
	stageProposed = "proposed, not applied in time"
)

// warnTimeout logs a proposal of the given type and size that timed out
// after waited, at stage.
func (s *Server) warnTimeout(typ string, size int, waited time.Duration, stage string) {
	n, ok := s.timeouts.Take(time.Now())
	if !ok {
		return
	}
	committed, applied := s.rn.CommitIndex(), s.AppliedIndex()
	s.logger.Warn("request timed out",
		zap.String("request-type", typ),
		zap.Int("request-bytes", size),
		zap.Duration("waited", waited),
		zap.String("stage", stage),
		zap.Uint64("committed-index", committed),
		zap.Uint64("applied-index", applied),
		zap.Uint64("apply-backlog", committed-min(committed, applied)),
		zap.String("leader", membership.IDString(s.rn.Lead())),
		zap.Int64("proposals-in-flight", s.inflight.n.Load()),
		zap.Int64("proposal-bytes-in-flight", s.inflight.bytes.Load()),
		zap.Int("proposals-waiting-admission", s.admission.waiters()),
		zap.Int("timed-out-since-last-warning", n))
}

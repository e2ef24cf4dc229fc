package server

import (
	"fmt"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// Warnings for requests slower than --warning-apply-duration, in etcd's
// words, so that log alerts written for etcd match: an applied entry
// (prefix ""), a read-only range ("read-only range ") and a read-only txn
// ("read-only txn "), each timed from when the member started on it. Values
// are not logged (etcd's loggable requests redact them).

// warnSlowApply is told of an entry that took took to apply.
func (s *Server) warnSlowApply(e raftpb.Entry, res apply.Result, took time.Duration) {
	if took <= s.cfg.WarningApplyDuration || e.Type != raftpb.EntryNormal || len(e.Data) == 0 {
		return
	}
	r := &pb.InternalRaftRequest{}
	if err := proto.Unmarshal(e.Data, r); err != nil {
		return // the applier already failed on it
	}
	var resp string
	if m, ok := res.Resp.(proto.Message); ok && m != nil {
		resp = fmt.Sprintf("size:%d", proto.Size(m))
	}
	s.warnSlow(took, "", (&pb.InternalRaftStringer{Request: r}).String(), resp, res.Err)
}

// warnSlowRange is told of a read-only range that began at start.
func (s *Server) warnSlowRange(start time.Time, req *pb.RangeRequest, resp *pb.RangeResponse, err error) {
	took := time.Since(start)
	if took <= s.cfg.WarningApplyDuration {
		return
	}
	var out string
	if resp != nil {
		out = fmt.Sprintf("range_response_count:%d size:%d", len(resp.Kvs), proto.Size(resp))
	}
	s.warnSlow(took, "read-only range ", req.String(), out, err)
}

// warnSlowReadTxn is told of a read-only txn that began at start.
func (s *Server) warnSlowReadTxn(start time.Time, req *pb.TxnRequest, resp *pb.TxnResponse, err error) {
	took := time.Since(start)
	if took <= s.cfg.WarningApplyDuration {
		return
	}
	var out string
	if resp != nil {
		var parts []string
		for _, r := range resp.Responses {
			if rr, ok := r.Response.(*pb.ResponseOp_ResponseRange); ok {
				if rr.ResponseRange != nil {
					parts = append(parts, fmt.Sprintf("range_response_count:%d", len(rr.ResponseRange.Kvs)))
				} else {
					parts = append(parts, "range_response:nil")
				}
			}
		}
		out = fmt.Sprintf("responses:<%s> size:%d", strings.Join(parts, " "), proto.Size(resp))
	}
	s.warnSlow(took, "read-only txn ", pb.NewLoggableTxnRequest(req).String(), out, err)
}

// warnSlow logs a slow request and counts it (etcd_server_slow_apply_total),
// as etcd does for both applies and reads.
func (s *Server) warnSlow(took time.Duration, prefix, req, resp string, err error) {
	s.metrics.slowApplies.Inc()
	s.logger.Warn("apply request took too long",
		zap.Duration("took", took),
		zap.Duration("expected-duration", s.cfg.WarningApplyDuration),
		zap.String("prefix", prefix),
		zap.String("request", req),
		zap.String("response", resp),
		zap.Error(err))
}

package v3rpc

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// requestStats logs a unary request that took longer than warn (etcd's
// --warning-unary-request-duration) at warn level, and every unary request
// at debug level when that is enabled, as etcd's "request stats" lines,
// field for field. Values are redacted from puts and txns.
type requestStats struct {
	lg   *zap.Logger
	warn time.Duration
}

// observe is told of a request that began at start.
func (r requestStats) observe(ctx context.Context, start time.Time, method string, req, resp any) {
	took := time.Since(start)
	if took <= r.warn && !r.lg.Core().Enabled(zap.DebugLevel) {
		return
	}
	logRequestStats(ctx, r.lg, r.lg.Core().Enabled(zap.DebugLevel), start, took, method, req, resp)
}

func logRequestStats(ctx context.Context, lg *zap.Logger, debug bool, start time.Time, took time.Duration,
	method string, req, resp any) {
	remote := "No remote client info."
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	var reqCount, respCount int64
	var reqSize, respSize int
	var content string
	switch resp := resp.(type) {
	case *pb.RangeResponse:
		if req, ok := req.(*pb.RangeRequest); ok {
			reqSize, content = proto.Size(req), req.String()
		}
		if resp != nil {
			respCount, respSize = resp.Count, proto.Size(resp)
		}
	case *pb.PutResponse:
		if req, ok := req.(*pb.PutRequest); ok {
			reqCount, reqSize, content = 1, proto.Size(req), pb.NewLoggablePutRequest(req).String()
		}
		if resp != nil {
			respSize = proto.Size(resp)
		}
	case *pb.DeleteRangeResponse:
		if req, ok := req.(*pb.DeleteRangeRequest); ok {
			reqSize, content = proto.Size(req), req.String()
		}
		if resp != nil {
			respCount, respSize = resp.Deleted, proto.Size(resp)
		}
	case *pb.TxnResponse:
		if req, ok := req.(*pb.TxnRequest); ok && resp != nil {
			// The branch that ran is the request's size.
			ops := req.Failure
			if resp.Succeeded {
				ops = req.Success
			}
			reqCount = int64(len(ops))
			for _, op := range ops {
				reqSize += proto.Size(op)
			}
			content = pb.NewLoggableTxnRequest(req).String()
		}
		if resp != nil {
			respSize = proto.Size(resp)
		}
	default:
		reqCount, reqSize, respCount, respSize = -1, -1, -1, -1
	}
	log := lg.Warn
	if debug {
		log = lg.Debug
	}
	log("request stats",
		zap.Time("start time", start),
		zap.Duration("time spent", took),
		zap.String("remote", remote),
		zap.String("response type", method),
		zap.Int64("request count", reqCount),
		zap.Int("request size", reqSize),
		zap.Int64("response count", respCount),
		zap.Int("response size", respSize),
		zap.String("request content", content))
}

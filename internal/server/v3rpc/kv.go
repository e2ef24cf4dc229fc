package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/server"
)

type kvServer struct {
	pb.UnimplementedKVServer
	s *server.Server
}

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	resp, err := k.s.Range(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(k.s, resp.Header)
	return resp, nil
}

// RangeStream is etcd 3.7's streamed Range (server.RangeStream).
func (k *kvServer) RangeStream(r *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	if err := checkRange(r); err != nil {
		return err
	}
	err := k.s.RangeStream(stream.Context(), r, func(resp *pb.RangeResponse) error {
		if resp.Header != nil {
			resp.Header = header(k.s, resp.Header)
		}
		return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
	})
	return toGRPCError(err)
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := k.s.Put(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(k.s, resp.Header)
	return resp, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDelete(r); err != nil {
		return nil, err
	}
	resp, err := k.s.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(k.s, resp.Header)
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, k.s.Config().MaxTxnOps); err != nil {
		return nil, err
	}
	if err := mvcc.CheckTxn(r); err != nil {
		return nil, toGRPCError(err)
	}
	resp, err := k.s.Txn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(k.s, resp.Header)
	return resp, nil
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	// etcd's: compaction is root's.
	if err := k.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	resp, err := k.s.Compact(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(k.s, resp.Header)
	return resp, nil
}

// The checks below are etcd's (v3rpc/key.go), in its order.

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDelete(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

func checkTxn(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	// As etcd: a nested txn gets what its parent left of the limit.
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkOp(op *pb.RequestOp, maxTxnOps int) error {
	switch v := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		return checkRange(v.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPut(v.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDelete(v.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxn(v.RequestTxn, maxTxnOps)
	}
	// An empty op: etcd answers "key not found".
	return rpctypes.ErrGRPCKeyNotFound
}

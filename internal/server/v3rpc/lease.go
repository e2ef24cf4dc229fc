package v3rpc

import (
	"errors"
	"io"

	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/server"
)

type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *server.Server
}

func (ls *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := ls.s.LeaseGrant(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(ls.s, resp.Header)
	return resp, nil
}

func (ls *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := ls.s.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(ls.s, resp.Header)
	return resp, nil
}

func (ls *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := ls.s.LeaseTimeToLive(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(ls.s, resp.Header)
	return resp, nil
}

func (ls *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := ls.s.LeaseLeases(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(ls.s, resp.Header)
	return resp, nil
}

// LeaseKeepAlive renews each lease a request names and answers with its
// TTL, 0 if the lease is gone (etcd's answer, which clients take as
// expired), one response per request, in order.
func (ls *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(context.Cause(stream.Context()), errNoLeader) {
				return rpctypes.ErrGRPCNoLeader // the require-leader guard ended it
			}
			return err
		}
		ttl, err := ls.s.LeaseRenew(stream.Context(), req.ID)
		if errors.Is(err, lease.ErrNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return toGRPCError(err)
		}
		resp := &pb.LeaseKeepAliveResponse{Header: header(ls.s, nil), ID: req.ID, TTL: ttl}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

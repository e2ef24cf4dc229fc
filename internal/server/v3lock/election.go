package v3lock

import (
	"context"
	"errors"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cairn-db/cairn/api/v3electionpb"
)

// errMissingLeaderKey is etcd's answer to a Proclaim or Resign without a
// leader.
var errMissingLeaderKey = errors.New(`"leader" field must be provided`)

// electionServer is etcd's Election service: a concurrency.Election with
// the caller's lease. Errors, as etcd's, are the inner client's and
// concurrency's (concurrency.ErrElectionNotLeader, ErrElectionNoLeader).
type electionServer struct {
	v3electionpb.UnsafeElectionServer
	s *Server
}

// Campaign waits until the caller leads the election, with value as the
// leader's value.
func (e *electionServer) Campaign(ctx context.Context, r *v3electionpb.CampaignRequest) (*v3electionpb.CampaignResponse, error) {
	ctx = e.s.call(ctx)
	sess, err := e.s.session(ctx, r.Lease)
	if err != nil {
		return nil, err
	}
	el := concurrency.NewElection(sess, string(r.Name))
	if err := el.Campaign(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &v3electionpb.CampaignResponse{
		Header: el.Header(),
		Leader: &v3electionpb.LeaderKey{Name: r.Name, Key: []byte(el.Key()), Rev: el.Rev(), Lease: int64(sess.Lease())},
	}, nil
}

// Proclaim sets the leader's value, if leader still leads.
func (e *electionServer) Proclaim(ctx context.Context, r *v3electionpb.ProclaimRequest) (*v3electionpb.ProclaimResponse, error) {
	el, err := e.resume(ctx, r.Leader)
	if err != nil {
		return nil, err
	}
	if err := el.Proclaim(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &v3electionpb.ProclaimResponse{Header: el.Header()}, nil
}

// Resign deletes the leader's key, if leader still leads.
func (e *electionServer) Resign(ctx context.Context, r *v3electionpb.ResignRequest) (*v3electionpb.ResignResponse, error) {
	el, err := e.resume(ctx, r.Leader)
	if err != nil {
		return nil, err
	}
	if err := el.Resign(ctx); err != nil {
		return nil, err
	}
	return &v3electionpb.ResignResponse{Header: el.Header()}, nil
}

// resume is the election as the leadership lk holds it.
func (e *electionServer) resume(ctx context.Context, lk *v3electionpb.LeaderKey) (*concurrency.Election, error) {
	if lk == nil {
		return nil, errMissingLeaderKey
	}
	sess, err := e.s.session(ctx, lk.Lease)
	if err != nil {
		return nil, err
	}
	return concurrency.ResumeElection(sess, string(lk.Name), string(lk.Key), lk.Rev), nil
}

// Leader returns the leader's key and value.
func (e *electionServer) Leader(ctx context.Context, r *v3electionpb.LeaderRequest) (*v3electionpb.LeaderResponse, error) {
	// Lease -1: a session is needed for an Election but no lease is used.
	sess, err := e.s.session(ctx, -1)
	if err != nil {
		return nil, err
	}
	resp, err := concurrency.NewElection(sess, string(r.Name)).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &v3electionpb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}, nil
}

// Observe sends the leader's key and value, then each new leader's and
// value, until the client goes. As etcd's, it ends with the stream's
// context error, or with no error when concurrency's observer gives up
// (its watch failed: compaction, permission).
func (e *electionServer) Observe(r *v3electionpb.LeaderRequest, stream v3electionpb.Election_ObserveServer) error {
	ctx := e.s.call(stream.Context())
	sess, err := e.s.session(ctx, -1)
	if err != nil {
		return err
	}
	// concurrency's observer goroutine ends when ctx is done: gRPC cancels
	// it when Observe returns.
	ch := concurrency.NewElection(sess, string(r.Name)).Observe(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&v3electionpb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
}

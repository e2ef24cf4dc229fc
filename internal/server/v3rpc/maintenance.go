package v3rpc

import (
	"context"
	"crypto/sha256"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/version"
)

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *server.Server
}

func (m *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	// etcd's: any signed-in user.
	if _, err := m.s.RequireAuthInfo(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	st := m.s.Status()
	// The versions are etcd's (package version), so that clients'
	// version-gated features (Kubernetes' watch progress requests) work.
	return &pb.StatusResponse{
		Header:           header(m.s, nil),
		Version:          version.Etcd,
		DbSize:           st.DBSize,
		DbSizeInUse:      st.DBSizeInUse,
		DbSizeQuota:      st.QuotaBytes,
		Leader:           st.Leader,
		RaftIndex:        st.CommitIndex,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.AppliedIndex,
		IsLearner:        st.IsLearner,
		Errors:           st.Errors,
		StorageVersion:   version.Storage,
		// No downgrade is ever in progress; etcd sends the empty
		// record rather than none (JSON clients see "downgradeInfo":{}).
		DowngradeInfo: &pb.DowngradeInfo{},
	}, nil
}

// Alarm gets, raises or clears alarms through raft, with etcd's answers:
// GET filters by type only (every member's alarms), ACTIVATE answers the
// alarm, DEACTIVATE the alarm cleared (none if it was not raised).
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	// etcd's: anyone signed in may list alarms; raising or clearing one
	// is root's.
	var err error
	if r.Action == pb.AlarmRequest_GET {
		_, err = m.s.RequireAuthInfo(ctx)
	} else {
		err = m.s.CheckAdmin(ctx)
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp, err := m.s.Alarm(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(m.s, nil)
	return resp, nil
}

// Defragment compacts this member's backend (server.Defragment) and, as
// etcd's, answers an empty response, without a header.
func (m *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := m.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	if err := m.s.Defragment(); err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.DefragmentResponse{}, nil
}

// Hash hashes everything this member's store keeps. Members that applied
// the same log agree, once their compactions' removals are done; the
// value is Cairn's own (etcd's hashes its bbolt file).
func (m *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	if err := m.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	hash, rev, err := m.s.Hash()
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashResponse{Header: header(m.s, &pb.ResponseHeader{Revision: rev}), Hash: hash}, nil
}

// HashKV hashes this member's history up to a revision: members that
// applied the same log answer the same hash (etcdctl endpoint hashkv
// --cluster compares them), etcd's for the same history.
func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	if err := m.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	h, current, err := m.s.HashKV(r.Revision)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashKVResponse{Header: header(m.s, &pb.ResponseHeader{Revision: current}), Hash: h.Hash,
		CompactRevision: h.CompactRevision, HashRevision: h.Revision}, nil
}

// snapshotChunkBytes is the blob size of each Snapshot response (etcd's).
const snapshotChunkBytes = 32 * 1024

// Snapshot streams a backup in etcd's snapshot file format (see
// server.Backup) as etcd does: chunks with the bytes still to come, then
// one more response whose blob is the SHA-256 of all the bytes before it,
// which etcdctl appends to the file and etcdutl checks on restore.
func (m *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	if err := m.s.CheckAdmin(srv.Context()); err != nil {
		return toGRPCError(err)
	}
	err := m.s.Backup(srv.Context(), func(f *server.BackupFile) error {
		h := sha256.New()
		var sent int64
		for sent < f.Size {
			// A new buffer each time: Send may still hold the last one.
			buf := make([]byte, min(snapshotChunkBytes, f.Size-sent))
			if _, err := io.ReadFull(f, buf); err != nil {
				return err
			}
			sent += int64(len(buf))
			h.Write(buf)
			if err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(f.Size - sent), Blob: buf, Version: f.StorageVersion}); err != nil {
				return err
			}
		}
		return srv.Send(&pb.SnapshotResponse{Blob: h.Sum(nil), Version: f.StorageVersion})
	})
	return toGRPCError(err)
}

// MoveLeader hands leadership to the target; only the leader may (etcd
// answers other members "not leader", and so does its client's caller).
func (m *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := m.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	if err := m.s.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MoveLeaderResponse{}, nil
}

// Downgrade checks the target as etcd does, then refuses a downgrade
// Cairn cannot honour (server.Downgrade says why).
func (m *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	if err := m.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	v, err := m.s.Downgrade(ctx, r.Action, r.Version)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.DowngradeResponse{Header: header(m.s, nil), Version: v}, nil
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	s *server.Server
}

func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	members, err := c.s.MemberList(ctx, r.Linearizable)
	if err == nil {
		_, err = c.s.RequireAuthInfo(ctx)
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	// As etcd's Cluster service, a header without a revision: membership
	// is not part of the key-value store.
	return &pb.MemberListResponse{Header: clusterHeader(c.s), Members: membersToProto(members)}, nil
}

func membersToProto(members []membership.Member) []*pb.Member {
	out := make([]*pb.Member, len(members))
	for i, m := range members {
		out[i] = &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
	}
	return out
}

// clusterHeader is the Cluster service's header: no revision, as etcd's.
func clusterHeader(s *server.Server) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.ClusterID(), MemberId: s.ID(), RaftTerm: s.Term()}
}

// checkPeerURLs refuses what etcd's types.NewURLs refuses, with etcd's
// error.
func checkPeerURLs(urls []string) error {
	if len(urls) == 0 {
		return rpctypes.ErrGRPCMemberBadURLs
	}
	for _, u := range urls {
		if membership.CheckURL(u) != nil {
			return rpctypes.ErrGRPCMemberBadURLs
		}
	}
	return nil
}

func (c *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if err := c.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	if err := checkPeerURLs(r.PeerURLs); err != nil {
		return nil, err
	}
	m, members, err := c.s.AddMember(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberAddResponse{
		Header:  clusterHeader(c.s),
		Member:  &pb.Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner},
		Members: membersToProto(members),
	}, nil
}

func (c *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := c.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	members, err := c.s.RemoveMember(ctx, r.ID)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberRemoveResponse{Header: clusterHeader(c.s), Members: membersToProto(members)}, nil
}

func (c *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := c.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	if err := checkPeerURLs(r.PeerURLs); err != nil {
		return nil, err
	}
	members, err := c.s.UpdateMember(ctx, r.ID, r.PeerURLs)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberUpdateResponse{Header: clusterHeader(c.s), Members: membersToProto(members)}, nil
}

func (c *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := c.s.CheckAdmin(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	members, err := c.s.PromoteMember(ctx, r.ID)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberPromoteResponse{Header: clusterHeader(c.s), Members: membersToProto(members)}, nil
}

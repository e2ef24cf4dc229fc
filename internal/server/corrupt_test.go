package server

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/mvcc"
)

// The compaction hash check's verdicts, as etcd's checkPeerHashes decides
// them: the leader is member 1, at compaction revision 5 with hash 100.
func TestCompareCompactionHashes(t *testing.T) {
	leader := mvcc.KeyValueHash{Hash: 100, CompactRevision: 5, Revision: 9}
	answer := func(id uint64, hash uint32, compactRev int64) peerHash {
		return peerHash{id: id, resp: &pb.HashKVResponse{Hash: hash, CompactRevision: compactRev}}
	}
	silent := func(id uint64) peerHash { return peerHash{id: id, err: errors.New("no answer")} }
	for _, tc := range []struct {
		name   string
		peers  []peerHash
		want   compactionVerdict
		alarms []uint64
	}{
		{"all agree", []peerHash{answer(2, 100, 5), answer(3, 100, 5)},
			compactionVerdict{agreed: true, over: true}, nil},
		{"one silent: try an older hash", []peerHash{answer(2, 100, 5), silent(3)},
			compactionVerdict{}, nil},
		{"one at another compaction: try an older hash", []peerHash{answer(2, 100, 5), answer(3, 7, 4)},
			compactionVerdict{}, nil},
		{"a follower outside the majority", []peerHash{answer(2, 100, 5), answer(3, 7, 5)},
			compactionVerdict{over: true}, []uint64{3}},
		{"the leader outside the majority", []peerHash{answer(2, 7, 5), answer(3, 7, 5)},
			compactionVerdict{over: true}, []uint64{1}},
		{"no majority: the whole cluster", []peerHash{answer(2, 7, 5), answer(3, 8, 5)},
			compactionVerdict{over: true}, []uint64{0}},
		{"a silent peer counts in the quorum", []peerHash{answer(2, 7, 5), silent(3)},
			compactionVerdict{over: true}, []uint64{0}},
		{"five members, two minorities", []peerHash{answer(2, 100, 5), answer(3, 100, 5), answer(4, 7, 5), answer(5, 8, 5)},
			compactionVerdict{over: true}, []uint64{4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := compareCompactionHashes(zap.NewNop(), 1, leader, tc.peers)
			slices.Sort(got.alarms)
			if got.agreed != tc.want.agreed || got.over != tc.want.over || !slices.Equal(got.alarms, tc.alarms) {
				t.Fatalf("verdict %+v, want %+v with alarms %v", got, tc.want, tc.alarms)
			}
		})
	}
}

// A peer's refusal crosses the transport as a gRPC status carrying the
// handler's error text; the checks read etcd's errors back from it.
func TestPeerHashError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{mvcc.ErrCompacted, rpctypes.ErrCompacted},
		{mvcc.ErrFutureRev, rpctypes.ErrFutureRev},
	} {
		crossed := status.Error(codes.Unknown, fmt.Sprintf("%v", tc.err))
		if got := peerHashError(crossed); !errors.Is(got, tc.want) {
			t.Errorf("%v crossed as %v, read back as %v, want %v", tc.err, crossed, got, tc.want)
		}
	}
	other := status.Error(codes.Unavailable, "connection refused")
	if got := peerHashError(other); got != other {
		t.Errorf("an unrelated error read back as %v", got)
	}
}

package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/version"
)

// Downgrade answers etcd's Downgrade API. etcd lowers the cluster version
// so that its members can be replaced, one at a time, by the previous
// minor release's binaries on their own data directories. A Cairn
// member's data directory is not etcd's, so no etcd binary can take it
// over: a target etcd would accept (3.6 for 3.7) is refused with a clear
// error, after etcd's own checks; no downgrade is ever in progress, so
// a cancel answers as etcd's does when there is none (the cluster
// version, no error). See the README, "Leaving Cairn".
func (s *Server) Downgrade(ctx context.Context, action pb.DowngradeRequest_DowngradeAction, target string) (string, error) {
	cluster := majorMinor(version.Cluster)
	switch action {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
	case pb.DowngradeRequest_CANCEL:
		return cluster, nil
	default:
		return "", status.Error(codes.Unknown, "etcdserver: unknown method")
	}
	major, minor, ok := parseVersion(target)
	if !ok {
		return "", rpctypes.ErrGRPCWrongDowngradeVersionFormat
	}
	// etcd reads the cluster version after a linearizable barrier.
	if err := s.linearizableReadWait(ctx); err != nil {
		return "", err
	}
	cmajor, cminor, _ := parseVersion(cluster)
	if major != cmajor || minor != cminor-1 {
		return "", rpctypes.ErrGRPCInvalidDowngradeTargetVersion
	}
	return "", status.Error(codes.FailedPrecondition, fmt.Sprintf("cairn: cannot downgrade the cluster to %d.%d: "+
		"etcd %d.%d cannot run on a Cairn member's data directory; to move the data to etcd, "+
		"save a snapshot (etcdctl snapshot save) and restore it with etcdutl snapshot restore", major, minor, major, minor))
}

// parseVersion reads "X.Y" or "X.Y.Z" (etcd's convertToClusterVersion).
func parseVersion(v string) (major, minor int, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 2 && len(parts) != 3 {
		return 0, 0, false
	}
	n := make([]int, len(parts))
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 || p != strconv.Itoa(x) {
			return 0, 0, false
		}
		n[i] = x
	}
	return n[0], n[1], true
}

// majorMinor is "3.7" of "3.7.0" (etcd's version.Cluster).
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	return parts[0] + "." + parts[1]
}

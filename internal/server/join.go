package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/transport"
)

// clusterDescription is what a member tells one joining the cluster
// (transport.FetchCluster): the cluster's ID, its members and the IDs
// removed from it, as of its last applied entry, and that entry's index
// (taken first: the members are at least that new). A member still
// catching up, replaying the log, describes the cluster as it was at the
// entry it has reached.
type clusterDescription struct {
	ClusterID uint64              `json:"clusterID"`
	Index     uint64              `json:"index,omitempty"`
	Members   []membership.Member `json:"members"`
	Removed   []uint64            `json:"removed,omitempty"`
}

// describeCluster answers a joining member (the transport's Cluster).
func (s *Server) describeCluster() ([]byte, error) {
	index := s.AppliedIndex()
	return json.Marshal(clusterDescription{ClusterID: s.ClusterID(), Index: index, Members: s.applier.Members(), Removed: s.applier.Removed()})
}

// joinTimeout bounds how long a joining member asks the cluster's members
// who it is; fetchTimeout, each call.
const (
	joinTimeout  = 30 * time.Second
	fetchTimeout = 2 * time.Second
)

// joinInfo is how a member started with --initial-cluster-state=existing
// learns its cluster: it asks the other members in --initial-cluster (at
// their peer URLs) and checks, as etcd does, that --initial-cluster lists
// exactly the cluster's members; its own ID is the one the cluster gave
// the member with its --initial-advertise-peer-urls (`member add`).
//
// It asks them all and believes the one that has applied the most. etcd
// believes the first to answer, which is wrong when that one is a member
// added shortly before and still replaying the log: its members are those
// of the entry it has reached, without the latest `member add`s, and the
// start fails ("member count is unequal"). When the freshest answer does
// not fit and some member did not answer, it asks again (until
// joinTimeout): those that did may all be behind. When every member
// answered, the freshest answer is at least as new as the `member add`
// (the member that made it applied it), and its verdict is final.
func joinInfo(cfg Config) (member.JoinInfo, error) {
	local, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return member.JoinInfo{}, err
	}
	own := sorted(cfg.AdvertisePeerURLs)
	var urls []string
	for _, m := range local {
		if !slices.Equal(m.PeerURLs, own) {
			urls = append(urls, m.PeerURLs...)
		}
	}
	if len(urls) == 0 {
		return member.JoinInfo{}, errors.New("--initial-cluster-state=existing: --initial-cluster names no other member to join")
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	for {
		descs, errs := fetchClusters(ctx, urls, cfg.PeerTLS, cfg.PeerLocalAddr)
		var checkErr error
		if len(descs) > 0 {
			freshest := slices.MaxFunc(descs, func(a, b clusterDescription) int { return cmp.Compare(a.Index, b.Index) })
			info, err := checkJoin(local, own, freshest)
			if err == nil || len(errs) == 0 {
				return info, err
			}
			checkErr = err
		}
		select {
		case <-ctx.Done():
			if checkErr != nil {
				return member.JoinInfo{}, checkErr
			}
			return member.JoinInfo{}, fmt.Errorf("cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs: %w",
				errors.Join(errs...))
		case <-time.After(time.Second):
		}
	}
}

// fetchClusters asks each of urls at once for its description of the
// cluster and returns the answers, and the errors of those that gave
// none. It returns when every call has ended.
func fetchClusters(ctx context.Context, urls []string, tlsConfig *tls.Config, local net.IP) ([]clusterDescription, []error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards descs and errs
		descs []clusterDescription
		errs  []error
	)
	for _, u := range urls {
		wg.Go(func() {
			callCtx, cancel := context.WithTimeout(ctx, fetchTimeout)
			defer cancel()
			data, err := transport.FetchCluster(callCtx, u, tlsConfig, local)
			var desc clusterDescription
			if err == nil {
				err = json.Unmarshal(data, &desc)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u, err))
				return
			}
			descs = append(descs, desc)
		})
	}
	wg.Wait()
	return descs, errs
}

// checkJoin matches --initial-cluster against the cluster's members by
// peer URLs (etcd's ValidateClusterAndAssignIDs) and finds this member.
func checkJoin(local []membership.Member, own []string, desc clusterDescription) (member.JoinInfo, error) {
	if len(local) != len(desc.Members) {
		return member.JoinInfo{}, fmt.Errorf("error validating peerURLs %s: member count is unequal", describeMembers(desc.Members))
	}
	for _, l := range local {
		if !slices.ContainsFunc(desc.Members, func(m membership.Member) bool { return slices.Equal(sorted(m.PeerURLs), l.PeerURLs) }) {
			return member.JoinInfo{}, fmt.Errorf("error validating peerURLs %s: PeerURLs: no match found for existing member (%s=%s)",
				describeMembers(desc.Members), l.Name, strings.Join(l.PeerURLs, ","))
		}
	}
	i := slices.IndexFunc(desc.Members, func(m membership.Member) bool { return slices.Equal(sorted(m.PeerURLs), own) })
	if i < 0 {
		return member.JoinInfo{}, fmt.Errorf("the cluster has no member with peer URLs %s: add it first (`member add`)", strings.Join(own, ","))
	}
	self := desc.Members[i]
	if slices.Contains(desc.Removed, self.ID) {
		return member.JoinInfo{}, fmt.Errorf("%w: member %s", ErrMemberRemoved, membership.IDString(self.ID))
	}
	if self.IsStarted() {
		// Its data is gone (no WAL here), but it may have voted and
		// acknowledged entries: joining again under the same ID could
		// lose them. etcd lets it; Cairn refuses.
		return member.JoinInfo{}, fmt.Errorf("member %s (%s) has already started in cluster %s and this data directory holds "+
			"no WAL: a member whose data is lost must be removed (`member remove %s`) and added again (`member add`)",
			membership.IDString(self.ID), self.Name, membership.IDString(desc.ClusterID), membership.IDString(self.ID))
	}
	return member.JoinInfo{ClusterID: desc.ClusterID, MemberID: self.ID, Members: desc.Members}, nil
}

// sorted returns a sorted copy of s (peer URLs are compared sorted).
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func describeMembers(ms []membership.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s=%s", m.Name, strings.Join(m.PeerURLs, ","))
	}
	return strings.Join(parts, ",")
}

// removedByPeer is told by the transport that a peer refused this member
// as removed: it stops, as when it applies its own removal.
func (s *Server) removedByPeer() {
	if s.removedOnce.CompareAndSwap(false, true) {
		s.removedStop()
	}
}

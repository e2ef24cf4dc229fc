package server

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/transport"
)

// listen listens on a loopback port; peerURL is its URL.
func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func peerURL(lis net.Listener) string { return "http://" + lis.Addr().String() }

// servePeer serves the peer transport on lis, its Cluster answering
// describe()'s description.
func servePeer(t *testing.T, lis net.Listener, describe func() clusterDescription) {
	t.Helper()
	tr := transport.New(transport.Config{LocalID: 1, Cluster: func() ([]byte, error) { return json.Marshal(describe()) }})
	srv := grpc.NewServer(transport.ServerOptions()...)
	tr.Register(srv)
	served := make(chan struct{})
	go func() { // ends with srv.Stop, at the test's end
		defer close(served)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
}

// joinCluster is a cluster of a and b in which `member add` added c (the
// joining member): old is as a member sees it before it applied the add
// (as a member still replaying the log answers), fresh after.
type joinCluster struct {
	a, b, c    membership.Member
	old, fresh clusterDescription
}

func newJoinCluster(aURL, bURL string) joinCluster {
	jc := joinCluster{
		a: membership.Member{ID: 0xa, Name: "a", PeerURLs: []string{aURL}, ClientURLs: []string{"http://127.0.0.1:1"}},
		b: membership.Member{ID: 0xb, Name: "b", PeerURLs: []string{bURL}, ClientURLs: []string{"http://127.0.0.1:2"}},
		c: membership.Member{ID: 0xc, PeerURLs: []string{"http://127.0.0.1:3"}},
	}
	jc.old = clusterDescription{ClusterID: 0x77, Index: 10, Members: []membership.Member{jc.a, jc.b}}
	jc.fresh = clusterDescription{ClusterID: 0x77, Index: 20, Members: []membership.Member{jc.a, jc.b, jc.c}}
	return jc
}

func (jc joinCluster) config() Config {
	return Config{
		InitialCluster:      fmt.Sprintf("a=%s,b=%s,c=%s", jc.a.PeerURLs[0], jc.b.PeerURLs[0], jc.c.PeerURLs[0]),
		InitialClusterToken: "t",
		AdvertisePeerURLs:   jc.c.PeerURLs,
	}
}

// A member joining believes the member that has applied the most, not
// the first to answer: one still replaying the log does not know of the
// joining member yet (the e2e TestGrowShrinkUnderLoad's fifth member
// failed so, "member count is unequal", when it asked the fourth first).
func TestJoinBelievesTheFreshestMember(t *testing.T) {
	a, b := listen(t), listen(t)
	jc := newJoinCluster(peerURL(a), peerURL(b))
	servePeer(t, a, func() clusterDescription { return jc.old })   // still replaying
	servePeer(t, b, func() clusterDescription { return jc.fresh }) // applied the add
	info, err := joinInfo(jc.config())
	if err != nil {
		t.Fatal(err)
	}
	if info.MemberID != jc.c.ID || info.ClusterID != 0x77 || len(info.Members) != 3 {
		t.Fatalf("joined as %+v, want member c of the 3", info)
	}
}

// When a member does not answer and those that do have not applied the
// `member add` yet, the joining member asks again until one has.
func TestJoinWaitsForAMemberThatKnowsIt(t *testing.T) {
	a, b := listen(t), listen(t)
	b.Close() // b is down: connections to it are refused
	jc := newJoinCluster(peerURL(a), peerURL(b))
	var calls atomic.Int32
	servePeer(t, a, func() clusterDescription {
		if calls.Add(1) < 3 {
			return jc.old
		}
		return jc.fresh
	})
	info, err := joinInfo(jc.config())
	if err != nil {
		t.Fatal(err)
	}
	if info.MemberID != jc.c.ID || calls.Load() != 3 {
		t.Fatalf("joined as %+v after %d answers, want member c after 3", info, calls.Load())
	}
}

// When every member answers, the freshest answer is final: a member that
// nobody added fails at once, with etcd's error.
func TestJoinRefusedWhenAllAnswer(t *testing.T) {
	a, b := listen(t), listen(t)
	jc := newJoinCluster(peerURL(a), peerURL(b))
	servePeer(t, a, func() clusterDescription { return jc.old })
	servePeer(t, b, func() clusterDescription { return jc.old })
	_, err := joinInfo(jc.config())
	if err == nil || !strings.Contains(err.Error(), "member count is unequal") {
		t.Fatalf("joining a cluster that never added it: %v", err)
	}
}

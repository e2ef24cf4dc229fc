package server

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
)

// The applier gets a proposer's request once, only for the entry it was
// marshalled into, and only while the proposer waits.
func TestWaitRegistryClaim(t *testing.T) {
	entry := func(r *pb.InternalRaftRequest) raftpb.Entry {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return raftpb.Entry{Type: raftpb.EntryNormal, Index: 5, Data: b}
	}
	w := newWaitRegistry()
	req := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 7}, Put: &pb.PutRequest{Key: []byte("k")}}
	e := entry(req)
	ch := w.register(7, req, len(e.Data))

	// Another member's entry with the same ID and other bytes, an entry
	// with no ID, and an ID nobody here waits for: decoded, not claimed.
	if got := w.claim(entry(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 7}, Put: &pb.PutRequest{Key: []byte("other")}})); got != nil {
		t.Fatal("claimed for an entry of another size")
	}
	if got := w.claim(entry(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}})); got != nil {
		t.Fatal("claimed for an entry without an ID")
	}
	if got := w.claim(entry(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 8}})); got != nil {
		t.Fatal("claimed for an ID nobody waits for")
	}

	if got := w.claim(e); got != req {
		t.Fatalf("claim = %v, want the registered request", got)
	}
	if got := w.claim(e); got != nil {
		t.Fatal("claimed twice (an entry applied again would share it)")
	}
	w.trigger(7, apply.Result{ID: 7, Op: "Put"})
	if r := <-ch; r.Op != "Put" {
		t.Fatalf("result %+v", r)
	}
	w.release(ch)

	// Given up before the applier claimed it: the entry is decoded.
	req9 := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 9}, Put: &pb.PutRequest{Key: []byte("k")}}
	e9 := entry(req9)
	w.register(9, req9, len(e9.Data))
	w.cancel(9)
	if w.claim(e9) != nil {
		t.Fatal("claimed for a proposer that gave up")
	}
	// Given up after: the applier goes on with it; nothing is left here.
	req2 := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 10}, Put: &pb.PutRequest{Key: []byte("k")}}
	e2 := entry(req2)
	w.register(10, req2, len(e2.Data))
	if w.claim(e2) != req2 {
		t.Fatal("not claimed")
	}
	w.cancel(10)
	if n := w.len(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

// A proposal raft refuses comes back to its proposer as that refusal, at
// once, not as a timeout, and counts as a failed proposal: a lease
// revoke proposed as the leader of a term this member does not lead.
func TestRefusedProposal(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader(0)
	s := c.members[0].s
	failed := testutil.ToFloat64(s.metrics.proposalsFailed)
	req := &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}}
	start := time.Now()
	_, err := s.proposeAs(withRoot(ctxTimeout(t)), req, s.rn.Term()+1)
	if !errors.Is(err, raftnode.ErrNotLeader) {
		t.Fatalf("a proposal as the leader of the next term: %v, want %v", err, raftnode.ErrNotLeader)
	}
	if waited := time.Since(start); waited >= s.cfg.RequestTimeout {
		t.Fatalf("refused after %v, the request timeout (%v)", waited, s.cfg.RequestTimeout)
	}
	if got := testutil.ToFloat64(s.metrics.proposalsFailed); got != failed+1 {
		t.Fatalf("proposals failed %v, want %v", got, failed+1)
	}
	if n := s.wait.len(); n != 0 {
		t.Fatalf("%d waiters left behind", n)
	}
	mustPut(t, s, "after", "v") // the next proposal is applied as usual
}

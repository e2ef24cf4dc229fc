package v3rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/api/v3electionpb"
	"github.com/cairn-db/cairn/api/v3lockpb"
)

// TestLockElectionStop stops a member while its Lock and Election
// services are busy: a Lock waits for a held lock, an Observe streams,
// and the sessions have started the in-process client's keepalive loop.
// Service.Close must end the in-process client's streams and wait for
// their handlers (none runs once it returns), the waiting Lock must end
// with an error, and the package's TestMain checks that nothing else is
// left.
func TestLockElectionStop(t *testing.T) { eachServer(t, testLockElectionStop) }

func testLockElectionStop(t *testing.T, kind string) {
	m := startMemberOn(t, kind, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var leases []int64
	for range 2 {
		resp, err := pb.NewLeaseClient(m.conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, resp.ID)
	}
	lc := v3lockpb.NewLockClient(m.conn)
	if _, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: leases[0]}); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan error, 1)
	go func() {
		_, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: leases[1]})
		waiter <- err
	}()
	for {
		resp, err := pb.NewKVClient(m.conn).Range(ctx, &pb.RangeRequest{Key: []byte(fmt.Sprintf("l/%x", leases[1]))})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 1 {
			break
		}
		time.Sleep(time.Millisecond) // a polling interval
	}
	ec := v3electionpb.NewElectionClient(m.conn)
	if _, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte("e"), Lease: leases[0], Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	obs, err := ec.Observe(ctx, &v3electionpb.LeaderRequest{Name: []byte("e")})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := obs.Recv(); err != nil || string(resp.Kv.Value) != "v" {
		t.Fatalf("Observe: %v, %v", resp, err)
	}

	m.stopped = true // stopped here, not by the cleanup
	m.conn.Close()
	m.grpc.Stop()
	<-m.served
	m.svc.Close()
	if stacks := allStacks(); strings.Contains(stacks, "v3lock.(*Server).spawn") {
		t.Fatalf("an in-process stream's handler runs after Close:\n%s", stacks)
	}
	select {
	case err := <-waiter:
		if err == nil {
			t.Fatal("the waiting Lock got the lock while the member stopped")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the waiting Lock did not end with the member")
	}
	m.s.Stop()
}

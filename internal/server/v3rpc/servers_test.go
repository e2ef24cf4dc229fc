package v3rpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // registers the compressor a call below asks for
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The two gRPC servers (grpc-go's and h2grpc's) answer the same calls
// alike: each call below runs on a member of each, and what the client
// sees (the status code and message, and a summary of the answer) must be
// the same. The calls reach what a transport decides: messages over the
// size limit, answers beyond the client's flow-control windows (a 4 MB
// range, a snapshot of several MB), unknown methods and services, a
// compressed request, a deadline ended on the server, metadata, client
// and bidirectional streams, and many calls at once on one connection.
func TestServersAnswerAlike(t *testing.T) {
	var results [2][]string
	for i, kind := range []string{grpcGo, own} {
		m := startMemberOn(t, kind, nil)
		results[i] = runCalls(t, m)
		m.stop(t)
	}
	if len(results[0]) != len(results[1]) {
		t.Fatalf("%d results on grpc-go, %d on h2grpc", len(results[0]), len(results[1]))
	}
	for i := range results[0] {
		t.Log(results[1][i])
		if results[0][i] != results[1][i] {
			t.Errorf("call %d:\ngrpc-go: %s\nh2grpc:  %s", i, results[0][i], results[1][i])
		}
	}
}

// runCalls makes the calls of TestServersAnswerAlike on m and returns
// what each saw.
func runCalls(t *testing.T, m *member) []string {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	kv := pb.NewKVClient(m.conn)
	var out []string
	record := func(name string, summary string, err error) {
		s := status.Convert(err)
		out = append(out, fmt.Sprintf("%s: %v %q %s", name, s.Code(), s.Message(), summary))
	}

	// Sizes: under, at and over --max-request-bytes (1.5 MiB), and over
	// the gRPC limit (that plus 512 KiB).
	for _, size := range []int{1 << 10, 1536 << 10, 1600 << 10, 3 << 20} {
		_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("big"), Value: bytes.Repeat([]byte("v"), size)})
		record(fmt.Sprintf("put of %d bytes", size), "", err)
	}
	// An answer of 4 MB: far beyond a client's first windows (64 KiB).
	for i := range 40 {
		if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(fmt.Sprintf("r/%02d", i)), Value: bytes.Repeat([]byte{byte(i)}, 100<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("r/"), RangeEnd: []byte("r0")})
	summary := ""
	if err == nil {
		for i, kv := range resp.Kvs {
			if len(kv.Value) != 100<<10 || kv.Value[0] != byte(i) || kv.Value[len(kv.Value)-1] != byte(i) {
				t.Fatalf("key %s: %d bytes, first %d", kv.Key, len(kv.Value), kv.Value[0])
			}
		}
		summary = fmt.Sprintf("%d keys", len(resp.Kvs))
	}
	record("range of 4 MB", summary, err)

	// Errors from the server, with etcd's messages.
	_, err = kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 12345})
	record("put with an unknown lease", "", err)
	_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: 1000})
	record("range at a future revision", "", err)
	_, err = kv.Range(ctx, &pb.RangeRequest{})
	record("range of no key", "", err)
	// Serializable reads of one key (which h2grpc's reader answers
	// itself; linearizable ones, the goroutine that ends their ReadIndex
	// round): an error, a miss, a hit.
	_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: 1000, Serializable: true})
	record("serializable range at a future revision", "", err)
	resp, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("none"), Serializable: true})
	record("serializable range of a missing key", fmt.Sprint(len(resp.GetKvs())), err)
	resp, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("r/07"), Serializable: true})
	record("serializable range of a key", valueSizes(resp), err)
	// One whose answer (1 MiB) is beyond the client's first window: the
	// reader cannot wait for window updates it would itself have to read.
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("1m"), Value: bytes.Repeat([]byte("m"), 1<<20)}); err != nil {
		t.Fatal(err)
	}
	// On a new connection, whose windows the client has not grown yet.
	fresh, err := grpc.NewClient("passthrough:///"+m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	resp, err = pb.NewKVClient(fresh).Range(ctx, &pb.RangeRequest{Key: []byte("1m"), Serializable: true})
	record("serializable range of a 1 MiB value", valueSizes(resp), err)
	fresh2, err := grpc.NewClient("passthrough:///"+m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh2.Close()
	resp, err = pb.NewKVClient(fresh2).Range(ctx, &pb.RangeRequest{Key: []byte("1m")})
	record("linearizable range of a 1 MiB value", valueSizes(resp), err)

	// Methods and services that do not exist, and a compressed request.
	err = m.conn.Invoke(ctx, "/etcdserverpb.KV/Nope", &pb.RangeRequest{}, &pb.RangeResponse{})
	record("unknown method", "", err)
	err = m.conn.Invoke(ctx, "/nope.Nope/Range", &pb.RangeRequest{}, &pb.RangeResponse{})
	record("unknown service", "", err)
	_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}, grpc.UseCompressor("gzip"))
	record("compressed request", "", err)

	// Metadata reaches the handlers: a leader required (and present), a
	// token (ignored while auth is off, as etcd does).
	mdctx := metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader, "token", "nonsense")
	_, err = kv.Range(mdctx, &pb.RangeRequest{Key: []byte("k")})
	record("range with metadata", "", err)

	// A deadline that ends on the server: a watch stream's context.
	dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	ws, err := pb.NewWatchClient(m.conn).Watch(dctx)
	if err == nil {
		err = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}})
	}
	for err == nil {
		_, err = ws.Recv()
	}
	dcancel()
	// The code only: whether the client's own deadline or the server's
	// answer ends the stream first is a race, on either server.
	out = append(out, fmt.Sprintf("watch past its deadline: %v", status.Code(err)))
	if err := m.waitWatchEnded(t); err == nil {
		t.Fatal("a watch past its deadline ended its handler without an error")
	}

	// A bidirectional stream: lease keep-alives.
	lease, err := pb.NewLeaseClient(m.conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
	if err != nil {
		t.Fatal(err)
	}
	ka, err := pb.NewLeaseClient(m.conn).LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ttls []int64
	for range 3 {
		if err := ka.Send(&pb.LeaseKeepAliveRequest{ID: lease.ID}); err != nil {
			t.Fatal(err)
		}
		r, err := ka.Recv()
		if err != nil {
			t.Fatal(err)
		}
		ttls = append(ttls, r.TTL)
	}
	ka.CloseSend()
	_, err = ka.Recv()
	record("keep-alives, then half-closed", fmt.Sprint(ttls), err)

	// A server stream of several MB: the snapshot.
	snap, err := pb.NewMaintenanceClient(m.conn).Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for {
		r, err := snap.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		total += len(r.Blob)
	}
	record("snapshot", fmt.Sprintf("more than 4 MB: %v", total > 4<<20), nil)

	// Many calls at once on the one connection (2,000 writes: their own
	// deadline, generous for a race build on a busy machine).
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for c := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				key := []byte(fmt.Sprintf("c/%03d/%02d", c, i))
				if _, err := kv.Put(ctx, &pb.PutRequest{Key: key, Value: key}); err != nil {
					errs <- err
					return
				}
				// Read back at once: linearizable reads must see the put.
				r, err := kv.Range(ctx, &pb.RangeRequest{Key: key, Serializable: i%2 == 0})
				if err != nil || len(r.Kvs) != 1 || !bytes.Equal(r.Kvs[0].Value, key) {
					errs <- fmt.Errorf("%s read back as %v, %v", key, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	count, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("c/"), RangeEnd: []byte("c0"), CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	record("2,000 puts and reads from 100 goroutines", fmt.Sprint(count.Count), nil)
	return out
}

// valueSizes is the sizes of an answer's values.
func valueSizes(resp *pb.RangeResponse) string {
	var sizes []int
	for _, kv := range resp.GetKvs() {
		sizes = append(sizes, len(kv.Value))
	}
	return fmt.Sprint(sizes)
}

package v3lock

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// newClient returns a clientv3 client whose KV, Lease and Watch call the
// services kv, lease and watch in process: each request runs with the
// context the caller of the client gave, so with the metadata (token) and
// peer (client certificate) of the gRPC request that caller serves, and
// the services' auth checks see that request's user. Streams (watches,
// lease keepalives) are pipes whose handler goroutines spawn runs.
//
// Close the client to end its streams: its context is the stream context
// of its lease keepalives, and its watcher cancels its watch streams.
func newClient(kv pb.KVServer, lease pb.LeaseServer, watch pb.WatchServer, spawn func(func()) bool, lg *zap.Logger) *clientv3.Client {
	c := clientv3.NewCtxClient(context.Background(), clientv3.WithZapLogger(lg))
	c.KV = clientv3.NewKVFromKVClient(&kvClient{kv: kv, spawn: spawn}, c)
	// As etcd's in-process client, the first keepalive waits a second.
	c.Lease = clientv3.NewLeaseFromLeaseClient(&leaseClient{lease: lease, spawn: spawn}, c, time.Second)
	c.Watcher = clientv3.NewWatchFromWatchClient(&watchClient{watch: watch, spawn: spawn}, c)
	return c
}

// kvClient is a pb.KVClient that calls a pb.KVServer.
type kvClient struct {
	kv    pb.KVServer
	spawn func(func()) bool
}

func (k *kvClient) Range(ctx context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (*pb.RangeResponse, error) {
	return k.kv.Range(ctx, r)
}

func (k *kvClient) RangeStream(ctx context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.RangeStreamResponse], error) {
	return openPipe(ctx, k.spawn, func(s *serverEnd[pb.RangeRequest, pb.RangeStreamResponse]) error {
		return k.kv.RangeStream(r, s)
	})
}

func (k *kvClient) Put(ctx context.Context, r *pb.PutRequest, _ ...grpc.CallOption) (*pb.PutResponse, error) {
	return k.kv.Put(ctx, r)
}

func (k *kvClient) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest, _ ...grpc.CallOption) (*pb.DeleteRangeResponse, error) {
	return k.kv.DeleteRange(ctx, r)
}

func (k *kvClient) Txn(ctx context.Context, r *pb.TxnRequest, _ ...grpc.CallOption) (*pb.TxnResponse, error) {
	return k.kv.Txn(ctx, r)
}

func (k *kvClient) Compact(ctx context.Context, r *pb.CompactionRequest, _ ...grpc.CallOption) (*pb.CompactionResponse, error) {
	return k.kv.Compact(ctx, r)
}

// leaseClient is a pb.LeaseClient that calls a pb.LeaseServer.
type leaseClient struct {
	lease pb.LeaseServer
	spawn func(func()) bool
}

func (l *leaseClient) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest, _ ...grpc.CallOption) (*pb.LeaseGrantResponse, error) {
	return l.lease.LeaseGrant(ctx, r)
}

func (l *leaseClient) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest, _ ...grpc.CallOption) (*pb.LeaseRevokeResponse, error) {
	return l.lease.LeaseRevoke(ctx, r)
}

func (l *leaseClient) LeaseKeepAlive(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse], error) {
	return openPipe(ctx, l.spawn, func(s *serverEnd[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]) error {
		return l.lease.LeaseKeepAlive(s)
	})
}

func (l *leaseClient) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest, _ ...grpc.CallOption) (*pb.LeaseTimeToLiveResponse, error) {
	return l.lease.LeaseTimeToLive(ctx, r)
}

func (l *leaseClient) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest, _ ...grpc.CallOption) (*pb.LeaseLeasesResponse, error) {
	return l.lease.LeaseLeases(ctx, r)
}

// watchClient is a pb.WatchClient that calls a pb.WatchServer.
type watchClient struct {
	watch pb.WatchServer
	spawn func(func()) bool
}

func (w *watchClient) Watch(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.WatchRequest, pb.WatchResponse], error) {
	return openPipe(ctx, w.spawn, func(s *serverEnd[pb.WatchRequest, pb.WatchResponse]) error {
		return w.watch.Watch(s)
	})
}

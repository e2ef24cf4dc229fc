package v3rpc

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers gRPC's codec
)

// The codec writes exactly what gRPC's own does, small and large (pooled
// buffers), and reads it back.
func TestCodecMatchesGRPCs(t *testing.T) {
	c, std := newCodec(prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "received"})), encoding.GetCodecV2("proto")
	for _, msg := range []*pb.RangeResponse{
		{Header: &pb.ResponseHeader{Revision: 7}, Count: 1, Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: []byte("v")}}},
		{Header: &pb.ResponseHeader{Revision: 8}, Count: 1, Kvs: []*mvccpb.KeyValue{{Key: []byte("big"), Value: []byte(strings.Repeat("x", 1<<20))}}},
	} {
		got, err := c.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		want, err := std.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want.Materialize()) {
			t.Fatalf("revision %d: the bytes differ", msg.Header.Revision)
		}
		var back pb.RangeResponse
		if err := c.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		got.Free()
		want.Free()
		if back.String() != msg.String() {
			t.Fatalf("revision %d: read back differently", msg.Header.Revision)
		}
	}
}

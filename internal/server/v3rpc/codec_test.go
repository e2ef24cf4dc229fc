package v3rpc

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
)

// The codec writes exactly what gRPC's own does, small and large (pooled
// buffers), reads it back, and counts the bytes.
func TestCodecMatchesGRPCs(t *testing.T) {
	sent, received := prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "received"})
	c, std := newCodec(sent, received), encoding.GetCodecV2("proto")
	total := 0
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
		total += got.Len()
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
	if s, r := testutil.ToFloat64(sent), testutil.ToFloat64(received); s != float64(total) || r != float64(total) {
		t.Fatalf("counted %v bytes sent and %v received, want %d", s, r, total)
	}
}

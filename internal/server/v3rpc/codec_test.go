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
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
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

// Puts, txns and ranges, which the codec decodes by hand, read as gRPC's codec
// reads them: whole or split over buffers, large values, a request the
// hand decoder leaves to proto.Unmarshal (a field twice), and one that
// does not parse. The result shares no byte with gRPC's buffers, which
// gRPC reuses once Unmarshal returns.
func TestCodecUnmarshalsWritesAsGRPCs(t *testing.T) {
	c, std := newCodec(prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "received"})), encoding.GetCodecV2("proto")
	put := &pb.PutRequest{Key: []byte("/registry/pods/ns/p"), Value: bytes.Repeat([]byte("v"), 100<<10), Lease: 5, PrevKv: true}
	txn := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: put.Key, Target: pb.Compare_MOD, TargetUnion: &pb.Compare_ModRevision{ModRevision: 9}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: put}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: put.Key}}}},
	}
	encode := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	putBytes, txnBytes := encode(put), encode(txn)
	rangeBytes := encode(&pb.RangeRequest{Key: put.Key, RangeEnd: []byte("/registry/pods/nt"), Limit: 500, Revision: 7, Serializable: true})
	twice := append(append([]byte(nil), putBytes...), encode(&pb.PutRequest{Key: []byte("other")})...)
	for name, tc := range map[string]struct {
		data []byte
		msg  func() proto.Message
	}{
		"put":            {putBytes, func() proto.Message { return new(pb.PutRequest) }},
		"txn":            {txnBytes, func() proto.Message { return new(pb.TxnRequest) }},
		"range":          {rangeBytes, func() proto.Message { return new(pb.RangeRequest) }},
		"put, key twice": {twice, func() proto.Message { return new(pb.PutRequest) }},
		"txn, truncated": {txnBytes[:len(txnBytes)-3], func() proto.Message { return new(pb.TxnRequest) }},
	} {
		for _, split := range []int{0, 1, 7, len(tc.data) / 2} {
			data := append([]byte(nil), tc.data...)
			var bufs mem.BufferSlice
			if split > 0 {
				bufs = append(bufs, mem.SliceBuffer(data[:split]))
			}
			bufs = append(bufs, mem.SliceBuffer(data[split:]))
			got, want := tc.msg(), tc.msg()
			err := c.Unmarshal(bufs, got)
			wantErr := std.Unmarshal(mem.BufferSlice{mem.SliceBuffer(tc.data)}, want)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("%s, split at %d: error %v, gRPC's codec %v", name, split, err, wantErr)
			}
			if err != nil {
				continue
			}
			clear(data) // gRPC reuses the buffer
			if !proto.Equal(got, want) {
				t.Fatalf("%s, split at %d: decoded %v, gRPC's codec %v", name, split, got, want)
			}
		}
	}
}

func BenchmarkUnmarshalRangeRequest(b *testing.B) {
	c := newCodec(prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "received"}))
	data, err := proto.Marshal(&pb.RangeRequest{Key: []byte("foo"), Serializable: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var r pb.RangeRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, &r); err != nil {
			b.Fatal(err)
		}
	}
}

package v3rpc

import (
	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers gRPC's codec, which codec wraps
	"google.golang.org/grpc/mem"

	"github.com/cairn-db/cairn/internal/apply"
)

// codec is gRPC's "proto" codec with the bytes of every message counted,
// as etcd's codec counts them (its
// etcd_network_client_grpc_{sent,received}_bytes_total).
//
// With etcd 3.6's gogoproto messages it called their generated
// marshalling code (gRPC's codec went through a reflection wrapper that
// cost as much again); etcd 3.7's messages are protobuf-go's, which gRPC's
// codec marshals directly, into pooled buffers when large.
type codec struct {
	std            encoding.CodecV2
	sent, received prometheus.Counter
}

func newCodec(sent, received prometheus.Counter) codec {
	return codec{std: encoding.GetCodecV2("proto"), sent: sent, received: received}
}

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.std.Marshal(v)
	c.sent.Add(float64(out.Len()))
	return out, err
}

// Unmarshal decodes puts and txns, the requests every write is, and
// ranges by hand where it can (apply.DecodeClientPut): proto.Unmarshal
// walks reflection tables and allocates each message apart (0.6 us for a
// range of one key, a read's whole request).
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	c.received.Add(float64(data.Len()))
	switch m := v.(type) {
	case *pb.PutRequest:
		if apply.DecodeClientPut(contiguous(data), m) {
			return nil
		}
		m.Reset()
	case *pb.TxnRequest:
		if apply.DecodeClientTxn(contiguous(data), m) {
			return nil
		}
		m.Reset()
	case *pb.RangeRequest:
		if apply.DecodeClientRange(contiguous(data), m) {
			return nil
		}
		m.Reset()
	}
	return c.std.Unmarshal(data, v)
}

// contiguous is data's bytes in one slice: its one buffer's, or a copy.
func contiguous(data mem.BufferSlice) []byte {
	if len(data) == 1 {
		return data[0].ReadOnlyData()
	}
	return data.Materialize()
}

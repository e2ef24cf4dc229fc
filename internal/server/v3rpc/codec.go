package v3rpc

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// gogoMessage is what etcd's generated messages (gogoproto) implement.
type gogoMessage interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
	Unmarshal([]byte) error
}

// codec is gRPC's "proto" codec for etcd's messages: it calls their own
// generated marshalling code. gRPC's default codec reaches it through the
// protobuf runtime's wrapper for old-style messages, which in a profile of
// watch traffic cost as much again as the marshalling itself (sizing
// twice, and a reflection wrapper per message). Other messages go to
// gRPC's codec.
//
// It counts the bytes of every message, as etcd's codec does (its
// etcd_network_client_grpc_{sent,received}_bytes_total).
type codec struct {
	fallback       encoding.CodecV2
	sent, received prometheus.Counter
}

func newCodec(sent, received prometheus.Counter) codec {
	return codec{fallback: encoding.GetCodecV2("proto"), sent: sent, received: received}
}

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		out, err := c.fallback.Marshal(v)
		c.sent.Add(float64(out.Len()))
		return out, err
	}
	size := m.Size()
	c.sent.Add(float64(size))
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBuffer(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	n, err := m.MarshalToSizedBuffer((*buf)[:size])
	if err == nil && n != size {
		err = fmt.Errorf("v3rpc: %T marshalled to %d bytes, sized %d", v, n, size)
	}
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes data into v. Generated Unmarshal methods copy what
// they keep, so the buffer goes back to the pool at once.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	c.received.Add(float64(data.Len()))
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return m.Unmarshal(buf.ReadOnlyData())
}

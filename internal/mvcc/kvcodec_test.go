package mvcc

import (
	"bytes"
	"math"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// marshalKV returns kv's wire encoding, as a put writes it into its batch.
func marshalKV(kv *mvccpb.KeyValue) []byte {
	return appendKV(make([]byte, 0, sizeKV(kv)), kv)
}

// The hand-written codec must write exactly what proto.Marshal writes (the
// bytes are etcd's on-disk form, and snapshots carry them) and read back
// anything proto.Marshal writes, including fields it does not know.
func TestKVCodecMatchesProto(t *testing.T) {
	for _, kv := range []*mvccpb.KeyValue{
		{},
		{Key: []byte("k")},
		{Key: []byte("key"), CreateRevision: 2, ModRevision: 3, Version: 1, Value: []byte("v"), Lease: 7},
		{Key: []byte("neg"), CreateRevision: -1, ModRevision: math.MaxInt64, Version: math.MinInt64, Lease: -5},
		{Value: bytes.Repeat([]byte{0xff}, 1<<16)},
	} {
		got := marshalKV(kv)
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(kv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%v: marshalKV wrote %x, proto %x", kv, got, want)
		}
		var back mvccpb.KeyValue
		back.Lease = 99 // must be reset
		if err := unmarshalKV(want, &back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&back, kv) {
			t.Fatalf("round trip of %v gave %v", kv, &back)
		}
	}
	// An unknown field (a newer writer's) is skipped.
	withUnknown := append(marshalKV(&mvccpb.KeyValue{Key: []byte("a"), Version: 2}), 0x7a, 0x01, 'x') // field 15, bytes
	var kv mvccpb.KeyValue
	if err := unmarshalKV(withUnknown, &kv); err != nil || string(kv.Key) != "a" || kv.Version != 2 {
		t.Fatalf("with an unknown field: %v, %v", &kv, err)
	}
	// Truncations fail, never panic.
	full := marshalKV(&mvccpb.KeyValue{Key: []byte("key"), CreateRevision: 300, Value: []byte("value")})
	for i := 1; i < len(full); i++ {
		if i == 5 || i == 8 { // field boundaries: a shorter valid message
			continue
		}
		if err := unmarshalKV(full[:i], &kv); err == nil {
			t.Errorf("truncated at %d of %d: no error", i, len(full))
		}
	}
}

// The decoder copies: the backend reuses the buffer it read from.
func TestKVCodecCopies(t *testing.T) {
	b := marshalKV(&mvccpb.KeyValue{Key: []byte("key"), Value: []byte("value")})
	var kv mvccpb.KeyValue
	if err := unmarshalKV(b, &kv); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(kv.Key) != "key" || string(kv.Value) != "value" {
		t.Fatalf("decoded KeyValue changed with its buffer: %q %q", kv.Key, kv.Value)
	}
	kv.Key = append(kv.Key, 'x') // must not run into Value
	if string(kv.Value) != "value" {
		t.Fatalf("appending to Key overwrote Value: %q", kv.Value)
	}
}

func BenchmarkKVCodec(b *testing.B) {
	kv := &mvccpb.KeyValue{Key: []byte("/registry/pods/default/name"), CreateRevision: 1234567, ModRevision: 1234999, Version: 12, Value: bytes.Repeat([]byte("v"), 1024)}
	data := marshalKV(kv)
	b.Run("marshal", func(b *testing.B) {
		for b.Loop() {
			marshalKV(kv)
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		var out mvccpb.KeyValue
		for b.Loop() {
			_ = unmarshalKV(data, &out)
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		var out mvccpb.KeyValue
		for b.Loop() {
			_ = proto.Unmarshal(data, &out)
		}
	})
}

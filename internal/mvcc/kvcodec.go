package mvcc

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// The backend stores each revision's KeyValue in its protobuf wire form,
// the bytes etcd stores in bbolt (the snapshot migration relies on it). The
// api module's generated code encodes through reflection tables; every put
// (sizeKV, appendKV: encoded in place into the write batch) and every read
// (unmarshalKV) goes through these functions, so they are written out:
// fields in number order, zero values omitted, as proto.Marshal writes them
// (TestKVCodecMatchesProto).

// sizeKV is the length of kv's wire encoding.
func sizeKV(kv *mvccpb.KeyValue) int {
	n := 0
	if len(kv.Key) > 0 {
		n += 1 + protowire.SizeBytes(len(kv.Key))
	}
	for _, v := range [...]int64{kv.CreateRevision, kv.ModRevision, kv.Version} {
		if v != 0 {
			n += 1 + protowire.SizeVarint(uint64(v))
		}
	}
	if len(kv.Value) > 0 {
		n += 1 + protowire.SizeBytes(len(kv.Value))
	}
	if kv.Lease != 0 {
		n += 1 + protowire.SizeVarint(uint64(kv.Lease))
	}
	return n
}

// appendKV appends kv's wire encoding to b.
func appendKV(b []byte, kv *mvccpb.KeyValue) []byte {
	if len(kv.Key) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, kv.Key)
	}
	for i, v := range [...]int64{kv.CreateRevision, kv.ModRevision, kv.Version} {
		if v != 0 {
			b = protowire.AppendTag(b, protowire.Number(2+i), protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	if len(kv.Value) > 0 {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, kv.Value)
	}
	if kv.Lease != 0 {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kv.Lease))
	}
	return b
}

var errKVEncoding = errors.New("malformed KeyValue encoding")

// unmarshalKV decodes b into kv, which it resets first. Key and Value are
// copied (into one allocation), so b may be reused once it returns: the
// backend's buffers are. Unknown fields are skipped, as proto.Unmarshal
// would keep them only to re-encode them.
func unmarshalKV(b []byte, kv *mvccpb.KeyValue) error {
	return decodeKV(b, kv, nil)
}

// decodeKV is unmarshalKV with Key and Value copied into memory from
// alloc (nil: a fresh allocation).
func decodeKV(b []byte, kv *mvccpb.KeyValue, alloc func(n int) []byte) error {
	kv.Reset()
	var key, value []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errKVEncoding, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 5) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %v", errKVEncoding, num, protowire.ParseError(n))
			}
			if num == 1 {
				key = v
			} else {
				value = v
			}
			b = b[n:]
		case num >= 2 && num <= 6 && num != 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %v", errKVEncoding, num, protowire.ParseError(n))
			}
			switch num {
			case 2:
				kv.CreateRevision = int64(v)
			case 3:
				kv.ModRevision = int64(v)
			case 4:
				kv.Version = int64(v)
			case 6:
				kv.Lease = int64(v)
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %v", errKVEncoding, num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if len(key)+len(value) > 0 {
		var buf []byte
		if alloc != nil {
			buf = alloc(len(key) + len(value))
		} else {
			buf = make([]byte, len(key)+len(value))
		}
		copy(buf, key)
		copy(buf[len(key):], value)
		if len(key) > 0 {
			kv.Key = buf[:len(key):len(key)]
		}
		if len(value) > 0 {
			kv.Value = buf[len(key):]
		}
	}
	return nil
}

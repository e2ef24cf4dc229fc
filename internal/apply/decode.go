package apply

import (
	"math"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// aliasValueBytes is the size from which a put's value is left in the
// entry's bytes instead of copied out of them.
const aliasValueBytes = 64 << 10

// decodeRequest decodes a normal entry's request. A put and a txn, the
// commonest entries (Kubernetes writes only txns), are decoded by hand:
// the generic decoder walks reflection tables (on a follower under etcd's
// txn-put and stm benchmarks, 7-8% of its CPU) and copies the value out
// of the entry, a fresh megabyte per member for a 1 MiB value. Anything
// else, or a put or txn encoded in a way the hand decoder does not expect
// (a field twice, an unknown field), goes to proto.Unmarshal, so the
// result is always what proto.Unmarshal gives
// (TestDecodeRequestMatchesProto).
//
// A value of aliasValueBytes or more shares the entry's bytes, which
// nothing modifies once the entry exists (the raft log, the WAL's reader
// and the transport each make them once); the key and smaller values are
// copied, so a key kept for long (the index, a lease) never holds a whole
// entry, or a peer's frame of entries, in memory.
//
// A put's request, header and PutRequest come from a pool (a txn's
// request and header too, not the TxnRequest): the caller hands them back
// with release once nothing holds them any more (nil for any other
// request). The applier holds none of them after the entry is
// applied: a put's KeyValue and response are objects of their own, and
// they share only the key's and value's bytes, which are never pooled.
// Decoding a put allocated some 550 bytes of them per member, a fifth of
// what a follower allocated per put.
func decodeRequest(data []byte) (*pb.InternalRaftRequest, *decodedPut, error) {
	d := decodedPuts.Get().(*decodedPut)
	if decodePut(data, d) {
		return &d.r, d, nil
	}
	d.release() // whatever decodePut filled in
	r := &pb.InternalRaftRequest{}
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, nil, err
	}
	return r, nil, nil
}

// decodedPut holds the objects of a decoded put or txn; r's Header and
// Put point at h and p (Header may be nil; Put is nil for a txn).
type decodedPut struct {
	r pb.InternalRaftRequest
	h pb.RequestHeader
	p pb.PutRequest
}

var decodedPuts = sync.Pool{New: func() any { return new(decodedPut) }}

// release empties d and puts it back in the pool. d may be nil.
func (d *decodedPut) release() {
	if d == nil {
		return
	}
	d.r.Reset()
	d.h.Reset()
	d.p.Reset()
	decodedPuts.Put(d)
}

// decodePut decodes b into d, which must be empty, if it is a put or a txn
// request with a header and ID, each field at most once and nothing else;
// else it returns false, with d partly filled in.
func decodePut(b []byte, d *decodedPut) bool {
	r := &d.r
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			r.ID, b = v, b[n:]
		case num == 100 && typ == protowire.BytesType && r.Header == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			if proto.Unmarshal(v, &d.h) != nil {
				return false
			}
			r.Header, b = &d.h, b[n:]
		case num == 4 && typ == protowire.BytesType && r.Put == nil && r.Txn == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			if !decodePutRequest(v, &d.p, aliasValueBytes) {
				return false
			}
			r.Put, b = &d.p, b[n:]
		case num == 6 && typ == protowire.BytesType && r.Put == nil && r.Txn == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			t := new(pb.TxnRequest)
			if !decodeTxnRequest(v, t, 0, aliasValueBytes) {
				return false
			}
			r.Txn, b = t, b[n:]
		default:
			return false
		}
	}
	return r.Put != nil || r.Txn != nil
}

// DecodeClientPut and DecodeClientTxn decode a client's request, as gRPC
// hands it to the server, into p or t, which must be empty, or return
// false, with p or t partly filled in: then proto.Unmarshal must decode it
// (into an emptied message), and gives an error if it does not parse.
// Every byte is copied (gRPC reuses its buffers). Under etcd's txn-put
// benchmark proto.Unmarshal of the client's txns was 4.3% of the
// leader's CPU.
func DecodeClientPut(b []byte, p *pb.PutRequest) bool { return decodePutRequest(b, p, math.MaxInt) }

// DecodeClientTxn: see DecodeClientPut.
func DecodeClientTxn(b []byte, t *pb.TxnRequest) bool { return decodeTxnRequest(b, t, 0, math.MaxInt) }

// DecodeClientRange: see DecodeClientPut.
func DecodeClientRange(b []byte, r *pb.RangeRequest) bool { return decodeRangeRequest(b, r) }

// ScanClientRange reads, without decoding, two things a client's
// RangeRequest asks: whether it names one key (no range_end) and whether
// it is serializable; ok is false for bytes DecodeClientRange refuses.
func ScanClientRange(b []byte) (oneKey, serializable, ok bool) {
	var seen uint64
	oneKey = true
	for len(b) > 0 {
		f, n := nextRequestField(b, &seen, 13)
		if n < 0 {
			return false, false, false
		}
		b = b[n:]
		switch f.num {
		case 2:
			oneKey = len(f.v) == 0
		case 7:
			serializable = f.x != 0
		}
	}
	return oneKey, serializable, true
}

// maxTxnDepth is how deeply nested a transaction the hand decoder takes;
// deeper ones go to proto.Unmarshal.
const maxTxnDepth = 8

// decodeTxnRequest decodes a TxnRequest into t, which must be empty, or
// returns false: for anything decodePutRequest would refuse in a put, a
// singular field twice (proto.Unmarshal would merge), two fields of a
// oneof, an unknown field, a wrong wire type, or transactions nested more
// than maxTxnDepth deep. depth is how many it is nested in; values of
// aliasFrom bytes or more share b (see decodePutRequest). A txn's
// objects are not pooled: the applier's response and the lessor may keep
// its keys.
func decodeTxnRequest(b []byte, t *pb.TxnRequest, depth, aliasFrom int) bool {
	// Counted first, so that each list is allocated once at its size.
	var counts [4]int
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num < 1 || num > 3 || typ != protowire.BytesType {
			return false
		}
		n2 := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if n2 < 0 {
			return false
		}
		counts[num]++
		rest = rest[n+n2:]
	}
	if counts[1] > 0 {
		t.Compare = make([]*pb.Compare, 0, counts[1])
	}
	if counts[2] > 0 {
		t.Success = make([]*pb.RequestOp, 0, counts[2])
	}
	if counts[3] > 0 {
		t.Failure = make([]*pb.RequestOp, 0, counts[3])
	}
	for len(b) > 0 {
		num, _, n := protowire.ConsumeTag(b)
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		if num == 1 {
			c := new(pb.Compare)
			if !decodeCompare(v, c) {
				return false
			}
			t.Compare = append(t.Compare, c)
			continue
		}
		op := decodeRequestOp(v, depth, aliasFrom)
		if op == nil {
			return false
		}
		if num == 2 {
			t.Success = append(t.Success, op)
		} else {
			t.Failure = append(t.Failure, op)
		}
	}
	return true
}

// putOp is a RequestOp holding a put, in one allocation.
type putOp struct {
	op pb.RequestOp
	w  pb.RequestOp_RequestPut
	p  pb.PutRequest
}

// decodeRequestOp decodes a RequestOp, or returns nil (see
// decodeTxnRequest).
func decodeRequestOp(b []byte, depth, aliasFrom int) *pb.RequestOp {
	op := (*pb.RequestOp)(nil)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 4 || typ != protowire.BytesType || op != nil {
			return nil
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		switch num {
		case 1:
			r := new(pb.RangeRequest)
			if !decodeRangeRequest(v, r) {
				return nil
			}
			op = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
		case 2:
			x := new(putOp)
			if !decodePutRequest(v, &x.p, aliasFrom) {
				return nil
			}
			x.w.RequestPut = &x.p
			x.op.Request = &x.w
			op = &x.op
		case 3:
			d := new(pb.DeleteRangeRequest)
			if !decodeDeleteRangeRequest(v, d) {
				return nil
			}
			op = &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
		case 4:
			t := new(pb.TxnRequest)
			if depth >= maxTxnDepth || !decodeTxnRequest(v, t, depth+1, aliasFrom) {
				return nil
			}
			op = &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
		}
	}
	if op == nil {
		op = new(pb.RequestOp) // an empty RequestOp
	}
	return op
}

// field is one field of a message, as nextField reads it: a varint's
// value in x, a length-delimited field's bytes in v.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
	x   uint64
}

// nextField reads b's first field and returns it and its length in b,
// or n < 0 if it does not parse, has a number above 64, or is neither a
// varint nor length-delimited. seen marks the numbers read so far (bit 0
// for 64, Compare's range_end); a number seen before is refused too.
func nextField(b []byte, seen *uint64) (f field, n int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num < 1 || num > 64 || *seen&(1<<(num%64)) != 0 {
		return f, -1
	}
	*seen |= 1 << (num % 64)
	f.num, f.typ = num, typ
	var m int
	switch typ {
	case protowire.BytesType:
		f.v, m = protowire.ConsumeBytes(b[n:])
	case protowire.VarintType:
		f.x, m = protowire.ConsumeVarint(b[n:])
	default:
		return f, -1
	}
	if m < 0 {
		return f, -1
	}
	return f, n + m
}

// nextRequestField reads the next field of a PutRequest, a RangeRequest
// or a DeleteRangeRequest, whose fields 1 and 2 are bytes (the key; the
// value or the range's end) and the others, up to last, varints: as
// nextField, and n < 0 too for a field numbered above last or of the
// other wire type.
func nextRequestField(b []byte, seen *uint64, last protowire.Number) (f field, n int) {
	f, n = nextField(b, seen)
	if n < 0 || f.num > last || (f.typ == protowire.BytesType) != (f.num <= 2) {
		return f, -1
	}
	return f, n
}

// ownBytes copies a proto3 bytes field as proto.Unmarshal does: present
// but empty is nil.
func ownBytes(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// decodeCompare decodes a Compare into c, which must be empty, or returns
// false (see decodeTxnRequest).
func decodeCompare(b []byte, c *pb.Compare) bool {
	var seen uint64
	for len(b) > 0 {
		f, n := nextField(b, &seen)
		if n < 0 {
			return false
		}
		b = b[n:]
		bytesField, oneof := f.typ == protowire.BytesType, f.num >= 4 && f.num <= 8
		switch {
		case oneof && c.TargetUnion != nil, bytesField != (f.num == 3 || f.num == 7 || f.num == 64):
			return false // two of the oneof, or a wrong wire type
		case f.num == 1:
			c.Result = pb.Compare_CompareResult(int32(f.x))
		case f.num == 2:
			c.Target = pb.Compare_CompareTarget(int32(f.x))
		case f.num == 3:
			c.Key = ownBytes(f.v)
		case f.num == 4:
			c.TargetUnion = &pb.Compare_Version{Version: int64(f.x)}
		case f.num == 5:
			c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: int64(f.x)}
		case f.num == 6:
			c.TargetUnion = &pb.Compare_ModRevision{ModRevision: int64(f.x)}
		case f.num == 7:
			// In a oneof, present but empty stays non-nil.
			c.TargetUnion = &pb.Compare_Value{Value: append([]byte{}, f.v...)}
		case f.num == 8:
			c.TargetUnion = &pb.Compare_Lease{Lease: int64(f.x)}
		case f.num == 64:
			c.RangeEnd = ownBytes(f.v)
		default:
			return false
		}
	}
	return true
}

// decodeRangeRequest decodes a RangeRequest into r, which must be empty,
// or returns false (see decodeTxnRequest).
func decodeRangeRequest(b []byte, r *pb.RangeRequest) bool {
	var seen uint64
	for len(b) > 0 {
		f, n := nextRequestField(b, &seen, 13)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch f.num {
		case 1:
			r.Key = ownBytes(f.v)
		case 2:
			r.RangeEnd = ownBytes(f.v)
		case 3:
			r.Limit = int64(f.x)
		case 4:
			r.Revision = int64(f.x)
		case 5:
			r.SortOrder = pb.RangeRequest_SortOrder(int32(f.x))
		case 6:
			r.SortTarget = pb.RangeRequest_SortTarget(int32(f.x))
		case 7:
			r.Serializable = f.x != 0
		case 8:
			r.KeysOnly = f.x != 0
		case 9:
			r.CountOnly = f.x != 0
		case 10:
			r.MinModRevision = int64(f.x)
		case 11:
			r.MaxModRevision = int64(f.x)
		case 12:
			r.MinCreateRevision = int64(f.x)
		case 13:
			r.MaxCreateRevision = int64(f.x)
		}
	}
	return true
}

// decodeDeleteRangeRequest decodes a DeleteRangeRequest into d, which
// must be empty, or returns false (see decodeTxnRequest).
func decodeDeleteRangeRequest(b []byte, d *pb.DeleteRangeRequest) bool {
	var seen uint64
	for len(b) > 0 {
		f, n := nextRequestField(b, &seen, 3)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch f.num {
		case 1:
			d.Key = ownBytes(f.v)
		case 2:
			d.RangeEnd = ownBytes(f.v)
		case 3:
			d.PrevKv = f.x != 0
		}
	}
	return true
}

// decodePutRequest decodes a PutRequest's fields, each at most once, into
// p, which must be empty, or returns false. A value of aliasFrom bytes or
// more shares b's bytes; the key and smaller values are copied.
func decodePutRequest(b []byte, p *pb.PutRequest, aliasFrom int) bool {
	var key, value []byte
	var seen uint64
	for len(b) > 0 {
		f, n := nextRequestField(b, &seen, 6)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch f.num {
		case 1:
			key = f.v
		case 2:
			value = f.v
		case 3:
			p.Lease = int64(f.x)
		case 4:
			p.PrevKv = f.x != 0
		case 5:
			p.IgnoreValue = f.x != 0
		case 6:
			p.IgnoreLease = f.x != 0
		}
	}
	// As proto.Unmarshal: a bytes field present but empty is nil, as
	// if absent. The key and a small value share one allocation.
	own := len(key)
	if len(value) < aliasFrom {
		own += len(value)
	}
	buf := make([]byte, 0, own)
	if len(key) > 0 {
		buf = append(buf, key...)
		p.Key = buf[:len(key):len(key)]
	}
	switch {
	case len(value) >= aliasFrom:
		p.Value = value[:len(value):len(value)]
	case len(value) > 0:
		p.Value = append(buf[len(buf):], value...)
	}
	return true
}

// RequestID returns the ID in a normal entry's request header without
// decoding the rest of the request (a put's value is skipped over, not
// read), or false if the bytes hold no header with an ID or do not parse.
// Headers repeated merge, as proto.Unmarshal merges them: the last ID
// counts.
func RequestID(data []byte) (uint64, bool) {
	var id uint64
	valid := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num != 100 || typ != protowire.BytesType {
			return true
		}
		h, _ := protowire.ConsumeBytes(v)
		return eachField(h, func(num protowire.Number, typ protowire.Type, v []byte) bool {
			if num == 1 && typ == protowire.VarintType {
				id, _ = protowire.ConsumeVarint(v)
			}
			return true
		})
	})
	return id, valid && id != 0
}

// eachField calls fn with the number, wire type and encoded value of each
// field of message b, in order, and says whether b parsed and fn returned
// true for every field.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 || !fn(num, typ, b[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// proposedMatches says whether data decodes to r (an invariants check of
// ApplyProposed's caller).
func proposedMatches(data []byte, r *pb.InternalRaftRequest) bool {
	d, put, err := decodeRequest(data)
	defer put.release()
	return err == nil && proto.Equal(d, r)
}

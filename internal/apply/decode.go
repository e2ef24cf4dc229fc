package apply

import (
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// aliasValueBytes is the size from which a put's value is left in the
// entry's bytes instead of copied out of them.
const aliasValueBytes = 64 << 10

// decodeRequest decodes a normal entry's request. A put, the commonest
// entry, is decoded by hand: the generic decoder walks reflection tables
// and copies the value out of the entry, a fresh megabyte per member for a
// 1 MiB value. Anything else, or a put encoded in a way the hand decoder
// does not expect (a field twice, an unknown field), goes to
// proto.Unmarshal, so the result is always what proto.Unmarshal gives
// (TestDecodeRequestMatchesProto).
//
// A value of aliasValueBytes or more shares the entry's bytes, which
// nothing modifies once the entry exists (the raft log, the WAL's reader
// and the transport each make them once); the key and smaller values are
// copied, so a key kept for long (the index, a lease) never holds a whole
// entry, or a peer's frame of entries, in memory.
//
// A put's request, header and PutRequest come from a pool: the caller
// hands them back with release once nothing holds them any more (nil for
// any other request). The applier holds none of them after the entry is
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

// decodedPut holds the objects of a decoded put; r's Header and Put point
// at h and p (Header may be nil).
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

// decodePut decodes b into d, which must be empty, if it is a put request
// with a header and ID, each field at most once and nothing else; else it
// returns false, with d partly filled in.
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
		case num == 4 && typ == protowire.BytesType && r.Put == nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			if !decodePutRequest(v, &d.p) {
				return false
			}
			r.Put, b = &d.p, b[n:]
		default:
			return false
		}
	}
	return r.Put != nil
}

// decodePutRequest decodes a PutRequest's fields, each at most once, into
// p, which must be empty, or returns false.
func decodePutRequest(b []byte, p *pb.PutRequest) bool {
	var key, value []byte
	var seen uint8
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 6 || seen&(1<<num) != 0 {
			return false
		}
		seen |= 1 << num
		b = b[n:]
		if num <= 2 {
			if typ != protowire.BytesType {
				return false
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			if num == 1 {
				key = v
			} else {
				value = v
			}
			b = b[n:]
			continue
		}
		if typ != protowire.VarintType {
			return false
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 3:
			p.Lease = int64(v)
		case 4:
			p.PrevKv = v != 0
		case 5:
			p.IgnoreValue = v != 0
		case 6:
			p.IgnoreLease = v != 0
		}
	}
	// As proto.Unmarshal: a bytes field present but empty is nil, as
	// if absent. The key and a small value share one allocation.
	own := len(key)
	if len(value) < aliasValueBytes {
		own += len(value)
	}
	buf := make([]byte, 0, own)
	if len(key) > 0 {
		buf = append(buf, key...)
		p.Key = buf[:len(key):len(key)]
	}
	switch {
	case len(value) >= aliasValueBytes:
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

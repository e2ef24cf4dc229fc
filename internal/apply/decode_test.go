package apply

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"unsafe"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/invariants"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// requestCorpus is encodings of requests as proposers write them, puts of
// every shape among them, and encodings they never write but a decoder
// must read as proto.Unmarshal does (fields twice, unknown fields, wrong
// wire types, truncations).
func requestCorpus(rng *rand.Rand) [][]byte {
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	marshal := func(r *pb.InternalRaftRequest) []byte {
		b, err := proto.Marshal(r)
		if err != nil {
			panic(err)
		}
		return b
	}
	var out [][]byte
	for i := range 300 {
		put := &pb.PutRequest{Key: bytesOf(rng.IntN(40)), Lease: rng.Int64N(3) - 1,
			PrevKv: rng.IntN(2) == 0, IgnoreValue: rng.IntN(4) == 0, IgnoreLease: rng.IntN(4) == 0}
		switch i % 3 {
		case 0:
			put.Value = bytesOf(rng.IntN(300))
		case 1:
			put.Value = bytesOf(aliasValueBytes - 2 + rng.IntN(4))
		}
		r := &pb.InternalRaftRequest{ID: rng.Uint64N(4), Put: put}
		if rng.IntN(4) != 0 {
			r.Header = &pb.RequestHeader{ID: rng.Uint64(), Username: []string{"", "root", "u\u00e9"}[rng.IntN(3)], AuthRevision: rng.Uint64N(9)}
		}
		out = append(out, marshal(r))
	}
	put := marshal(&pb.InternalRaftRequest{ID: 7, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 5}})
	out = append(out,
		marshal(&pb.InternalRaftRequest{ID: 1, Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a")}}}}}}),
		marshal(&pb.InternalRaftRequest{ID: 2, DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b")}}),
		marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 3}, LeaseGrant: &pb.LeaseGrantRequest{TTL: 5, ID: 9}}),
		marshal(&pb.InternalRaftRequest{ID: 4, Put: &pb.PutRequest{}}),
		marshal(&pb.InternalRaftRequest{ID: 5}),
		nil,
		// A put twice (merged), an ID twice (the last wins), a header twice.
		append(append([]byte(nil), put...), marshal(&pb.InternalRaftRequest{ID: 8, Put: &pb.PutRequest{Value: []byte("w"), PrevKv: true}})...),
		append(append([]byte(nil), put...), marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1}})...),
		// An unknown field, and a known one with the wrong wire type.
		protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), put...), 999, protowire.VarintType), 3),
		protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), put...), 1, protowire.BytesType), []byte("x")),
		// The put's own fields twice, unknown, of the wrong type.
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("a")), 1, protowire.BytesType), []byte("b"))),
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
			protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1)),
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
			protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)),
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), nil)),
		// A put's key and value present but empty.
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), nil), 2, protowire.BytesType), nil)),
	)
	// Every prefix of a put: truncations anywhere.
	for i := range put {
		out = append(out, put[:i])
	}
	// Txns of every shape, as clients write them (Kubernetes: a compare
	// of the mod revision, a put, a range on failure), nested, and too
	// deeply nested for the hand decoder.
	for i := range 300 {
		txn := randomTxn(rng, bytesOf, 0)
		r := &pb.InternalRaftRequest{ID: rng.Uint64N(4), Txn: txn}
		if i%2 == 0 {
			r.Header = &pb.RequestHeader{ID: rng.Uint64(), Username: []string{"", "root"}[rng.IntN(2)]}
		}
		out = append(out, marshal(r))
	}
	deep := &pb.TxnRequest{}
	for range maxTxnDepth + 2 {
		deep = &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: deep}}}}
	}
	k8s := marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 11}, Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("/registry/pods/ns/p"), Target: pb.Compare_MOD, TargetUnion: &pb.Compare_ModRevision{ModRevision: 7}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("/registry/pods/ns/p"), Value: []byte("v"), Lease: 3}}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("/registry/pods/ns/p")}}}},
	}})
	txnOf := func(fields []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), fields)
	}
	cmpOf := func(fields []byte) []byte {
		return txnOf(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), fields))
	}
	opOf := func(fields []byte) []byte {
		return txnOf(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), fields))
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	out = append(out,
		marshal(&pb.InternalRaftRequest{ID: 12, Txn: deep}),
		marshal(&pb.InternalRaftRequest{ID: 13, Txn: &pb.TxnRequest{}}),
		// A txn and a put in one request; a txn twice (merged).
		append(append([]byte(nil), k8s...), put...),
		append(append([]byte(nil), k8s...), k8s...),
		// A compare: a field twice, two of its oneof, an empty value (in a
		// oneof: present and empty), range_end (field 64) twice, an
		// unknown field, a negative revision, an enum out of range.
		cmpOf(append(varint(1, 1), varint(1, 2)...)),
		cmpOf(append(varint(4, 1), varint(6, 2)...)),
		cmpOf(bytesField(7, nil)),
		cmpOf(append(bytesField(64, []byte("z")), bytesField(64, []byte("y"))...)),
		cmpOf(append(bytesField(3, []byte("k")), bytesField(64, nil)...)),
		cmpOf(varint(9, 1)),
		cmpOf(varint(6, uint64(1<<64-5))),
		cmpOf(varint(2, 77)),
		cmpOf(bytesField(4, []byte("x"))),
		// A request op: two requests, an empty one, an unknown one; a
		// range's fields twice, of the wrong type, unknown.
		opOf(append(bytesField(2, bytesField(1, []byte("a"))), bytesField(3, bytesField(1, []byte("a")))...)),
		opOf(nil),
		opOf(bytesField(5, nil)),
		opOf(bytesField(1, append(varint(3, 1), varint(3, 2)...))),
		opOf(bytesField(1, bytesField(7, nil))),
		opOf(bytesField(1, varint(14, 1))),
		opOf(bytesField(1, append(bytesField(1, nil), bytesField(2, []byte{0})...))),
		opOf(bytesField(3, append(bytesField(1, []byte("a")), varint(3, 2)...))),
		opOf(bytesField(3, varint(4, 1))),
		// A txn field unknown, or a varint.
		txnOf(varint(1, 1)),
		txnOf(bytesField(4, nil)),
	)
	for i := range k8s {
		out = append(out, k8s[:i])
	}
	return out
}

// randomTxn is a random TxnRequest, nesting others below maxTxnDepth + 1.
func randomTxn(rng *rand.Rand, bytesOf func(int) []byte, depth int) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for range rng.IntN(3) {
		c := &pb.Compare{Result: pb.Compare_CompareResult(rng.IntN(4)), Target: pb.Compare_CompareTarget(rng.IntN(5)),
			Key: bytesOf(rng.IntN(20))}
		if rng.IntN(3) == 0 {
			c.RangeEnd = bytesOf(rng.IntN(3))
		}
		switch rng.IntN(6) {
		case 0:
			c.TargetUnion = &pb.Compare_Version{Version: rng.Int64N(5) - 1}
		case 1:
			c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: rng.Int64N(1 << 40)}
		case 2:
			c.TargetUnion = &pb.Compare_ModRevision{ModRevision: rng.Int64N(100)}
		case 3:
			c.TargetUnion = &pb.Compare_Value{Value: bytesOf(rng.IntN(3))}
		case 4:
			c.TargetUnion = &pb.Compare_Lease{Lease: rng.Int64N(3)}
		}
		t.Compare = append(t.Compare, c)
	}
	ops := func() []*pb.RequestOp {
		var out []*pb.RequestOp
		for range rng.IntN(4) {
			op := &pb.RequestOp{}
			switch rng.IntN(5) {
			case 0:
				op.Request = &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: bytesOf(rng.IntN(10)),
					RangeEnd: bytesOf(rng.IntN(3)), Limit: rng.Int64N(3), Revision: rng.Int64N(3),
					SortOrder: pb.RangeRequest_SortOrder(rng.IntN(3)), SortTarget: pb.RangeRequest_SortTarget(rng.IntN(5)),
					Serializable: rng.IntN(2) == 0, KeysOnly: rng.IntN(2) == 0, CountOnly: rng.IntN(2) == 0,
					MinModRevision: rng.Int64N(2), MaxModRevision: rng.Int64N(2), MinCreateRevision: rng.Int64N(2),
					MaxCreateRevision: rng.Int64N(2)}}
			case 1:
				op.Request = &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: bytesOf(rng.IntN(10)),
					Value: bytesOf([]int{0, 5, aliasValueBytes}[rng.IntN(3)]), Lease: rng.Int64N(2), PrevKv: rng.IntN(2) == 0}}
			case 2:
				op.Request = &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{
					Key: bytesOf(rng.IntN(10)), RangeEnd: bytesOf(rng.IntN(3)), PrevKv: rng.IntN(2) == 0}}
			case 3:
				if depth <= maxTxnDepth {
					op.Request = &pb.RequestOp_RequestTxn{RequestTxn: randomTxn(rng, bytesOf, depth+1)}
				}
			}
			out = append(out, op)
		}
		return out
	}
	t.Success, t.Failure = ops(), ops()
	return t
}

// The hand decoder gives what proto.Unmarshal gives, for every encoding,
// including errors for what does not decode.
func TestDecodeRequestMatchesProto(t *testing.T) {
	for i, data := range requestCorpus(rand.New(rand.NewPCG(1, 2))) {
		checkDecodeMatchesProto(t, fmt.Sprint("case ", i), data)
	}
}

func checkDecodeMatchesProto(t *testing.T, name string, data []byte) {
	t.Helper()
	want := &pb.InternalRaftRequest{}
	wantErr := proto.Unmarshal(data, want)
	// Each case's put goes back to the pool at the end, so the cases
	// after it decode into reused objects, as the applier does.
	got, put, err := decodeRequest(data)
	defer put.release()
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s (%x): error %v, proto.Unmarshal's %v", name, data, err, wantErr)
	}
	if err == nil && !proto.Equal(got, want) {
		t.Fatalf("%s (%x): decoded %v, proto.Unmarshal %v", name, data, got, want)
	}
	// Which byte strings are nil is proto.Unmarshal's too: it leaves a
	// bytes field present but empty nil (proto.Equal does not tell).
	if err == nil {
		var g, w []string
		nilness(reflect.ValueOf(got), "", &g)
		nilness(reflect.ValueOf(want), "", &w)
		if !slices.Equal(g, w) {
			t.Fatalf("%s (%x): nil-ness of byte strings differs: got %v, want %v", name, data, g, w)
		}
	}
}

// nilness lists the byte strings in v (through pointers, slices, oneof
// interfaces and exported struct fields) that are nil, by path.
func nilness(v reflect.Value, path string, out *[]string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			nilness(v.Elem(), path, out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				nilness(v.Field(i), path+"."+f.Name, out)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.IsNil() {
				*out = append(*out, path)
			}
			return
		}
		for i := range v.Len() {
			nilness(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

// Txns as clients write them, nested up to maxTxnDepth, are decoded by
// hand, not handed to proto.Unmarshal (which gives the same, slower).
func TestDecodeTxnByHand(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	bytesOf := func(n int) []byte { return bytes.Repeat([]byte{byte(rng.Uint32())}, n) }
	for i := range 200 {
		data, err := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: uint64(i + 1)}, Txn: randomTxn(rng, bytesOf, 1)})
		if err != nil {
			t.Fatal(err)
		}
		r, d, err := decodeRequest(data)
		if err != nil || d == nil || r.Txn == nil {
			t.Fatalf("txn %d (%x): decoded by hand %v, error %v", i, data, d != nil, err)
		}
		d.release()
	}
}

// A large value shares the entry's bytes; the key and a small value do
// not, so keeping a key never keeps a whole entry in memory.
func TestDecodedPutSharesOnlyLargeValues(t *testing.T) {
	for _, size := range []int{10, aliasValueBytes - 1, aliasValueBytes, 1 << 20} {
		data, err := proto.Marshal(&pb.InternalRaftRequest{ID: 1, Put: &pb.PutRequest{Key: []byte("key"), Value: bytes.Repeat([]byte{7}, size)}})
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := decodeRequest(data)
		if err != nil {
			t.Fatal(err)
		}
		within := func(b []byte) bool {
			p, start := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(data)))
			return p >= start && p < start+uintptr(len(data))
		}
		if within(r.Put.Key) {
			t.Fatalf("value of %d bytes: the key shares the entry's bytes", size)
		}
		if got, want := within(r.Put.Value), size >= aliasValueBytes; got != want {
			t.Fatalf("value of %d bytes: shares the entry's bytes %v, want %v", size, got, want)
		}
		if cap(r.Put.Value) != len(r.Put.Value) {
			t.Fatalf("value of %d bytes: capacity %d, so an append would write past it", size, cap(r.Put.Value))
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, data := range requestCorpus(rand.New(rand.NewPCG(3, 4))) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeMatchesProto(t, "fuzz", data)
	})
}

func BenchmarkDecodeTxn(b *testing.B) {
	// etcd's txn-put benchmark's txn: four puts of 256 bytes.
	txn := &pb.TxnRequest{}
	for i := range 4 {
		txn.Success = append(txn.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: fmt.Appendf(nil, "key-%04d", i), Value: make([]byte, 256)}}})
	}
	data, err := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 9}, Txn: txn})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, d, err := decodeRequest(data)
			if err != nil {
				b.Fatal(err)
			}
			d.release()
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(data, &pb.InternalRaftRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodePut(b *testing.B) {
	for _, size := range []int{256, 1 << 20} {
		data, err := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 9}, ID: 9,
			Put: &pb.PutRequest{Key: []byte("benchmark-key"), Value: make([]byte, size)}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("hand/%d", size), func(b *testing.B) {
			for b.Loop() {
				_, put, err := decodeRequest(data)
				if err != nil {
					b.Fatal(err)
				}
				put.release()
			}
		})
		b.Run(fmt.Sprintf("proto/%d", size), func(b *testing.B) {
			for b.Loop() {
				if err := proto.Unmarshal(data, &pb.InternalRaftRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The ID the applier looks a proposer's request up by is the one the
// entry's request carries, whatever else the entry holds.
func TestRequestIDMatchesProto(t *testing.T) {
	corpus := requestCorpus(rand.New(rand.NewPCG(5, 6)))
	big := make([]byte, 1<<20)
	for _, r := range []*pb.InternalRaftRequest{
		{Header: &pb.RequestHeader{ID: 1<<63 | 42, Username: "u"}, Put: &pb.PutRequest{Key: []byte("k"), Value: big}},
		{Header: &pb.RequestHeader{ID: 9}, Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a")}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}}}},
		{Header: &pb.RequestHeader{ID: 10}, Compaction: &pb.CompactionRequest{Revision: 5}},
		{Header: &pb.RequestHeader{}, LeaseRevoke: &pb.LeaseRevokeRequest{ID: 3}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, b)
	}
	// Headers repeated merge: the last ID counts, and a header without
	// one keeps the one before.
	h5, _ := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 5}})
	h6, _ := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 6}})
	hu, _ := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{Username: "u"}})
	corpus = append(corpus, slices.Concat(h5, h6), slices.Concat(h6, h5), slices.Concat(h5, hu), slices.Concat(h5, corpus[0], h6))
	decoded := 0
	for i, data := range corpus {
		id, ok := RequestID(data)
		var r pb.InternalRaftRequest
		if proto.Unmarshal(data, &r) != nil {
			continue // what RequestID says of bytes that do not decode does not matter
		}
		decoded++
		if want := r.GetHeader().GetID(); id != want || ok != (want != 0) {
			t.Fatalf("entry %d: RequestID = %d, %v; the decoded header's ID is %d", i, id, ok, want)
		}
	}
	if decoded < 300 {
		t.Fatalf("only %d of the corpus decode", decoded)
	}
}

// A request handed over by its proposer is applied as the entry's bytes
// would be, and one that does not match them is caught in invariants
// builds.
func TestApplyProposedMatchesDecoded(t *testing.T) {
	if !invariants.Enabled {
		t.Skip("the check runs in invariants builds (the test suite's)")
	}
	a := openApplier(t)
	req := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 77}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	res, applied, err := a.ApplyProposed(raftpb.Entry{Type: raftpb.EntryNormal, Index: 2, Term: 1, Data: data}, req)
	if err != nil || !applied || res.ID != 77 || res.Op != "Put" {
		t.Fatalf("ApplyProposed = %+v, %v, %v", res, applied, err)
	}
	other := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 78}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a request that is not the entry's was applied")
			}
		}()
		_, _, _ = a.ApplyProposed(raftpb.Entry{Type: raftpb.EntryNormal, Index: 3, Term: 1, Data: data}, other)
	}()
}

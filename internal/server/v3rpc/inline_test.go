package v3rpc

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The connection's reader answers serializable ranges of one key itself,
// and nothing else: a linearizable read waits for the read index, a range
// of many keys may take long, other methods wait for raft.
func TestInlineCalls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		req    proto.Message
		want   bool
	}{
		{"serializable, one key", rangeMethod, &pb.RangeRequest{Key: []byte("k"), Serializable: true}, true},
		{"serializable, one key, at a revision, counted", rangeMethod, &pb.RangeRequest{Key: []byte("k"), Serializable: true, Revision: 5, CountOnly: true, MaxCreateRevision: 9}, true},
		{"linearizable, one key", rangeMethod, &pb.RangeRequest{Key: []byte("k")}, false},
		{"serializable, a range", rangeMethod, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), Serializable: true, Limit: 1}, false},
		{"serializable, every key", rangeMethod, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Serializable: true}, false},
		{"a put", "/etcdserverpb.KV/Put", &pb.PutRequest{Key: []byte("k")}, false},
	} {
		b, err := proto.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := inlineCall(tc.method, b); got != tc.want {
			t.Errorf("%s: inline %v, want %v", tc.name, got, tc.want)
		}
	}
	// A field the scan does not know, or bytes that are no message, go
	// to a worker.
	b, _ := proto.Marshal(&pb.RangeRequest{Key: []byte("k"), Serializable: true})
	if inlineCall(rangeMethod, protowire.AppendVarint(protowire.AppendTag(b, 99, protowire.VarintType), 1)) {
		t.Error("a request with an unknown field was inlined")
	}
	if inlineCall(rangeMethod, append(b, 0xff)) {
		t.Error("a malformed request was inlined")
	}
}

package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// streamed is a RangeStream's outcome: its chunks, merged as clients merge
// them (proto.Merge, as clientv3's GetStreamToGetResponse), or its error.
type streamed struct {
	chunks []*pb.RangeResponse
	merged *pb.RangeResponse
	err    error
}

func rangeStream(ctx context.Context, kv pb.KVClient, req *pb.RangeRequest) streamed {
	st, err := kv.RangeStream(ctx, req)
	if err != nil {
		return streamed{err: err}
	}
	out := streamed{merged: &pb.RangeResponse{}}
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			out.err = err
			return out
		}
		out.chunks = append(out.chunks, resp.RangeResponse)
		proto.Merge(out.merged, resp.RangeResponse)
	}
}

// describe prints a Range answer or error with the identity (cluster and
// member IDs, term) left out, which differs between the servers.
func describe(resp *pb.RangeResponse, err error) string {
	if err != nil {
		st, _ := status.FromError(err)
		return fmt.Sprintf("error %s: %s", st.Code(), st.Message())
	}
	resp = proto.CloneOf(resp)
	if resp.Header != nil {
		resp.Header.ClusterId, resp.Header.MemberId, resp.Header.RaftTerm = 0, 0, 0
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "rev %d count %d more %v, %d keys:", resp.GetHeader().GetRevision(), resp.Count, resp.More, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, " %s(c%d m%d v%d l%d %d bytes %x)", kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease,
			len(kv.Value), kv.Value[:min(len(kv.Value), 4)])
	}
	return b.String()
}

// streamHistory writes the same history to a server: small and large
// values (several of etcd's chunks and several of Cairn's), overwrites,
// deletes and a compaction. It returns the revision compacted at and the
// last.
func streamHistory(t *testing.T, ctx context.Context, kv pb.KVClient) (compacted, last int64) {
	t.Helper()
	put := func(key string, size int, fill byte) int64 {
		resp, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: bytes.Repeat([]byte{fill}, size)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	for i := range 300 {
		put(fmt.Sprintf("s/%03d", i), 10+i%50, byte('a'+i%26))
	}
	for i := range 24 {
		put(fmt.Sprintf("big/%02d", i), 200<<10, byte('A'+i))
	}
	compacted = put("s/100", 5, 'x')
	for i := 0; i < 300; i += 7 {
		if _, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(fmt.Sprintf("s/%03d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	put("big/05", 300<<10, 'z')
	if _, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: compacted - 10, Physical: true}); err != nil {
		t.Fatal(err)
	}
	last = put("s/999", 3, 'q')
	return compacted, last
}

// RangeStream (etcd 3.7's KV.RangeStream) against stock etcd 3.7.3: the
// merged chunks are the same as etcd's, and the same as the Range answer,
// over prefixes, open ranges, single keys, limits, revisions (past,
// compacted, future), keys-only, count-only and serializable reads. Only
// the last chunk carries the header, count and more; chunks are disjoint
// and in key order. Sorted and revision-filtered requests, which etcd
// refuses as Unimplemented, Cairn answers (README: a deliberate
// difference), also as Range would; so is a sort target without an order,
// which etcd streams sorted chunk by chunk.
func TestRangeStreamDifferential(t *testing.T) {
	cairnBin, etcdBin := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	var conns [2]*grpc.ClientConn
	var compacted, last [2]int64
	for i, bin := range []string{cairnBin, etcdBin} {
		conns[i] = startServer(t, bin)
		compacted[i], last[i] = streamHistory(t, ctx, pb.NewKVClient(conns[i]))
	}
	if compacted[0] != compacted[1] || last[0] != last[1] {
		t.Fatalf("histories differ: cairn compacted at %d, last %d; etcd %d, %d", compacted[0], last[0], compacted[1], last[1])
	}
	cairn, etcd := pb.NewKVClient(conns[0]), pb.NewKVClient(conns[1])
	all := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
	with := func(f func(r *pb.RangeRequest)) *pb.RangeRequest {
		r := proto.CloneOf(all)
		f(r)
		return r
	}
	same := []*pb.RangeRequest{
		all,
		{Key: []byte("s/"), RangeEnd: []byte("s0")},
		{Key: []byte("big/"), RangeEnd: []byte("big0")},
		{Key: []byte("s/5"), RangeEnd: []byte{0}},
		{Key: []byte("s/001")},
		{Key: []byte("s/000")}, // deleted
		{Key: []byte("nothing/"), RangeEnd: []byte("nothing0")},
		with(func(r *pb.RangeRequest) { r.Limit = 1 }),
		with(func(r *pb.RangeRequest) { r.Limit = 15 }),
		with(func(r *pb.RangeRequest) { r.Limit = 50 }),
		with(func(r *pb.RangeRequest) { r.Limit = 1000 }),
		{Key: []byte("big/"), RangeEnd: []byte("big0"), Limit: 7},
		with(func(r *pb.RangeRequest) { r.Revision = compacted[0] }),
		with(func(r *pb.RangeRequest) { r.Revision = compacted[0] - 10 }),
		with(func(r *pb.RangeRequest) { r.Revision = compacted[0] + 5; r.Limit = 40 }),
		with(func(r *pb.RangeRequest) { r.Revision = compacted[0] - 11 }), // compacted
		with(func(r *pb.RangeRequest) { r.Revision = last[0] + 1 }),       // future
		with(func(r *pb.RangeRequest) { r.KeysOnly = true }),
		with(func(r *pb.RangeRequest) { r.KeysOnly = true; r.Limit = 30 }),
		with(func(r *pb.RangeRequest) { r.CountOnly = true }),
		with(func(r *pb.RangeRequest) { r.CountOnly = true; r.Limit = 3 }),
		with(func(r *pb.RangeRequest) { r.Serializable = true; r.Limit = 20 }),
		with(func(r *pb.RangeRequest) { r.SortTarget = pb.RangeRequest_KEY; r.SortOrder = pb.RangeRequest_ASCEND }),
		{Key: nil}, // empty key
	}
	for _, req := range same {
		c, e := rangeStream(ctx, cairn, req), rangeStream(ctx, etcd, req)
		got, want := describe(c.merged, c.err), describe(e.merged, e.err)
		if got != want {
			t.Errorf("%v:\ncairn %.2000s\netcd  %.2000s", req, got, want)
			continue
		}
		checkChunks(t, req, c)
		if c.err == nil {
			r, err := cairn.Range(ctx, req, grpc.MaxCallRecvMsgSize(1<<30))
			if unary := describe(r, err); unary != got {
				t.Errorf("%v: merged stream differs from Range:\nstream %.2000s\nrange  %.2000s", req, got, unary)
			}
		}
	}
	for _, req := range []*pb.RangeRequest{
		with(func(r *pb.RangeRequest) { r.SortOrder = pb.RangeRequest_DESCEND }),
		with(func(r *pb.RangeRequest) {
			r.SortTarget = pb.RangeRequest_MOD
			r.SortOrder = pb.RangeRequest_ASCEND
			r.Limit = 9
		}),
		with(func(r *pb.RangeRequest) { r.SortTarget = pb.RangeRequest_VALUE; r.SortOrder = pb.RangeRequest_DESCEND }),
		with(func(r *pb.RangeRequest) { r.MinModRevision = compacted[0] }),
		with(func(r *pb.RangeRequest) { r.MaxCreateRevision = 200; r.Limit = 5 }),
		// A target without an order sorts ascending; etcd streams it,
		// each chunk sorted on its own.
		with(func(r *pb.RangeRequest) { r.SortTarget = pb.RangeRequest_VERSION }),
	} {
		if e := rangeStream(ctx, etcd, req); req.SortOrder != pb.RangeRequest_NONE && status.Code(e.err) != codes.Unimplemented {
			t.Errorf("%v: etcd answered %s, expected Unimplemented", req, describe(e.merged, e.err))
		}
		c := rangeStream(ctx, cairn, req)
		r, err := cairn.Range(ctx, req, grpc.MaxCallRecvMsgSize(1<<30))
		if got, want := describe(c.merged, c.err), describe(r, err); got != want {
			t.Errorf("%v: merged stream differs from Range:\nstream %.2000s\nrange  %.2000s", req, got, want)
		}
		checkChunks(t, req, c)
	}
}

// checkChunks holds a stream to the chunk rules: disjoint keys in key
// order (unless sorted otherwise), the header, count and more only on the
// last chunk, each chunk at most the server's target size plus one key.
func checkChunks(t *testing.T, req *pb.RangeRequest, s streamed) {
	t.Helper()
	if s.err != nil {
		return
	}
	if len(s.chunks) == 0 {
		t.Errorf("%v: a stream without a chunk", req)
		return
	}
	inKeyOrder := req.SortTarget == pb.RangeRequest_KEY && req.SortOrder != pb.RangeRequest_DESCEND
	var prev []byte
	for i, c := range s.chunks {
		lastChunk := i == len(s.chunks)-1
		if !lastChunk && (c.Header != nil || c.Count != 0 || c.More) {
			t.Errorf("%v: chunk %d of %d has header %v count %d more %v", req, i, len(s.chunks), c.Header, c.Count, c.More)
		}
		if lastChunk && c.Header == nil {
			t.Errorf("%v: the last chunk has no header", req)
		}
		size := 0
		for _, kv := range c.Kvs {
			if inKeyOrder && prev != nil && bytes.Compare(kv.Key, prev) <= 0 {
				t.Errorf("%v: chunk %d: key %q after %q", req, i, kv.Key, prev)
			}
			prev = kv.Key
			size += len(kv.Key) + len(kv.Value)
		}
		if len(c.Kvs) > 1 && size-len(c.Kvs[len(c.Kvs)-1].Value) > 1536*1024 {
			t.Errorf("%v: chunk %d holds %d bytes in %d keys", req, i, size, len(c.Kvs))
		}
	}
}

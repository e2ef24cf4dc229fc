package mvcc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// reqStore is a store for request tests, with its raft index counter.
type reqStore struct {
	t     *testing.T
	s     *Store
	index uint64
}

func newReqStore(t *testing.T) *reqStore {
	s, _ := newTestStore(t)
	return &reqStore{t: t, s: s}
}

// apply runs f in one write transaction and returns the revision after.
func (r *reqStore) apply(f func(tw *TxnWrite)) int64 {
	tw := r.s.Write()
	f(tw)
	r.index++
	rev, err := tw.End(r.index, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	return rev
}

func (r *reqStore) put(key, value string, lease int64) int64 {
	return r.apply(func(tw *TxnWrite) { tw.Put([]byte(key), []byte(value), lease) })
}

func kvKeys(kvs []*mvccpb.KeyValue) string {
	var ks []string
	for _, kv := range kvs {
		ks = append(ks, string(kv.Key))
	}
	return strings.Join(ks, ",")
}

func TestRangeRequest(t *testing.T) {
	r := newReqStore(t)
	// a: created 2, version 3, value "z"; b: created 3, version 1, value "y";
	// c: created 4, version 2, value "x"; d: created 7, value "w".
	r.put("a", "1", 0) // 2
	r.put("b", "y", 0) // 3
	r.put("c", "1", 0) // 4
	r.put("a", "2", 0) // 5
	r.put("c", "x", 0) // 6
	r.put("d", "w", 0) // 7
	r.put("a", "z", 0) // 8

	for _, tc := range []struct {
		name string
		req  *pb.RangeRequest
		keys string
		more bool
		cnt  int64
	}{
		{"one key", &pb.RangeRequest{Key: []byte("b")}, "b", false, 1},
		{"range", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}, "a,b", false, 2},
		{"from key", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte{0}}, "b,c,d", false, 3},
		{"all", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, "a,b,c,d", false, 4},
		{"limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Limit: 2}, "a,b", true, 4},
		{"limit exact", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Limit: 4}, "a,b,c,d", false, 4},
		{"at a past revision", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Revision: 4}, "a,b,c", false, 3},
		{"sort by key descending", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortOrder: pb.RangeRequest_DESCEND}, "d,c,b,a", false, 4},
		{"sort by version, no order means ascending", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_VERSION}, "b,d,c,a", false, 4},
		{"sort by create descending", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_CREATE, SortOrder: pb.RangeRequest_DESCEND}, "d,c,b,a", false, 4},
		{"sort by mod", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_ASCEND}, "b,c,d,a", false, 4},
		// A sort target without an order sorts only the first limit+1
		// keys (etcd lifts the limit only for an explicit order).
		{"sort by value with a limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_VALUE, Limit: 2}, "c,b", true, 4},
		{"sort by value ascending with a limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND, Limit: 2}, "d,c", true, 4},
		{"min mod revision", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), MinModRevision: 6}, "a,c,d", false, 4},
		{"max mod revision", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), MaxModRevision: 6}, "b,c", false, 4},
		{"create revision window", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), MinCreateRevision: 3, MaxCreateRevision: 4}, "b,c", false, 4},
		{"filter then limit", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), MinCreateRevision: 3, Limit: 1}, "b", true, 4},
		{"count only", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), CountOnly: true}, "", false, 4},
		{"missing key", &pb.RangeRequest{Key: []byte("zz")}, "", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := r.s.RangeRequest(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := kvKeys(resp.Kvs); got != tc.keys || resp.More != tc.more || resp.Count != tc.cnt {
				t.Fatalf("got keys %q more %v count %d; want %q %v %d", got, resp.More, resp.Count, tc.keys, tc.more, tc.cnt)
			}
			if resp.Header.Revision != 8 {
				t.Fatalf("header revision %d, want 8", resp.Header.Revision)
			}
		})
	}

	resp, _ := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("a"), KeysOnly: true})
	if kv := resp.Kvs[0]; kv.Value != nil || kv.Version != 3 || kv.CreateRevision != 2 || kv.ModRevision != 8 {
		t.Fatalf("keys only: %+v", kv)
	}
	if _, err := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("a"), Revision: 9}); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future revision: %v", err)
	}
	if ErrFutureRev.Error() != "mvcc: required revision is a future revision" ||
		ErrCompacted.Error() != "mvcc: required revision has been compacted" {
		t.Fatal("error messages differ from etcd's")
	}
}

func TestPutRequest(t *testing.T) {
	r := newReqStore(t)
	r.put("k", "v1", 7)
	var resp *pb.PutResponse
	var err error
	rev := r.apply(func(tw *TxnWrite) {
		resp, err = tw.PutRequest(&pb.PutRequest{Key: []byte("k"), IgnoreValue: true, PrevKv: true})
	})
	if err != nil || resp.PrevKv == nil || string(resp.PrevKv.Value) != "v1" || resp.Header.Revision != rev {
		t.Fatalf("ignore_value put: %+v, %v", resp, err)
	}
	got, _ := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("k")})
	if kv := got.Kvs[0]; string(kv.Value) != "v1" || kv.Lease != 0 || kv.Version != 2 {
		t.Fatalf("after ignore_value: %+v (the lease was not asked to be kept)", kv)
	}
	r.apply(func(tw *TxnWrite) {
		resp, err = tw.PutRequest(&pb.PutRequest{Key: []byte("k"), Value: []byte("v3"), IgnoreLease: true})
	})
	if err != nil || resp.PrevKv != nil {
		t.Fatalf("ignore_lease put: %+v, %v", resp, err)
	}
	// ignore_value on a missing key: etcd's "key not found", and nothing
	// changes.
	before := r.s.Rev()
	after := r.apply(func(tw *TxnWrite) {
		_, err = tw.PutRequest(&pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})
	})
	if !errors.Is(err, ErrKeyNotFound) || after != before {
		t.Fatalf("ignore_value on a missing key: %v, revision %d -> %d", err, before, after)
	}
}

func TestDeleteRangeRequest(t *testing.T) {
	r := newReqStore(t)
	r.put("a", "1", 0)
	r.put("b", "2", 0)
	var resp *pb.DeleteRangeResponse
	rev := r.apply(func(tw *TxnWrite) {
		resp, _ = tw.DeleteRangeRequest(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), PrevKv: true})
	})
	if resp.Deleted != 2 || kvKeys(resp.PrevKvs) != "a,b" || rev != 4 || resp.Header.Revision != 4 {
		t.Fatalf("delete: %+v at %d", resp, rev)
	}
	// A delete of nothing is not a change.
	rev = r.apply(func(tw *TxnWrite) {
		resp, _ = tw.DeleteRangeRequest(&pb.DeleteRangeRequest{Key: []byte("a")})
	})
	if resp.Deleted != 0 || rev != 4 {
		t.Fatalf("a delete of nothing: %+v, revision %d", resp, rev)
	}
	// A put after the delete starts a new life: version 1, new creation.
	r.put("a", "3", 0)
	got, _ := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("a")})
	if kv := got.Kvs[0]; kv.Version != 1 || kv.CreateRevision != 5 {
		t.Fatalf("recreated key: %+v", kv)
	}
}

func newCompare(key string, target pb.Compare_CompareTarget, result pb.Compare_CompareResult, v any) *pb.Compare {
	c := &pb.Compare{Key: []byte(key), Target: target, Result: result}
	switch target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(v.(string))}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: int64(v.(int))}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: int64(v.(int))}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: int64(v.(int))}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: int64(v.(int))}
	}
	return c
}

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func getOp(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func delOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func txnOp(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

func TestTxnCompares(t *testing.T) {
	r := newReqStore(t)
	r.put("k", "b", 5) // rev 2: create 2, mod 2, version 1, lease 5
	r.put("k", "b", 5) // rev 3: mod 3, version 2
	r.put("j", "a", 0) // rev 4
	for _, tc := range []struct {
		c    *pb.Compare
		want bool
	}{
		{newCompare("k", pb.Compare_VALUE, pb.Compare_EQUAL, "b"), true},
		{newCompare("k", pb.Compare_VALUE, pb.Compare_GREATER, "a"), true},
		{newCompare("k", pb.Compare_VALUE, pb.Compare_LESS, "a"), false},
		{newCompare("k", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "b"), false},
		{newCompare("k", pb.Compare_VERSION, pb.Compare_EQUAL, 2), true},
		{newCompare("k", pb.Compare_CREATE, pb.Compare_EQUAL, 2), true},
		{newCompare("k", pb.Compare_MOD, pb.Compare_GREATER, 2), true},
		{newCompare("k", pb.Compare_LEASE, pb.Compare_EQUAL, 5), true},
		// A missing key: version, revisions and lease are 0; a value
		// compare is false whatever it asks.
		{newCompare("missing", pb.Compare_VERSION, pb.Compare_EQUAL, 0), true},
		{newCompare("missing", pb.Compare_CREATE, pb.Compare_LESS, 1), true},
		{newCompare("missing", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, "x"), false},
		{newCompare("missing", pb.Compare_VALUE, pb.Compare_EQUAL, ""), false},
	} {
		var resp *pb.TxnResponse
		r.apply(func(tw *TxnWrite) {
			var err error
			if resp, err = tw.TxnRequest(&pb.TxnRequest{Compare: []*pb.Compare{tc.c}}); err != nil {
				t.Fatal(err)
			}
		})
		if resp.Succeeded != tc.want {
			t.Errorf("compare %v: succeeded %v, want %v", tc.c, resp.Succeeded, tc.want)
		}
	}
	// A compare over a range holds only if it holds for every key in it.
	c := newCompare("j", pb.Compare_VALUE, pb.Compare_GREATER, "")
	c.RangeEnd = []byte("l")
	r.apply(func(tw *TxnWrite) {
		resp, _ := tw.TxnRequest(&pb.TxnRequest{Compare: []*pb.Compare{c}})
		if !resp.Succeeded {
			t.Error("a compare that holds for every key in a range failed")
		}
	})
	c = newCompare("j", pb.Compare_VALUE, pb.Compare_EQUAL, "a")
	c.RangeEnd = []byte("l")
	r.apply(func(tw *TxnWrite) {
		resp, _ := tw.TxnRequest(&pb.TxnRequest{Compare: []*pb.Compare{c}})
		if resp.Succeeded {
			t.Error("a compare that fails for one key in a range succeeded")
		}
	})
	if r.s.Rev() != 4 {
		t.Fatalf("read-only txns changed the revision to %d", r.s.Rev())
	}
}

// A txn's branch runs in order, its reads see its earlier writes, and all
// its writes share one revision, with sub-revisions in order.
func TestTxnBranches(t *testing.T) {
	r := newReqStore(t)
	r.put("x", "1", 0) // 2
	var resp *pb.TxnResponse
	rev := r.apply(func(tw *TxnWrite) {
		var err error
		resp, err = tw.TxnRequest(&pb.TxnRequest{
			Compare: []*pb.Compare{newCompare("x", pb.Compare_VALUE, pb.Compare_EQUAL, "nope")},
			Success: []*pb.RequestOp{putOp("never", "1")},
			Failure: []*pb.RequestOp{
				putOp("y", "1"),
				getOp("y"),
				// Compares, nested ones too, see the state before the
				// txn (as etcd's): y does not exist yet.
				txnOp(&pb.TxnRequest{
					Compare: []*pb.Compare{newCompare("y", pb.Compare_VERSION, pb.Compare_EQUAL, 0)},
					Success: []*pb.RequestOp{putOp("z", "2"), delOp("x", "")},
				}),
				getOp("x"),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if resp.Succeeded || rev != 3 || resp.Header.Revision != 3 {
		t.Fatalf("txn: succeeded %v revision %d header %d", resp.Succeeded, rev, resp.Header.Revision)
	}
	if got := resp.Responses[1].GetResponseRange().Kvs; len(got) != 1 || got[0].ModRevision != 3 {
		t.Fatalf("a read in the txn of its own put: %v", got)
	}
	nested := resp.Responses[2].GetResponseTxn()
	if !nested.Succeeded || nested.Responses[1].GetResponseDeleteRange().Deleted != 1 || nested.Header.Revision != 0 {
		t.Fatalf("nested txn (etcd leaves its header empty): %+v", nested)
	}
	if got := resp.Responses[3].GetResponseRange().Kvs; len(got) != 0 {
		t.Fatalf("a read in the txn after its delete: %v", got)
	}
	if res, _ := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("never")}); res.Count != 0 {
		t.Fatal("the success branch ran")
	}
	res, _ := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("y"), RangeEnd: []byte("zz")})
	if kvKeys(res.Kvs) != "y,z" || res.Kvs[0].ModRevision != 3 || res.Kvs[1].ModRevision != 3 {
		t.Fatalf("after the txn: %v", res.Kvs)
	}
}

func TestCheckTxn(t *testing.T) {
	for i, tc := range []struct {
		req *pb.TxnRequest
		ok  bool
	}{
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("b", "1")}}, true},
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("a", "2")}}, false},
		// The branches exclude each other.
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1")}, Failure: []*pb.RequestOp{putOp("a", "2")}}, true},
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "1"), delOp("a", "c")}}, false},
		{&pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "c"), delOp("b", "d")}}, true},
		// etcd's check reads a delete from a key on as an empty interval.
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("z", "1"), delOp("a", "\x00")}}, true},
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("c", "1"), delOp("a", "c")}}, true},
		// Nested: a put in a nested txn conflicts with the outer branch.
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2")}})}}, false},
		{&pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", ""),
			txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{putOp("a", "2")}})}}, false},
		// ...but its two branches may put the same key.
		{&pb.TxnRequest{Success: []*pb.RequestOp{
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1")}, Failure: []*pb.RequestOp{putOp("a", "2")}})}}, true},
		// Two nested txns both putting a key conflict.
		{&pb.TxnRequest{Success: []*pb.RequestOp{
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1")}}),
			txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{putOp("a", "2")}})}}, false},
		// A nested delete covering an outer put conflicts.
		{&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "1"),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "c")}})}}, false},
	} {
		err := CheckTxn(tc.req)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrDuplicateKey)) {
			t.Errorf("case %d: %v, want ok=%v", i, err, tc.ok)
		}
	}
}

// A txn whose path fails its check writes nothing, even ops before the one
// that fails; the check sees the state before the txn.
func TestFailedTxnWritesNothing(t *testing.T) {
	r := newReqStore(t)
	r.put("x", "1", 0) // 2
	for _, tc := range []struct {
		name string
		ops  []*pb.RequestOp
		err  error
	}{
		{"ignore_value on a missing key", []*pb.RequestOp{putOp("a", "1"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}}}, ErrKeyNotFound},
		// The key is put earlier in the txn, but did not exist before it.
		{"ignore_lease on a key the txn creates", []*pb.RequestOp{putOp("b", "1"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), IgnoreLease: true}}}}, ErrKeyNotFound},
		// The txn's own revision is in the future as far as its check goes.
		{"range at the txn's own revision", []*pb.RequestOp{putOp("a", "1"),
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 3}}}}, ErrFutureRev},
		{"nested", []*pb.RequestOp{putOp("a", "1"), txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}}}})}, ErrKeyNotFound},
	} {
		var err error
		rev := r.apply(func(tw *TxnWrite) {
			_, err = tw.TxnRequest(&pb.TxnRequest{Success: tc.ops})
		})
		got, _ := r.s.RangeRequest(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
		if !errors.Is(err, tc.err) || rev != 2 || got.Count != 0 {
			t.Errorf("%s: err %v (want %v), revision %d (want 2), %d keys written", tc.name, err, tc.err, rev, got.Count)
		}
	}
}

// Compacting at a revision in which a key was deleted and put again keeps
// both (the put is the live value; the delete is for watchers from there).
func TestCompactAtDeleteThenPutRevision(t *testing.T) {
	r := newReqStore(t)
	r.put("a", "1", 0) // 2
	rev := r.apply(func(tw *TxnWrite) {
		tw.DeleteRange([]byte("a"), []byte{0})
		tw.Put([]byte("a"), []byte("2"), 0)
	}) // 3: delete 3.0, put 3.1
	r.index++
	compactWait(t, r.s, rev, r.index)
	res, err := r.s.Range([]byte("a"), nil, RangeOptions{})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != "2" {
		t.Fatalf("a after compact(%d) = %v, %v; want a=2", rev, res.KVs, err)
	}
}

// A put keeping the value or lease of a key that a from-key delete in the
// same txn removes first would fail half way through (etcd panics); it is
// refused up front.
func TestIgnorePutAfterFromKeyDelete(t *testing.T) {
	s, _ := newTestStore(t)
	tw := s.Write()
	tw.Put([]byte("a"), []byte("1"), 0)
	if _, err := tw.End(1, 1); err != nil {
		t.Fatal(err)
	}
	put := putOp("a", "")
	put.GetRequestPut().IgnoreValue = true
	run := func(req *pb.TxnRequest) error {
		t.Helper()
		if err := CheckTxn(req); err != nil {
			t.Fatalf("CheckTxn refused what etcd's check accepts: %v", err)
		}
		tw := s.Write()
		_, err := tw.TxnRequest(req)
		if _, endErr := tw.End(2, 1); endErr != nil {
			t.Fatal(endErr)
		}
		return err
	}
	// The delete runs first and removes "a": etcd panics applying this;
	// here it fails before writing anything.
	if err := run(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "\x00"), put}}); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("got %v, want ErrKeyNotFound", err)
	}
	if res, _ := s.Range([]byte("a"), nil, RangeOptions{}); s.Rev() != 2 || len(res.KVs) != 1 {
		t.Fatalf("a refused txn wrote something: rev %d, %v", s.Rev(), res.KVs)
	}
	// The same ops on a branch that does not run, or the put first: fine.
	never := &pb.Compare{Key: []byte("a"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_Version{Version: 7}}
	if err := run(&pb.TxnRequest{Compare: []*pb.Compare{never}, Success: []*pb.RequestOp{delOp("a", "\x00"), put}}); err != nil {
		t.Fatal(err)
	}
	if err := run(&pb.TxnRequest{Success: []*pb.RequestOp{put, delOp("a", "\x00")}}); err != nil {
		t.Fatal(err)
	}
}

// A read-only txn evaluates its compares and ranges at one revision and
// writes nothing; a write in it is refused before anything runs.
func TestReadTxnRequest(t *testing.T) {
	s, _ := newTestStore(t)
	tw := s.Write()
	tw.Put([]byte("a"), []byte("1"), 0)
	if _, err := tw.End(1, 1); err != nil {
		t.Fatal(err)
	}
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}},
	}
	resp, err := s.ReadTxnRequest(req)
	if err != nil || !resp.Succeeded || resp.Header.Revision != 2 ||
		string(resp.Responses[0].GetResponseRange().Kvs[0].Value) != "1" {
		t.Fatalf("resp %v, err %v", resp, err)
	}
	req.Success = append(req.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b")}}})
	if _, err := s.ReadTxnRequest(req); err != ErrWriteInReadTxn {
		t.Fatalf("err = %v, want ErrWriteInReadTxn", err)
	}
	if s.Rev() != 2 {
		t.Fatalf("rev %d after a refused read txn", s.Rev())
	}
}

// Compares of versions and revisions answered from the index agree with
// the same compares answered from the keys' stored KeyValues (the path
// value and lease compares take, and etcd's for every compare), on random
// histories (keys put, deleted, put again; some compacted), for single
// keys, ranges and from-key ranges, before a transaction writes and after
// it wrote (a nested txn's compares see its earlier puts and deletes).
func TestCompareIndexMatchesValues(t *testing.T) {
	r := newReqStore(t)
	rng := rand.New(rand.NewPCG(21, 1))
	keys := []string{"a", "b", "c", "d", "e"}
	targets := []pb.Compare_CompareTarget{pb.Compare_VERSION, pb.Compare_CREATE, pb.Compare_MOD}
	results := []pb.Compare_CompareResult{pb.Compare_EQUAL, pb.Compare_NOT_EQUAL, pb.Compare_GREATER, pb.Compare_LESS}
	change := func(tw *TxnWrite) {
		k := []byte(keys[rng.IntN(len(keys))])
		if rng.IntN(3) == 0 {
			tw.DeleteRange(k, nil)
		} else {
			tw.Put(k, []byte("v"), 0)
		}
	}
	checked := 0
	for round := range 300 {
		r.apply(change)
		if round%50 == 49 {
			r.index++
			if done, err := r.s.Compact(r.s.Rev()-5, r.index, 1); err == nil {
				<-done
			}
		}
		r.apply(func(tw *TxnWrite) {
			for pass := range 2 {
				if pass == 1 {
					change(tw) // pending in this transaction
				}
				for range 20 {
					c := &pb.Compare{Key: []byte(keys[rng.IntN(len(keys))]), Target: targets[rng.IntN(3)],
						Result: results[rng.IntN(4)]}
					switch rng.IntN(3) {
					case 1:
						c.RangeEnd = []byte("d")
					case 2:
						c.RangeEnd = []byte{0}
					}
					v := rng.Int64N(tw.Rev() + 2)
					switch c.Target {
					case pb.Compare_VERSION:
						c.TargetUnion = &pb.Compare_Version{Version: rng.Int64N(4)}
					case pb.Compare_CREATE:
						c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: v}
					case pb.Compare_MOD:
						c.TargetUnion = &pb.Compare_ModRevision{ModRevision: v}
					}
					want, err := tw.compareValues(c)
					if err != nil {
						t.Fatal(err)
					}
					if got := tw.compareIndex(c); got != want {
						t.Fatalf("round %d, pass %d: compare %v from the index %v, from the values %v", round, pass, c, got, want)
					}
					checked++
				}
			}
		})
	}
	t.Logf("%d compares checked", checked)
}

// TestReadTxnCutByCompaction: a read-only txn of the current revision,
// while every write is followed by a compaction up to it (which trims the
// key's older revisions from the index, the one the txn reads among them,
// once written past), still finds the key that is alive at every
// revision: its compares and ranges are never cut short. So does a plain
// read of the current revision. Before, about a fifth of the txns took
// the wrong branch or counted 0.
func TestReadTxnCutByCompaction(t *testing.T) {
	s, _ := newTestStore(t)
	index := uint64(0)
	write := func() {
		tw := s.Write()
		tw.Put([]byte("x"), []byte("v"), 0)
		index++
		if _, err := tw.End(index, 1); err != nil {
			t.Fatal(err)
		}
	}
	write()
	ops := make([]*pb.RequestOp, 300)
	for i := range ops {
		ops[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("x"), CountOnly: true}}}
	}
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("x"), Target: pb.Compare_MOD, Result: pb.Compare_GREATER,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
		Success: ops,
	}
	var stop atomic.Bool
	var txns, reads atomic.Int64
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			resp, err := s.ReadTxnRequest(req)
			switch {
			case err != nil:
				errs <- fmt.Errorf("read txn: %v", err)
				return
			case !resp.Succeeded:
				errs <- fmt.Errorf("read txn at %d: compare on x false", resp.Header.Revision)
				return
			}
			for _, r := range resp.Responses {
				if c := r.GetResponseRange().Count; c != 1 {
					errs <- fmt.Errorf("read txn at %d: a range of x counted %d", resp.Header.Revision, c)
					return
				}
			}
			txns.Add(1)
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			if res, err := s.Range([]byte("x"), nil, RangeOptions{CountOnly: true}); err != nil || res.Count != 1 {
				errs <- fmt.Errorf("Range at %d: count %d, %v", res.Rev, res.Count, err)
				return
			}
			reads.Add(1)
		}
	})
	for range 1500 {
		write()
		index++
		compactWait(t, s, s.Rev(), index)
	}
	stopReaders(t, &stop, &wg, errs)
	t.Logf("%d read txns, %d reads", txns.Load(), reads.Load())
}

package e2e

import (
	"errors"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The KV API as the seeds' notes use it, on one member: put, get at a
// revision, prev_kv, prefix and from-key reads, deletes, Do with ops,
// txns, and the response header.
func TestKVSingleMember(t *testing.T) {
	c := newCluster(t, 1)
	cli := c.members[0].client()
	ctx := ctxT(t)

	put, err := cli.Put(ctx, "/cron/jobs/job1", "JOB1")
	if err != nil {
		t.Fatal(err)
	}
	h := put.Header
	st, err := cli.Status(ctx, c.members[0].clientURL)
	if err != nil {
		t.Fatal(err)
	}
	if h.ClusterId == 0 || h.MemberId != st.Header.MemberId || h.RaftTerm == 0 || h.Revision != 2 {
		t.Fatalf("header %+v", h)
	}
	put, err = cli.Put(ctx, "/cron/jobs/job2", "JOB2", clientv3.WithPrevKV())
	if err != nil || put.PrevKv != nil || put.Header.Revision != 3 {
		t.Fatalf("put %+v, %v", put, err)
	}
	put, err = cli.Put(ctx, "/cron/jobs/job2", "JOB2b", clientv3.WithPrevKV())
	if err != nil || put.PrevKv == nil || string(put.PrevKv.Value) != "JOB2" {
		t.Fatalf("put with prev_kv %+v, %v", put, err)
	}
	get, err := cli.Get(ctx, "/cron/jobs/", clientv3.WithPrefix())
	if err != nil || get.Count != 2 || string(get.Kvs[1].Value) != "JOB2b" || get.Header.Revision != 4 {
		t.Fatalf("prefix get %+v, %v", get, err)
	}
	kv := get.Kvs[1]
	if kv.CreateRevision != 3 || kv.ModRevision != 4 || kv.Version != 2 {
		t.Fatalf("kv %+v", kv)
	}
	get, err = cli.Get(ctx, "/cron/jobs/job2", clientv3.WithRev(3))
	if err != nil || string(get.Kvs[0].Value) != "JOB2" {
		t.Fatalf("get at rev 3 %+v, %v", get, err)
	}
	get, err = cli.Get(ctx, "/cron/jobs/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || get.Count != 2 || len(get.Kvs) != 0 {
		t.Fatalf("count only %+v, %v", get, err)
	}
	get, err = cli.Get(ctx, "/cron/jobs/job1", clientv3.WithFromKey(), clientv3.WithLimit(1))
	if err != nil || get.Count != 2 || len(get.Kvs) != 1 || !get.More {
		t.Fatalf("from key with limit %+v, %v", get, err)
	}
	get, err = cli.Get(ctx, "/cron/jobs/", clientv3.WithPrefix(), clientv3.WithSerializable(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithKeysOnly())
	if err != nil || len(get.Kvs) != 2 || string(get.Kvs[0].Key) != "/cron/jobs/job2" || len(get.Kvs[0].Value) != 0 {
		t.Fatalf("sorted serializable keys-only %+v, %v", get, err)
	}

	del, err := cli.Delete(ctx, "/cron/jobs/job2", clientv3.WithPrevKV())
	if err != nil || del.Deleted != 1 || string(del.PrevKvs[0].Value) != "JOB2b" {
		t.Fatalf("delete %+v, %v", del, err)
	}
	op, err := cli.Do(ctx, clientv3.OpPut("/cron/jobs/job3", "JOB3"))
	if err != nil || op.Put().Header.Revision != 6 {
		t.Fatalf("Do put %+v, %v", op, err)
	}
	op, err = cli.Do(ctx, clientv3.OpGet("/cron/jobs/job3"))
	if err != nil || op.Get().Kvs[0].ModRevision != 6 || op.Get().Kvs[0].CreateRevision != 6 {
		t.Fatalf("Do get %+v, %v", op, err)
	}

	// The seeds' txn: compare a value, put on success, get on failure.
	txn := func(want string) *clientv3.TxnResponse {
		resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("key"), "=", want)).
			Then(clientv3.OpPut("key", "newValue")).Else(clientv3.OpGet("key")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if _, err := cli.Put(ctx, "key", "oldValue"); err != nil {
		t.Fatal(err)
	}
	if r := txn("oldValue"); !r.Succeeded || r.Header.Revision != 8 {
		t.Fatalf("txn %+v", r)
	}
	if r := txn("oldValue"); r.Succeeded || string(r.Responses[0].GetResponseRange().Kvs[0].Value) != "newValue" ||
		r.Header.Revision != 8 {
		t.Fatalf("failed txn %+v", r)
	}
	// The lock idiom: create only if absent.
	lock, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("lock"), "=", 0)).
		Then(clientv3.OpPut("lock", "me")).Commit()
	if err != nil || !lock.Succeeded {
		t.Fatalf("lock txn %+v, %v", lock, err)
	}
}

// Every refusal a user can hit through KV gets etcd's error.
func TestKVErrors(t *testing.T) {
	c := newCluster(t, 1, "--max-txn-ops", "4", "--max-request-bytes", "4096")
	cli := c.members[0].client()
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := cli.Put(ctx, "k", strings.Repeat("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) && (err == nil || err.Error() != want.Error()) {
			t.Errorf("%s: err = %v, want %v", what, err, want)
		}
	}
	_, err := cli.Put(ctx, "", "v")
	check("empty key put", err, rpctypes.ErrEmptyKey)
	_, err = cli.Get(ctx, "")
	check("empty key get", err, rpctypes.ErrEmptyKey)
	_, err = cli.Put(ctx, "big", strings.Repeat("x", 5000))
	check("request too large", err, rpctypes.ErrRequestTooLarge)
	_, err = cli.Put(ctx, "k", "", clientv3.WithLease(12345))
	check("unknown lease", err, rpctypes.ErrLeaseNotFound)
	_, err = cli.Put(ctx, "absent", "", clientv3.WithIgnoreValue())
	check("ignore value of absent key", err, rpctypes.ErrKeyNotFound)
	ops := []clientv3.Op{}
	for i := range 5 {
		ops = append(ops, clientv3.OpPut(string(rune('a'+i)), "v"))
	}
	_, err = cli.Txn(ctx).Then(ops...).Commit()
	check("too many ops", err, rpctypes.ErrTooManyOps)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("a", "2")).Commit()
	check("duplicate key", err, rpctypes.ErrDuplicateKey)
	_, err = cli.Get(ctx, "k", clientv3.WithRev(100))
	check("future revision", err, rpctypes.ErrFutureRev)
	if _, err := cli.Compact(ctx, 4, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	_, err = cli.Get(ctx, "k", clientv3.WithRev(3))
	check("compacted read", err, rpctypes.ErrCompacted)
	_, err = cli.Compact(ctx, 3)
	check("compacted compaction", err, rpctypes.ErrCompacted)
	_, err = cli.Compact(ctx, 100)
	check("future compaction", err, rpctypes.ErrFutureRev)
	get, err := cli.Get(ctx, "k", clientv3.WithRev(4))
	if err != nil || string(get.Kvs[0].Value) != "vv" {
		t.Fatalf("read at the compaction revision: %+v, %v", get, err)
	}
	// A refused write changes nothing.
	get, err = cli.Get(ctx, "k")
	if err != nil || get.Header.Revision != 6 || get.Kvs[0].Version != 5 {
		t.Fatalf("after refusals: %+v, %v", get, err)
	}
}

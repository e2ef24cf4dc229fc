package mvcc

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// etcd's KV requests, with etcd's semantics, over a TxnWrite (for the
// applier) or the Store (for reads outside raft). The server validates
// requests first (empty keys, sizes, CheckTxn); these functions assume
// that, and fill in each response's header revision only.

var (
	// ErrKeyNotFound is a put with ignore_value or ignore_lease of a key
	// that does not exist (etcd's "etcdserver: key not found").
	ErrKeyNotFound = errors.New("mvcc: key not found")
	// ErrDuplicateKey is a txn that writes one key twice in a branch
	// (etcd's "etcdserver: duplicate key given in txn request").
	ErrDuplicateKey = errors.New("mvcc: duplicate key given in txn request")
)

// reader is what a range reads through: a TxnWrite, or the store at its
// current revision.
type reader interface {
	Range(key, end []byte, opts RangeOptions) (RangeResult, error)
}

// RangeRequest answers a read outside raft (serializable, or linearizable
// after a ReadIndex round).
func (s *Store) RangeRequest(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	s.metrics.ranges.Inc()
	return rangeRequest(s, req)
}

// Range answers a RangeRequest in the transaction.
func (tw *TxnWrite) RangeRequest(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	tw.ops.ranges++
	return rangeRequest(tw, req)
}

func rangeRequest(r reader, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	// Sorting by anything but the key, or filtering by revision, needs
	// every key before the limit applies; otherwise read one more than the
	// limit to learn whether there are more.
	filtered := req.MinModRevision != 0 || req.MaxModRevision != 0 ||
		req.MinCreateRevision != 0 || req.MaxCreateRevision != 0
	order := req.SortOrder
	if req.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if req.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE // keys come in ascending order
	}
	// As etcd: the limit is lifted for the request's own sort order, not
	// the one implied by a sort target, so a target without an order
	// sorts only the first limit+1 keys.
	limit := req.Limit
	if req.SortOrder != pb.RangeRequest_NONE || filtered {
		limit = 0
	}
	if limit > 0 {
		limit++
	}
	res, err := r.Range(req.Key, req.RangeEnd, RangeOptions{Rev: req.Revision, Limit: limit, CountOnly: req.CountOnly})
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: res.Rev}}
	if err != nil {
		return resp, err
	}
	kvs := res.KVs
	if filtered {
		kvs = filterKVs(kvs, req)
	}
	if order != pb.RangeRequest_NONE {
		sortKVs(kvs, req.SortTarget, order)
	}
	if req.Limit > 0 && int64(len(kvs)) > req.Limit {
		kvs = kvs[:req.Limit]
		resp.More = true
	}
	if req.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	resp.Count = res.Count
	return resp, nil
}

func filterKVs(kvs []*mvccpb.KeyValue, req *pb.RangeRequest) []*mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		switch {
		case req.MinModRevision != 0 && kv.ModRevision < req.MinModRevision:
		case req.MaxModRevision != 0 && kv.ModRevision > req.MaxModRevision:
		case req.MinCreateRevision != 0 && kv.CreateRevision < req.MinCreateRevision:
		case req.MaxCreateRevision != 0 && kv.CreateRevision > req.MaxCreateRevision:
		default:
			out = append(out, kv)
		}
	}
	return out
}

// sortKVs sorts as etcd does: sort.Sort on the target (ties in an order
// that depends only on the input, which is in key order), reversed for
// DESCEND.
func sortKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) {
	var less func(a, b *mvccpb.KeyValue) bool
	switch target {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return
	}
	var data sort.Interface = kvSorter{kvs, less}
	if order == pb.RangeRequest_DESCEND {
		data = sort.Reverse(data)
	}
	sort.Sort(data)
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }

// PutRequest applies a put in the transaction. It keeps req's key and
// value (see put): the caller must not modify them afterwards.
func (tw *TxnWrite) PutRequest(req *pb.PutRequest) (*pb.PutResponse, error) {
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	value, lease := req.Value, req.Lease
	var prev *mvccpb.KeyValue
	tw.ops.puts++
	tw.ops.putBytes += len(req.Key) + len(req.Value)
	if req.PrevKv || req.IgnoreValue || req.IgnoreLease {
		tw.ops.ranges++ // as etcd counts the read of the previous value
		res, err := tw.Range(req.Key, nil, RangeOptions{})
		if err != nil {
			return resp, err
		}
		if len(res.KVs) == 1 {
			prev = res.KVs[0]
		}
	}
	if req.IgnoreValue || req.IgnoreLease {
		if prev == nil {
			resp.Header.Revision = tw.Rev()
			return resp, ErrKeyNotFound
		}
	}
	if !req.IgnoreLease && !tw.leaseExists(req.Lease) {
		resp.Header.Revision = tw.Rev()
		return resp, ErrLeaseNotFound
	}
	if req.IgnoreValue || req.IgnoreLease {
		if req.IgnoreValue {
			value = prev.Value
		}
		if req.IgnoreLease {
			lease = prev.Lease
		}
	}
	tw.put(req.Key, value, lease)
	if req.PrevKv {
		resp.PrevKv = prev
	}
	resp.Header.Revision = tw.Rev()
	return resp, nil
}

// DeleteRangeRequest applies a delete in the transaction.
func (tw *TxnWrite) DeleteRangeRequest(req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	tw.ops.deletes++
	deleted, err := tw.DeleteRange(req.Key, req.RangeEnd)
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: tw.Rev()}}
	if err != nil {
		return resp, err
	}
	resp.Deleted = int64(len(deleted))
	if req.PrevKv {
		resp.PrevKvs = deleted
	}
	return resp, nil
}

// TxnRequest applies a txn in the transaction, as etcd does: every
// compare on the path the txn takes, nested ones included, is evaluated
// against the state before any op runs; the ops on that path are then
// checked against that same state (a put that keeps the value or lease of
// a key that does not exist, a range at a revision that is compacted or
// to come); and only if all pass do they run, in order, each seeing the
// writes before it, all at the transaction's one revision. A txn that
// fails its check writes nothing. Its puts keep their keys and values,
// as PutRequest does.
func (tw *TxnWrite) TxnRequest(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	path, err := tw.txnPath(req, nil)
	if err != nil {
		return &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: tw.Rev()}}, err
	}
	if err := tw.check(req, path); err != nil {
		return &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: tw.Rev()}}, err
	}
	resp, _, err := tw.runTxn(req, path)
	if err != nil {
		// The check passed, so this is a bug or a backend failure; the
		// transaction may be half applied, and the caller must not commit
		// it.
		return resp, fmt.Errorf("mvcc: txn failed after its check: %v", err) // not a refusal: never committed
	}
	resp.Header = &pb.ResponseHeader{Revision: tw.Rev()}
	return resp, nil
}

// ReadTxnRequest runs a txn whose every op, nested ones included, is a
// range, against the current revision, without blocking writes (etcd
// serves such txns the same way). A txn that writes fails with
// ErrWriteInReadTxn.
//
// A compaction that begins while it runs may pass the revisions it reads
// (the current one, once written past, or one a range names) and cut
// what the index still holds of them (see treeIndex.rangeCount): the txn
// is then run again, the third time holding the index's compactions off,
// so that it cannot be cut (writes go on). A range of a revision
// compacted by then fails its check, as in any txn. The metrics count the
// run answered.
func (s *Store) ReadTxnRequest(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	for tries := 1; ; tries++ {
		if tries == 3 {
			defer s.index.holdCompactions()()
		}
		resp, compacted, ops, err := s.readTxnOnce(req)
		if tries == 3 || s.CompactRev() == compacted {
			s.metrics.add(ops)
			return resp, err
		}
	}
}

// readTxnOnce is ReadTxnRequest's run; compacted is the compaction
// revision when it began, ops what it did.
func (s *Store) readTxnOnce(req *pb.TxnRequest) (_ *pb.TxnResponse, compacted int64, _ opCounts, _ error) {
	s.mu.RLock()
	current, compacted := s.mu.currentRev, s.mu.compactRev
	view := s.views.acquire(s.b, current)
	s.mu.RUnlock()
	defer s.views.release(view)
	// A TxnWrite with no batch: its reads see the view at current.
	tw := &TxnWrite{s: s, view: view.view, rev: current + 1, compact: compacted}
	path, err := tw.txnPath(req, nil)
	if err == nil {
		err = tw.check(req, path)
	}
	if err != nil {
		return &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: current}}, compacted, tw.ops, err
	}
	resp, _, err := tw.runTxn(req, path)
	resp.Header = &pb.ResponseHeader{Revision: current}
	return resp, compacted, tw.ops, err
}

// txnPath appends to path, in depth-first order, which branch each txn on
// the path takes.
func (tw *TxnWrite) txnPath(req *pb.TxnRequest, path []bool) ([]bool, error) {
	ok, err := tw.compares(req.Compare)
	if err != nil {
		return nil, err
	}
	path = append(path, ok)
	for _, op := range branch(req, ok) {
		if t := op.GetRequestTxn(); t != nil {
			if path, err = tw.txnPath(t, path); err != nil {
				return nil, err
			}
		}
	}
	return path, nil
}

func branch(req *pb.TxnRequest, ok bool) []*pb.RequestOp {
	if ok {
		return req.Success
	}
	return req.Failure
}

// pathCheck is what checkPath carries along the path.
type pathCheck struct {
	// fromKeyDels are the keys of the from-key deletes on the path so
	// far, in the order they run.
	fromKeyDels [][]byte
	// putAfterDelete: a put with ignore_value or ignore_lease runs after
	// a from-key delete that removes its key.
	putAfterDelete bool
}

// check checks the ops on the path of req before any runs.
//
// A put with ignore_value or ignore_lease needs its key to exist when it
// runs. The check reads the state before the txn, so it also requires
// that no from-key delete before the put on the path removes the key:
// etcd's duplicate-key check cannot see that case (it reads a from-key
// delete as an empty interval), and etcd panics applying such a txn.
// Here it fails cleanly with ErrKeyNotFound, having written nothing, but
// only once every other check passed: where another op fails its check,
// etcd refuses with that op's error, and so does Cairn.
func (tw *TxnWrite) check(req *pb.TxnRequest, path []bool) error {
	var pc pathCheck
	if _, err := tw.checkPath(req, path, &pc); err != nil {
		return err
	}
	if pc.putAfterDelete {
		return ErrKeyNotFound
	}
	return nil
}

// checkPath checks the ops on the path of req (path[0] is req's branch)
// and returns how much of path it used.
func (tw *TxnWrite) checkPath(req *pb.TxnRequest, path []bool, pc *pathCheck) (int, error) {
	used := 1
	for _, op := range branch(req, path[0]) {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestDeleteRange:
			if d := r.RequestDeleteRange; len(d.RangeEnd) == 1 && d.RangeEnd[0] == 0 {
				pc.fromKeyDels = append(pc.fromKeyDels, d.Key)
			}
		case *pb.RequestOp_RequestPut:
			if p := r.RequestPut; p.IgnoreValue || p.IgnoreLease {
				tw.ops.ranges++
				res, err := tw.Range(p.Key, nil, RangeOptions{CountOnly: true})
				if err != nil {
					return 0, err
				}
				if res.Count == 0 {
					return 0, ErrKeyNotFound
				}
				for _, d := range pc.fromKeyDels {
					if bytes.Compare(p.Key, d) >= 0 {
						pc.putAfterDelete = true
					}
				}
			}
			if p := r.RequestPut; !p.IgnoreLease && !tw.leaseExists(p.Lease) {
				return 0, ErrLeaseNotFound
			}
		case *pb.RequestOp_RequestRange:
			switch rev := r.RequestRange.Revision; {
			case rev > tw.Rev():
				return 0, ErrFutureRev
			case rev > 0 && rev < tw.compact:
				return 0, ErrCompacted
			}
		case *pb.RequestOp_RequestTxn:
			n, err := tw.checkPath(r.RequestTxn, path[used:], pc)
			if err != nil {
				return 0, err
			}
			used += n
		}
	}
	return used, nil
}

// runTxn runs the ops on the path of req and returns how much of path it
// used.
func (tw *TxnWrite) runTxn(req *pb.TxnRequest, path []bool) (*pb.TxnResponse, int, error) {
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: path[0]}
	used := 1
	for _, op := range branch(req, path[0]) {
		var r *pb.ResponseOp
		var err error
		if t := op.GetRequestTxn(); t != nil {
			// As etcd: only the outermost txn's header is filled in.
			var sub *pb.TxnResponse
			var n int
			sub, n, err = tw.runTxn(t, path[used:])
			used += n
			r = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
		} else {
			r, err = tw.op(op)
		}
		if err != nil {
			return resp, used, err
		}
		resp.Responses = append(resp.Responses, r)
	}
	return resp, used, nil
}

func (tw *TxnWrite) op(op *pb.RequestOp) (*pb.ResponseOp, error) {
	if _, isRange := op.Request.(*pb.RequestOp_RequestRange); !isRange && tw.batch == nil {
		return nil, ErrWriteInReadTxn
	}
	switch r := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		resp, err := tw.RangeRequest(r.RequestRange)
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: resp}}, err
	case *pb.RequestOp_RequestPut:
		resp, err := tw.PutRequest(r.RequestPut)
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: resp}}, err
	case *pb.RequestOp_RequestDeleteRange:
		resp, err := tw.DeleteRangeRequest(r.RequestDeleteRange)
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: resp}}, err
	}
	return nil, fmt.Errorf("mvcc: unknown txn op %T", op.Request)
}

// compares reports whether every compare holds.
func (tw *TxnWrite) compares(cs []*pb.Compare) (bool, error) {
	for _, c := range cs {
		tw.ops.ranges++ // etcd counts each compare's read as a range
		var ok bool
		var err error
		if c.Target != pb.Compare_VALUE && c.Target != pb.Compare_LEASE {
			ok = tw.compareIndex(c)
		} else {
			ok, err = tw.compareValues(c)
		}
		if !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// compareValues evaluates a compare from the keys' whole KeyValues, as
// etcd does every compare: what a value or lease compare needs.
func (tw *TxnWrite) compareValues(c *pb.Compare) (bool, error) {
	res, err := tw.Range(c.Key, c.RangeEnd, RangeOptions{})
	if err != nil {
		return false, err
	}
	if len(res.KVs) == 0 {
		// A missing key has no value to compare; its version,
		// revisions and lease compare as zero.
		return c.Target != pb.Compare_VALUE && compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range res.KVs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

// compareIndex evaluates a compare of a version or a revision, which the
// index holds for every key (this transaction's own writes included): no
// value is read from the backend, where etcd reads each key's whole
// KeyValue. Kubernetes compares every write's key by its mod revision, and
// so do etcd's STM transactions, for each key they read.
func (tw *TxnWrite) compareIndex(c *pb.Compare) bool {
	found, ok := false, true
	tw.s.index.rangeKeys(c.Key, c.RangeEnd, tw.Rev(), func(e indexEntry) bool {
		found = true
		ok = compareKV(c, &mvccpb.KeyValue{ModRevision: e.mod.Main, CreateRevision: e.created, Version: e.ver})
		return ok
	})
	if !found {
		// As a missing key in compares: zero.
		return compareKV(c, &mvccpb.KeyValue{})
	}
	return ok
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case pb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case pb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true // as etcd, for a result it does not know
}

// CheckTxn applies etcd's rule that a txn writes each key at most once on
// any path through it: within a branch, no two puts of a key and no put
// inside a delete's range, nested txns included; the two branches of a
// nested txn exclude each other, so they may write the same key.
//
// Like etcd's, the check reads a from-key delete as an empty interval (see
// deletes); the one txn shape that lets through which would fail half
// way, etcd's panic, is refused when it runs instead (see checkPath).
func CheckTxn(req *pb.TxnRequest) error {
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		if _, _, err := checkOps(ops); err != nil {
			return err
		}
	}
	return nil
}

// span is a deleted key range: [key, end), a single key if end is empty,
// or from key on if end is "\x00".
type span struct{ key, end []byte }

func (s span) contains(k []byte) bool {
	switch {
	case len(s.end) == 0:
		return bytes.Equal(k, s.key)
	case len(s.end) == 1 && s.end[0] == 0:
		return bytes.Compare(k, s.key) >= 0
	}
	return bytes.Compare(k, s.key) >= 0 && bytes.Compare(k, s.end) < 0
}

// deletes reports whether a delete in dels covers k, for CheckTxn. As in
// etcd's check, a delete from a key on (end "\x00") covers nothing: etcd
// reads it as the empty interval [key, "\x00"), so a txn that also puts a
// key after key is accepted, and so it is here.
func deletes(k []byte, dels []span) bool {
	for _, d := range dels {
		if len(d.end) == 1 && d.end[0] == 0 {
			continue
		}
		if d.contains(k) {
			return true
		}
	}
	return false
}

// checkOps checks one branch and returns the keys it puts and the ranges
// it deletes, nested txns included.
func checkOps(ops []*pb.RequestOp) (map[string]bool, []span, error) {
	var dels []span
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			dels = append(dels, span{d.Key, d.RangeEnd})
		}
	}
	puts := map[string]bool{}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkOps(t.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkOps(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if puts[k] || deletes([]byte(k), dels) {
				return nil, nil, ErrDuplicateKey
			}
		}
		for k := range putsElse {
			if (puts[k] && !putsThen[k]) || deletes([]byte(k), dels) {
				return nil, nil, ErrDuplicateKey
			}
		}
		for k := range putsThen {
			puts[k] = true
		}
		for k := range putsElse {
			puts[k] = true
		}
		dels = append(append(dels, delsThen...), delsElse...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		if puts[string(p.Key)] || deletes(p.Key, dels) {
			return nil, nil, ErrDuplicateKey
		}
		puts[string(p.Key)] = true
	}
	return puts, dels, nil
}

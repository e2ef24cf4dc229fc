package membersim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// numKeys and numLeases are small, so that operations collide.
// numClients bounds the operations in progress at once: each concurrent
// pair doubles the orders the linearizability checker may have to try.
const (
	numKeys    = 4
	numLeases  = 3
	numClients = 6
)

func keyName(k int) string { return fmt.Sprintf("k%d", k) }

type opKind int

const (
	opPut opKind = iota
	opDelete
	opTxn // if value(key) == expect then put(key2, value) else get(key2)
	opGet // linearizable
	opGrant
	opRevoke
	opCompact
)

// input is an operation as the client asked it.
type input struct {
	kind   opKind
	key    int
	key2   int
	value  string
	expect string
	lease  int64
	ttl    int64 // grant, in seconds
	rev    int64 // compaction
}

// output is what the client was told. unknown: the client gave up or its
// member crashed; the operation may or may not have taken effect.
type output struct {
	unknown   bool
	err       string
	rev       int64 // header revision
	deleted   int64
	succeeded bool
	value     string // get, or the txn's else branch
	mod       int64
}

// unknownReturn is the return time of an operation whose client never
// heard: after everything.
const unknownReturn = 1 << 62

type op struct {
	id       int
	member   *simMember
	reqID    uint64
	in       input
	call     int64
	deadline uint64
	// expiry: a revoke the leader's lease duty proposed, not a client's.
	expiry bool
}

// clients issue operations and keep the history the checks read.
type clients struct {
	nextID  int
	nextReq uint64
	history []porcupine.Operation
	// unknownOps are the operations of history whose outcome the client
	// never heard, by index in history.
	unknownOps map[int]*op
	// serializable are serializable reads: checked against the final
	// store (an old revision must read as it was), not for recency.
	serializable []serialRead
	// acked are acknowledged writes (puts), checked never lost.
	acked []ackedPut
	live  map[int]*op
}

type serialRead struct {
	key       int
	rev       int64
	value     string
	mod       int64
	memberTag string
}

type ackedPut struct {
	key   int
	value string
	rev   int64
}

// clientOps counts the clients' operations in progress (lease duty
// revokes aside).
func (c *clients) clientOps() int {
	n := 0
	for _, o := range c.live {
		if !o.expiry {
			n++
		}
	}
	return n
}

func (c *clients) init() { c.live, c.unknownOps = map[int]*op{}, map[int]*op{} }

// clientStep starts an operation on a random member.
func (s *Sim) clientStep() {
	m := s.pick(s.up())
	c := &s.clients
	if m == nil || !m.serving() || c.clientOps() >= numClients {
		return
	}
	c.nextID++
	o := &op{id: c.nextID, member: m, deadline: s.now + opTimeoutTicks}
	in := input{key: s.rng.IntN(numKeys), key2: s.rng.IntN(numKeys), value: fmt.Sprintf("v%d", c.nextID)}
	switch r := s.rng.IntN(100); {
	case r < 35:
		in.kind = opPut
		if s.rng.IntN(4) == 0 {
			in.lease = int64(1 + s.rng.IntN(numLeases))
		}
	case r < 45:
		in.kind = opDelete
	case r < 55:
		in.kind = opTxn
		in.expect = fmt.Sprintf("v%d", c.nextID-1-s.rng.IntN(5))
	case r < 80:
		in.kind = opGet
	case r < 87:
		s.serializableRead(m, in.key)
		return
	case r < 92:
		in.kind = opGrant
		in.lease = int64(1 + s.rng.IntN(numLeases))
		// Some expire during the run (the leader revokes them),
		// some outlive it.
		in.ttl = []int64{2, 5, 3600}[s.rng.IntN(3)]
	case r < 97:
		in.kind = opRevoke
		in.lease = int64(1 + s.rng.IntN(numLeases))
	default:
		in.kind = opCompact
		var rev, compacted int64
		m.st.Applier.View(func(st *mvcc.Store) error { rev, compacted = st.Rev(), st.CompactRev(); return nil })
		if rev <= compacted+1 {
			return
		}
		in.rev = compacted + 1 + s.rng.Int64N(rev-compacted)
	}
	o.in = in
	c.nextReq++
	o.reqID = c.nextReq
	o.call = s.tick()
	s.stats.Ops++
	if in.kind == opGet {
		ctx := binary.BigEndian.AppendUint64(nil, o.reqID)
		if err := m.d.Raft().ReadIndex(ctx); err != nil {
			s.stats.OpsFailed++
			return
		}
		m.reads[o.reqID] = o
		c.live[o.id] = o
		s.handleReady(m)
		return
	}
	data, err := proto.Marshal(request(o))
	if err != nil {
		s.failf("marshal: %v", err)
		return
	}
	if err := m.d.Raft().Propose(data); err != nil {
		// Refused at once: it is in no log.
		s.tracef("%s refuses op %d: %v", m.name, o.id, err)
		s.stats.OpsFailed++
		return
	}
	m.pending[o.reqID] = o
	c.live[o.id] = o
	s.handleReady(m)
}

func readID(ctx []byte) uint64 {
	if len(ctx) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(ctx)
}

// request is the raft request of o, as the server builds it.
func request(o *op) *pb.InternalRaftRequest {
	r := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: o.reqID}}
	in := o.in
	switch in.kind {
	case opPut:
		r.Put = &pb.PutRequest{Key: []byte(keyName(in.key)), Value: []byte(in.value), Lease: in.lease}
	case opDelete:
		r.DeleteRange = &pb.DeleteRangeRequest{Key: []byte(keyName(in.key))}
	case opTxn:
		r.Txn = &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte(keyName(in.key)), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_Value{Value: []byte(in.expect)}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: []byte(keyName(in.key2)), Value: []byte(in.value)}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{
				Key: []byte(keyName(in.key2))}}}},
		}
	case opGrant:
		r.LeaseGrant = &pb.LeaseGrantRequest{ID: in.lease, TTL: in.ttl}
	case opRevoke:
		r.LeaseRevoke = &pb.LeaseRevokeRequest{ID: in.lease}
	case opCompact:
		r.Compaction = &pb.CompactionRequest{Revision: in.rev}
	}
	return r
}

// complete ends o with the result its member applied.
func (c *clients) complete(s *Sim, o *op, res apply.Result) {
	delete(c.live, o.id)
	s.stats.OpsAcked++
	c.record(o, c.outputOf(s, o, res, true), s.tick())
}

// outputOf is what a client is told of res; acked notes acknowledged
// puts, which the final check looks for.
func (c *clients) outputOf(s *Sim, o *op, res apply.Result, acked bool) output {
	out := output{}
	if res.Err != nil {
		out.err = errClass(res.Err)
	}
	switch r := res.Resp.(type) {
	case *pb.PutResponse:
		out.rev = r.Header.Revision
		if acked {
			c.acked = append(c.acked, ackedPut{key: o.in.key, value: o.in.value, rev: out.rev})
		}
	case *pb.DeleteRangeResponse:
		out.rev, out.deleted = r.Header.Revision, r.Deleted
	case *pb.TxnResponse:
		out.rev, out.succeeded = r.Header.Revision, r.Succeeded
		if !r.Succeeded {
			if kvs := r.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				out.value, out.mod = string(kvs[0].Value), kvs[0].ModRevision
			}
		} else if acked {
			c.acked = append(c.acked, ackedPut{key: o.in.key2, value: o.in.value, rev: out.rev})
		}
	case *pb.LeaseRevokeResponse:
		out.rev = r.Header.Revision
	case *pb.CompactionResponse:
		s.stats.Compactions++
	case *pb.LeaseGrantResponse, nil:
	default:
		s.failf("op %d: unexpected response %T", o.id, r)
	}
	return out
}

// errClass names the refusals the model knows.
func errClass(err error) string {
	switch {
	case errors.Is(err, lease.ErrNotFound), errors.Is(err, mvcc.ErrLeaseNotFound):
		return "lease not found"
	case errors.Is(err, lease.ErrExists):
		return "lease exists"
	case errors.Is(err, mvcc.ErrCompacted):
		return "compacted"
	case errors.Is(err, mvcc.ErrFutureRev):
		return "future revision"
	}
	return err.Error()
}

func (c *clients) record(o *op, out output, ret int64) {
	if o.in.kind == opCompact {
		// Compactions change no revision and no latest value: the
		// model has nothing to check of them.
		return
	}
	if out.unknown {
		c.unknownOps[len(c.history)] = o
	}
	c.history = append(c.history, porcupine.Operation{ClientId: o.id, Input: o.in, Call: o.call, Output: out, Return: ret})
}

// unknown ends o with an unknown outcome: it may still take effect, at any
// time after its call.
func (c *clients) unknown(o *op, _ int64) {
	delete(c.live, o.id)
	if o.in.kind == opGet {
		return
	}
	c.record(o, output{unknown: true}, unknownReturn)
}

// abandon drops a read whose client gave up: a read has no effect.
func (c *clients) abandon(o *op) { delete(c.live, o.id) }

// expire gives up on operations past their deadline.
func (c *clients) expire(s *Sim) {
	for _, id := range sortedKeys(c.live) {
		o := c.live[id]
		if s.now < o.deadline {
			continue
		}
		s.stats.OpsUnknown++
		if m := o.member; m.up {
			delete(m.pending, o.reqID)
			delete(m.reads, o.reqID)
			m.readyReads = slices.DeleteFunc(m.readyReads, func(r readyRead) bool { return r.o == o })
		}
		if o.in.kind == opGet {
			c.abandon(o)
		} else {
			c.unknown(o, 0)
		}
	}
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// serveReads answers m's linearizable reads whose read index is applied,
// reading m's store, as the server's read path does.
func (s *Sim) serveReads(m *simMember) {
	keep := m.readyReads[:0]
	for _, r := range m.readyReads {
		if m.applied < r.index {
			keep = append(keep, r)
			continue
		}
		o := r.o
		out := output{}
		var res mvcc.RangeResult
		err := m.st.Applier.View(func(st *mvcc.Store) error {
			var err error
			res, err = st.Range([]byte(keyName(o.in.key)), nil, mvcc.RangeOptions{})
			return err
		})
		if err != nil {
			s.failf("%s: read: %v", m.name, err)
			return
		}
		out.rev = res.Rev
		if len(res.KVs) > 0 {
			out.value, out.mod = string(res.KVs[0].Value), res.KVs[0].ModRevision
		}
		delete(s.clients.live, o.id)
		s.stats.Reads++
		s.clients.record(o, out, s.tick())
	}
	m.readyReads = keep
}

// serializableRead reads m's store at once, as a serializable Range does.
func (s *Sim) serializableRead(m *simMember, key int) {
	var res mvcc.RangeResult
	err := m.st.Applier.View(func(st *mvcc.Store) error {
		var err error
		res, err = st.Range([]byte(keyName(key)), nil, mvcc.RangeOptions{})
		return err
	})
	if err != nil {
		s.failf("%s: serializable read: %v", m.name, err)
		return
	}
	r := serialRead{key: key, rev: res.Rev, memberTag: m.name}
	if len(res.KVs) > 0 {
		r.value, r.mod = string(res.KVs[0].Value), res.KVs[0].ModRevision
	}
	s.stats.SerializableReads++
	s.clients.serializable = append(s.clients.serializable, r)
}

// state is the model's view of the store: etcd's KV as clients see it,
// revisions included.
type state struct {
	rev   int64
	value [numKeys]string
	mod   [numKeys]int64
	lease [numKeys]int64
	live  [numLeases + 1]bool
}

// kvModel is etcd's KV for porcupine. Every write that changes something
// makes one new revision; reads report the current revision and value.
var kvModel = porcupine.Model{
	Init: func() any { return state{rev: 1} },
	Step: func(st0, in0, out0 any) (bool, any) {
		st, in, out := st0.(state), in0.(input), out0.(output)
		next := st
		var want output
		switch in.kind {
		case opPut:
			if in.lease != 0 && !st.live[in.lease] {
				want.err = "lease not found"
				want.rev = st.rev
				break
			}
			next.rev++
			next.value[in.key], next.mod[in.key], next.lease[in.key] = in.value, next.rev, in.lease
			want.rev = next.rev
		case opDelete:
			if st.value[in.key] != "" {
				next.rev++
				next.value[in.key], next.mod[in.key], next.lease[in.key] = "", 0, 0
				want.deleted = 1
			}
			want.rev = next.rev
		case opTxn:
			if st.value[in.key] == in.expect {
				next.rev++
				next.value[in.key2], next.mod[in.key2], next.lease[in.key2] = in.value, next.rev, 0
				want.succeeded = true
			} else {
				want.value, want.mod = st.value[in.key2], st.mod[in.key2]
			}
			want.rev = next.rev
		case opGet:
			want.rev, want.value, want.mod = st.rev, st.value[in.key], st.mod[in.key]
		case opGrant:
			// A grant's response carries no revision.
			if st.live[in.lease] {
				want.err = "lease exists"
			}
			next.live[in.lease] = true
		case opRevoke:
			if !st.live[in.lease] {
				want.err = "lease not found"
				break
			}
			next.live[in.lease] = false
			deleted := false
			for k := range numKeys {
				if st.value[k] != "" && st.lease[k] == in.lease {
					next.value[k], next.mod[k], next.lease[k] = "", 0, 0
					deleted = true
				}
			}
			if deleted {
				next.rev++
			}
			want.rev = next.rev
		}
		if out.unknown {
			return true, next
		}
		if want.err != "" || out.err != "" {
			// A refusal reports no revision.
			return want.err == out.err, next
		}
		return want == out, next
	},
	Hash: func(st0 any) uint64 {
		st := st0.(state)
		h := fnv.New64a()
		fmt.Fprint(h, st.rev, st.value, st.lease, st.live)
		return h.Sum64()
	},
	DescribeOperation: func(in0, out0 any) string {
		return fmt.Sprintf("%+v -> %+v", in0, out0)
	},
	DescribeState: func(st any) string { return fmt.Sprintf("%+v", st) },
}

// resolveUnknown settles the operations whose client never heard, once
// the cluster has converged and nothing more will be applied: one that
// some member applied gets the outcome it had there, and returns when
// the first member applied it (it took effect by then); one that no
// member applied never took effect, and leaves the history. Left open,
// each would multiply the orders the checker must try.
func (c *clients) resolveUnknown(s *Sim) {
	var kept []porcupine.Operation
	for i, h := range c.history {
		o, ok := c.unknownOps[i]
		if !ok {
			kept = append(kept, h)
			continue
		}
		oc, applied := s.requests[o.reqID]
		if !applied {
			continue
		}
		h.Output = c.outputOf(s, o, oc.res, false)
		h.Return = oc.at
		kept = append(kept, h)
	}
	c.history, c.unknownOps = kept, nil
}

// checkLinearizable checks the history with porcupine.
func (c *clients) checkLinearizable(s *Sim) {
	c.resolveUnknown(s)
	res := porcupine.CheckOperationsTimeout(kvModel, c.history, 15*time.Second)
	if res != porcupine.Ok {
		// With a trace (CAIRN_MEMBERSIM_SEED), the history to study.
		for _, o := range c.history {
			s.tracef("history: client %d [%d, %d] %+v -> %+v", o.ClientId, o.Call, o.Return, o.Input, o.Output)
		}
	}
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		s.failf("the linearizability check of %d operations timed out", len(c.history))
	default:
		s.failf("the history of %d operations is not linearizable", len(c.history))
	}
}

// resultDigest is what every member must compute alike for an entry.
func resultDigest(e raftpb.Entry, res apply.Result) string {
	d := fmt.Sprintf("id=%x", res.ID)
	if res.Err != nil {
		d += " err=" + res.Err.Error()
	}
	switch r := res.Resp.(type) {
	case *pb.PutResponse:
		d += fmt.Sprintf(" put@%d", r.Header.Revision)
	case *pb.DeleteRangeResponse:
		d += fmt.Sprintf(" del %d@%d", r.Deleted, r.Header.Revision)
	case *pb.TxnResponse:
		d += fmt.Sprintf(" txn %v@%d", r.Succeeded, r.Header.Revision)
	case *pb.LeaseRevokeResponse:
		d += fmt.Sprintf(" revoke@%d", r.Header.Revision)
	case *pb.CompactionResponse:
		d += " compact"
	case *pb.LeaseGrantResponse:
		d += fmt.Sprintf(" grant %x", r.ID)
	}
	return d
}

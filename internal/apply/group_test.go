package apply

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// groupCorpus is n entries from index 2 on, of every kind an applier
// meets: puts (some with leases, some asking for the previous value),
// deletes of keys and ranges, txns whose compares read what the entries
// just before them wrote, lease grants and revokes, compactions (some
// refused), a new leader's empty entries, and NOSPACE alarms that refuse
// the writes between their raising and their clearing.
func groupCorpus(t *testing.T, rng *rand.Rand, n int) []raftpb.Entry {
	key := func() []byte { return fmt.Appendf(nil, "k%d", rng.IntN(10)) }
	var leases []int64
	nextLease := int64(100)
	var es []raftpb.Entry
	for i := range n {
		index := uint64(i + 2)
		var r *pb.InternalRaftRequest
		switch p := rng.IntN(100); {
		case p < 35:
			put := &pb.PutRequest{Key: key(), Value: fmt.Appendf(nil, "v%d", index), PrevKv: rng.IntN(2) == 0}
			if len(leases) > 0 && rng.IntN(4) == 0 {
				put.Lease = leases[rng.IntN(len(leases))]
			}
			r = &pb.InternalRaftRequest{Put: put}
		case p < 45:
			del := &pb.DeleteRangeRequest{Key: key(), PrevKv: rng.IntN(2) == 0}
			if rng.IntN(2) == 0 {
				del.RangeEnd = fmt.Appendf(nil, "k%d", rng.IntN(10))
			}
			r = &pb.InternalRaftRequest{DeleteRange: del}
		case p < 75:
			k := key()
			cmp := &pb.Compare{Key: k, Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_Value{Value: fmt.Appendf(nil, "v%d", index-1-uint64(rng.IntN(3)))}}
			if rng.IntN(2) == 0 {
				cmp = &pb.Compare{Key: k, Target: pb.Compare_VERSION, Result: pb.Compare_GREATER,
					TargetUnion: &pb.Compare_Version{Version: int64(rng.IntN(3))}}
			}
			then := []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}}},
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: fmt.Appendf(nil, "v%d", index), PrevKv: true}}},
			}
			if rng.IntN(3) == 0 {
				then = append(then, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{
					RequestDeleteRange: &pb.DeleteRangeRequest{Key: key(), PrevKv: true}}})
			}
			otherwise := []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k}}}}
			r = &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Compare: []*pb.Compare{cmp}, Success: then, Failure: otherwise}}
		case p < 82:
			r = &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: nextLease, TTL: 100}}
			leases = append(leases, nextLease)
			nextLease++
		case p < 85 && len(leases) > 0:
			j := rng.IntN(len(leases))
			r = &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: leases[j]}}
			leases = append(leases[:j], leases[j+1:]...)
		case p < 89:
			r = &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: int64(rng.IntN(i + 2))}}
		case p < 92:
			es = append(es, raftpb.Entry{Index: index, Term: 1, Type: raftpb.EntryNormal})
			continue
		case p < 96:
			action := pb.AlarmRequest_ACTIVATE
			if rng.IntN(2) == 0 {
				action = pb.AlarmRequest_DEACTIVATE
			}
			r = alarmReq(action, 1, pb.AlarmType_NOSPACE)
		default:
			r = &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: key(), Value: []byte("x")}}
		}
		r.Header = &pb.RequestHeader{ID: index}
		e := normalEntry(t, r)
		e.Index = index
		es = append(es, e)
	}
	return es
}

// resultString is a result as the tests compare it.
func resultString(res Result) string {
	resp := fmt.Sprint(res.Resp)
	if m, ok := res.Resp.(proto.Message); ok {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		resp = fmt.Sprintf("%x %v", b, err)
	}
	return fmt.Sprintf("id %d index %d op %s err %v resp %s", res.ID, res.Index, res.Op, res.Err, resp)
}

// watchAll follows every key of a's store from the next revision, reading
// as the events come, and returns a function that waits for the events
// up to rev and returns them, one line each.
func watchAll(t *testing.T, a *Applier) (upTo func(rev int64) []string) {
	t.Helper()
	st := a.Watchable().NewWatchStream()
	if _, err := st.Watch(mvcc.WatchOptions{Key: []byte{0}, End: []byte{0}, PrevKV: true}); err != nil {
		t.Fatal(err)
	}
	type progress struct {
		events []string
		last   int64
		err    error
	}
	updates := make(chan progress, 1)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-readerDone
		st.Close()
	})
	go func() {
		defer close(readerDone)
		var p progress
		for {
			select {
			case r := <-st.Chan():
				st.Sent(r)
				if r.Canceled || r.CompactRevision != 0 {
					p.err = fmt.Errorf("watcher canceled (compacted at %d)", r.CompactRevision)
				}
				for _, ev := range r.Events {
					line := fmt.Sprintf("%v %s=%s@%d c%d v%d l%d", ev.Type, ev.Kv.Key, ev.Kv.Value,
						ev.Kv.ModRevision, ev.Kv.CreateRevision, ev.Kv.Version, ev.Kv.Lease)
					if ev.PrevKv != nil {
						line += fmt.Sprintf(" prev %s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
					}
					p.events = append(p.events, line)
					p.last = ev.Kv.ModRevision
				}
				select {
				case <-updates: // replaced by the newer
				default:
				}
				updates <- progress{events: slices.Clone(p.events), last: p.last, err: p.err}
			case <-stop:
				return
			}
		}
	}()
	return func(rev int64) []string {
		deadline := time.After(30 * time.Second)
		var p progress
		for p.last < rev {
			select {
			case p = <-updates:
				if p.err != nil {
					t.Fatal(p.err)
				}
			case <-deadline:
				t.Fatalf("watched up to revision %d, waiting for %d", p.last, rev)
			}
		}
		return p.events
	}
}

// history is every key's KeyValue at each revision from rev on, one line
// per revision.
func history(t *testing.T, a *Applier, from int64) string {
	t.Helper()
	var b strings.Builder
	err := a.View(func(s *mvcc.Store) error {
		for rev := max(from, s.CompactRev()); rev <= s.Rev(); rev++ {
			res, err := s.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{Rev: rev})
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%d:", rev)
			for _, kv := range res.KVs {
				fmt.Fprintf(&b, " %s=%s@%d/%d/%d/%d", kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease)
			}
			b.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ApplyEntries, which commits runs of writes in one batch, does exactly
// what applying the entries one by one does: the same result for every
// entry, the same store after every call (every entry's write readable
// when it returns), the same history of revisions, the same leases and
// the same watch events, in order. Runs of writes are cut by the entries
// of other kinds between them and by the chunks ApplyEntries is given;
// half the chunks hand over the proposer's requests. One seed per case.
func TestApplyEntriesMatchesOneByOne(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			es := groupCorpus(t, rng, 600)
			one, grouped := openApplier(t), openApplier(t)
			oneEvents, groupedEvents := watchAll(t, one), watchAll(t, grouped)
			groups := 0
			for len(es) > 0 {
				chunk := es[:min(len(es), 1+rng.IntN(60))]
				es = es[len(chunk):]
				var proposed func(raftpb.Entry) *pb.InternalRaftRequest
				if rng.IntN(2) == 0 {
					proposed = func(e raftpb.Entry) *pb.InternalRaftRequest {
						r := &pb.InternalRaftRequest{}
						if err := proto.Unmarshal(e.Data, r); err != nil {
							t.Fatal(err)
						}
						return r
					}
				}
				done, err := grouped.ApplyEntries(chunk, proposed)
				if err != nil {
					t.Fatal(err)
				}
				if len(done) != len(chunk) {
					t.Fatalf("%d entries applied of %d", len(done), len(chunk))
				}
				for i, e := range chunk {
					want, applied, err := one.Apply(e)
					if err != nil || !applied {
						t.Fatalf("entry %d one by one: applied %v, %v", e.Index, applied, err)
					}
					if d := done[i]; d.Entry.Index != e.Index || !d.Applied || resultString(d.Result) != resultString(want) {
						t.Fatalf("entry %d: grouped (applied %v)\n%s\none by one\n%s", e.Index, d.Applied,
							resultString(d.Result), resultString(want))
					}
				}
				if got, want := dumpState(t, grouped), dumpState(t, one); got != want {
					t.Fatalf("after entry %d: grouped\n%s\none by one\n%s", chunk[len(chunk)-1].Index, got, want)
				}
				groups++
			}
			if got, want := history(t, grouped, 1), history(t, one, 1); got != want {
				t.Fatalf("history: grouped\n%s\none by one\n%s", got, want)
			}
			if got, want := fmt.Sprint(grouped.Lessor().Leases()), fmt.Sprint(one.Lessor().Leases()); got != want {
				t.Fatalf("leases: grouped %s, one by one %s", got, want)
			}
			var rev int64
			_ = one.View(func(s *mvcc.Store) error { rev = s.Rev(); return nil })
			got, want := groupedEvents(rev), oneEvents(rev)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("events: grouped\n%s\none by one\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			t.Logf("%d calls, %d events, revision %d", groups, len(got), rev)
		})
	}
}

// A group's writes are not visible before its commit: a watcher of a
// key written in a group hears nothing while a later entry of the same
// group is being applied, and a read then sees the revision before the
// group. Here the txn of the group's second entry compares the value the
// first wrote, which only the group can see.
func TestWriteGroupInvisibleUntilCommit(t *testing.T) {
	a := openApplier(t)
	put := normalEntry(t, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}})
	put.Index = 2
	txn := normalEntry(t, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Value: []byte("2")}}}},
	}})
	txn.Index = 3
	seen := make(chan string, 1)
	proposed := func(e raftpb.Entry) *pb.InternalRaftRequest {
		if e.Index == 3 {
			// Applying the second entry: the first is in the group, not
			// yet committed. Read from another goroutine, as a client's
			// range would.
			go func() {
				var got string
				_ = a.View(func(s *mvcc.Store) error {
					res, err := s.Range([]byte("a"), nil, mvcc.RangeOptions{})
					got = fmt.Sprintf("rev %d count %d %v", res.Rev, res.Count, err)
					return nil
				})
				seen <- got
			}()
			if got := <-seen; got != "rev 1 count 0 <nil>" {
				t.Errorf("a read during the group: %s, want rev 1 count 0", got)
			}
		}
		return nil
	}
	done, err := a.ApplyEntries([]raftpb.Entry{put, txn}, proposed)
	if err != nil || len(done) != 2 {
		t.Fatalf("ApplyEntries: %d done, %v", len(done), err)
	}
	if resp, ok := done[1].Result.Resp.(*pb.TxnResponse); !ok || !resp.Succeeded || resp.Header.Revision != 3 {
		t.Fatalf("the txn reading the group's first write: %v", done[1].Result.Resp)
	}
	if got, want := dumpState(t, a), "index 3 rev 3 [a=1@2 b=2@3]"; got != want {
		t.Fatalf("after the group: %s, want %s", got, want)
	}
}

// ApplyEntries reuses its results' slice, but nothing of a call's results
// outlives the next call: a txn's range response (of a value as large as
// a request may be) or an entry's data would otherwise stay in memory as
// long as the member runs, past the raft log's compaction.
func TestApplyEntriesKeepsNoOldResults(t *testing.T) {
	a := openApplier(t)
	put := normalEntry(t, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: make([]byte, 1<<20)}})
	put.Index = 2
	txn := normalEntry(t, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}}}})
	txn.Index = 3
	if _, err := a.ApplyEntries([]raftpb.Entry{put, txn}, nil); err != nil {
		t.Fatal(err)
	}
	small := normalEntry(t, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b"), Value: []byte("1")}})
	small.Index = 4
	done, err := a.ApplyEntries([]raftpb.Entry{small}, nil)
	if err != nil || len(done) != 1 {
		t.Fatalf("ApplyEntries: %d done, %v", len(done), err)
	}
	for i, d := range done[:cap(done)][len(done):] {
		if d.Result.Resp != nil || d.Entry.Data != nil {
			t.Errorf("slot %d still holds entry %d (%d bytes) and its response after the next call",
				len(done)+i, d.Entry.Index, len(d.Entry.Data))
		}
	}
}

package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/backend"
)

// newTestStore opens a store on a new backend in a temporary directory,
// closed when the test ends.
// compactWait compacts s at rev as raft entry index, failing the test on
// an error, and waits for the removal to end.
func compactWait(tb testing.TB, s *Store, rev int64, index uint64) {
	tb.Helper()
	done, err := s.Compact(rev, index, 1)
	if err != nil {
		tb.Fatal(err)
	}
	<-done
}

// stopReaders stops the goroutines of wg, which run until stop is set,
// waits for them, and fails the test with each error they sent to errs.
func stopReaders(t *testing.T, stop *atomic.Bool, wg *sync.WaitGroup, errs chan error) {
	t.Helper()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func newTestStore(tb testing.TB) (*Store, *backend.Backend) {
	tb.Helper()
	be, err := backend.Open(tb.TempDir(), backend.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Open(be, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(); be.Close() })
	return s, be
}

// model is the store as a plain list: the state after every revision.
type model struct {
	// states[r] is the map of live keys at revision r (states[1] is the
	// empty store).
	states []map[string]*mvccpb.KeyValue
}

func newModel() *model {
	return &model{states: []map[string]*mvccpb.KeyValue{nil, {}}}
}

func (m *model) rev() int64 { return int64(len(m.states) - 1) }

// txn applies a transaction's puts and deletes to a copy of the latest
// state: the next revision, if anything changed.
type modelTxn struct {
	m       *model
	state   map[string]*mvccpb.KeyValue
	changed bool
}

func (m *model) begin() *modelTxn {
	state := map[string]*mvccpb.KeyValue{}
	for k, v := range m.states[m.rev()] {
		state[k] = v
	}
	return &modelTxn{m: m, state: state}
}

func (t *modelTxn) put(key, value string, lease int64) {
	rev := t.m.rev() + 1
	kv := &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), Lease: lease, ModRevision: rev, CreateRevision: rev, Version: 1}
	if old, ok := t.state[key]; ok {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
	}
	t.state[key] = kv
	t.changed = true
}

func (t *modelTxn) del(key, end string) int {
	n := 0
	for k := range t.state {
		if inRange(k, key, end) {
			delete(t.state, k)
			n++
		}
	}
	t.changed = t.changed || n > 0
	return n
}

func (t *modelTxn) end() {
	if t.changed {
		t.m.states = append(t.m.states, t.state)
	}
}

func inRange(k, key, end string) bool {
	switch {
	case end == "":
		return k == key
	case end == "\x00":
		return k >= key
	}
	return k >= key && k < end
}

// modelCompare evaluates a compare on one key as etcd does.
func modelCompare(state map[string]*mvccpb.KeyValue, c *pb.Compare) bool {
	kv, ok := state[string(c.Key)]
	if !ok {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kv = &mvccpb.KeyValue{}
	}
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		r = strings.Compare(string(kv.Value), string(c.GetValue()))
	case pb.Compare_VERSION:
		r = int(kv.Version - c.GetVersion())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_LESS:
		return r < 0
	}
	panic("unused compare")
}

func (m *model) rangeAt(key, end string, rev int64) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for k, kv := range m.states[rev] {
		if inRange(k, key, end) {
			out = append(out, kv)
		}
	}
	slices.SortFunc(out, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

func kvString(kvs []*mvccpb.KeyValue) string {
	var b bytes.Buffer
	for _, kv := range kvs {
		fmt.Fprintf(&b, "[%s=%s c%d m%d v%d l%d]", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return b.String()
}

// TestAgainstModel applies random transactions of puts and deletes to the
// store and to the model, reopening the store now and then, and compares
// reads of random ranges at random revisions, past ones included.
//
//	CAIRN_MVCC_SEEDS=N  run seeds 1..N (default 20)
func TestAgainstModel(t *testing.T) {
	seeds := 20
	if s := os.Getenv("CAIRN_MVCC_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runModelSeed(t, seed) })
	}
}

func runModelSeed(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	dir := t.TempDir()
	var (
		b   *backend.Backend
		s   *Store
		err error
	)
	defer func() { s.Close(); b.Close() }()
	m := newModel()
	compacted := int64(0)
	// everCompacted: as etcd (compaction revision -1 at first), the first
	// Compact(0) is accepted.
	everCompacted := false
	// reopen (re)starts the store; its compactions remove 2 revisions a
	// batch, and give up after crashAfterBatches batches (0: never).
	reopen := func(crashAfterBatches int) {
		if s != nil {
			s.Close()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if b, err = backend.Open(dir, backend.Options{}); err != nil {
			t.Fatal(err)
		}
		if s, err = open(b, nil, nil, 2, crashAfterBatches); err != nil {
			t.Fatal(err)
		}
	}
	reopen(0)
	key := func() string { return string(rune('a' + rng.IntN(12))) }
	index := uint64(0)
	for step := range 300 {
		switch p := rng.IntN(100); {
		case p < 60: // a write transaction
			tw, mt := s.Write(), m.begin()
			for range 1 + rng.IntN(3) {
				if rng.IntN(3) == 0 {
					k, end := key(), ""
					switch rng.IntN(3) {
					case 0:
						end = key()
					case 1:
						end = "\x00"
					}
					dels, err := tw.DeleteRange([]byte(k), []byte(end))
					if err != nil {
						t.Fatal(err)
					}
					if n := mt.del(k, end); n != len(dels) {
						t.Fatalf("step %d: deleted %d, the model %d", step, len(dels), n)
					}
				} else {
					k, v, lease := key(), fmt.Sprint(step), int64(rng.IntN(3))
					tw.Put([]byte(k), []byte(v), lease)
					mt.put(k, v, lease)
				}
			}
			index++
			rev, err := tw.End(index, 1)
			if err != nil {
				t.Fatal(err)
			}
			mt.end()
			if rev != m.rev() {
				t.Fatalf("step %d: revision %d, the model %d", step, rev, m.rev())
			}
		case p < 70: // a txn: compare, then a put or a delete
			k, other := key(), key()
			c := newCompare(k, pb.Compare_VERSION, pb.Compare_EQUAL, rng.IntN(3))
			if rng.IntN(2) == 0 {
				c = newCompare(k, pb.Compare_VALUE, pb.Compare_LESS, fmt.Sprint(rng.IntN(300)))
			}
			req := &pb.TxnRequest{
				Compare: []*pb.Compare{c},
				Success: []*pb.RequestOp{putOp(other, fmt.Sprint(step))},
				Failure: []*pb.RequestOp{delOp(other, ""), getOp(k)},
			}
			mt := m.begin()
			want := modelCompare(mt.state, c)
			tw := s.Write()
			resp, err := tw.TxnRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if want {
				mt.put(other, fmt.Sprint(step), 0)
			} else {
				mt.del(other, "")
			}
			index++
			rev, err := tw.End(index, 1)
			if err != nil {
				t.Fatal(err)
			}
			mt.end()
			if resp.Succeeded != want || rev != m.rev() || resp.Header.Revision != rev {
				t.Fatalf("step %d: txn on %v: succeeded %v at %d (header %d); the model: %v at %d",
					step, c, resp.Succeeded, rev, resp.Header.Revision, want, m.rev())
			}
		case p < 97: // a read at a random revision
			k, end := key(), ""
			if rng.IntN(2) == 0 {
				end = key()
			}
			rev := int64(0)
			if rng.IntN(2) == 0 {
				rev = 1 + rng.Int64N(m.rev())
			}
			res, err := s.Range([]byte(k), []byte(end), RangeOptions{Rev: rev})
			if rev != 0 && rev < compacted {
				if err != ErrCompacted {
					t.Fatalf("step %d: a read at %d below the compaction at %d: %v", step, rev, compacted, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if rev == 0 {
				rev = m.rev()
			}
			want := m.rangeAt(k, end, rev)
			if kvString(res.KVs) != kvString(want) || res.Count != int64(len(want)) || res.Rev != m.rev() {
				t.Fatalf("step %d: Range(%q, %q, rev %d) = %s count %d rev %d; the model: %s",
					step, k, end, rev, kvString(res.KVs), res.Count, res.Rev, kvString(want))
			}
		case p < 99: // compact, sometimes crashing part way through removal
			rev := compacted + rng.Int64N(m.rev()-compacted+2)
			index++
			crash := rng.IntN(2) == 0
			if crash {
				// Its removal will stop part way, as in a crash; the
				// restart after resumes it.
				reopen(rng.IntN(3) + 1)
			}
			done, err := s.Compact(rev, index, 1)
			switch {
			case rev < compacted || rev == compacted && everCompacted:
				if err != ErrCompacted {
					t.Fatalf("step %d: compact at %d after %d: %v", step, rev, compacted, err)
				}
			case rev > m.rev():
				if err != ErrFutureRev {
					t.Fatalf("step %d: compact at %d, current %d: %v", step, rev, m.rev(), err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				<-done
				compacted = rev
				everCompacted = true
			}
			if crash {
				reopen(0)
			}
		default: // restart
			reopen(0)
			if s.Rev() != m.rev() {
				t.Fatalf("step %d: revision %d after a restart, the model %d", step, s.Rev(), m.rev())
			}
		}
	}
	if _, err := s.Range([]byte("a"), nil, RangeOptions{Rev: m.rev() + 1}); err != ErrFutureRev {
		t.Fatalf("a read past the current revision: %v", err)
	}
}

// A read at a revision that a concurrent compaction passes fails with
// ErrCompacted, or answers right; never short without an error.
func TestRangeRacingCompact(t *testing.T) {
	s, _ := newTestStore(t)
	index := uint64(0)
	put := func(k string) int64 {
		tw := s.Write()
		tw.Put([]byte(k), []byte("v"), 0)
		index++
		rev, _ := tw.End(index, 1)
		return rev
	}
	tw := s.Write()
	for i := range 20000 { // a big index: compacting it takes a while
		tw.Put(fmt.Appendf(nil, "filler%05d", i), []byte("v"), 0)
	}
	index++
	tw.End(index, 1)
	var target atomic.Int64
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rev := target.Load()
			if rev == 0 {
				continue
			}
			res, err := s.Range([]byte("a"), nil, RangeOptions{Rev: rev})
			if err == nil && (len(res.KVs) != 1 || res.KVs[0].ModRevision != rev) {
				bad.Store(fmt.Sprintf("Range at %d (compacted %d): %d kvs, no error", rev, s.CompactRev(), len(res.KVs)))
			} else if err != nil && err != ErrCompacted {
				bad.Store(err.Error())
			}
		}
	}()
	for range 100 {
		target.Store(put("a"))
		r2 := put("a")
		index++
		compactWait(t, s, r2, index)
		if v := bad.Load(); v != nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}

// A read into an arena returns what a plain read does, and the next read
// after Reset reuses the arena's memory instead of allocating more.
func TestRangeArena(t *testing.T) {
	s, _ := newTestStore(t)
	tw := s.Write()
	for i := range 100 {
		tw.Put(fmt.Appendf(nil, "k%03d", i), bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i), 0)
	}
	tw.End(1, 1)
	plain, err := s.Range([]byte("k"), []byte("l"), RangeOptions{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	arena := &Arena{}
	read := func(from string) []*mvccpb.KeyValue {
		arena.Reset()
		res, err := s.Range([]byte(from), []byte("l"), RangeOptions{Limit: 50, NoCount: true, Arena: arena})
		if err != nil {
			t.Fatal(err)
		}
		return res.KVs
	}
	first := read("k")
	if len(first) != len(plain.KVs) {
		t.Fatalf("%d keys through the arena, %d without", len(first), len(plain.KVs))
	}
	for i := range first {
		if !proto.Equal(first[i], plain.KVs[i]) {
			t.Fatalf("key %d: %v through the arena, %v without", i, first[i], plain.KVs[i])
		}
	}
	firstKV, firstKey := first[0], &first[0].Key[0]
	second := read("k050")
	if string(second[0].Key) != "k050" || second[0] != firstKV || &second[0].Key[0] != firstKey {
		t.Fatalf("the second read did not reuse the arena: %q", second[0].Key)
	}
	// What a warm read still allocates is small (revision keys, the
	// index walk's slice, pebble's iterator: some 20 KB), not the ~50 KB
	// it reads. The process's other goroutines (pebble's, the runtime's)
	// allocate meanwhile too, and only add: the least of five rounds.
	perRead := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 20 {
			read("k050")
		}
		runtime.ReadMemStats(&after)
		perRead = min(perRead, (after.TotalAlloc-before.TotalAlloc)/20)
	}
	t.Logf("a warm read of 50 keys of 1 KiB allocated %d bytes", perRead)
	if perRead > 28<<10 {
		t.Errorf("a read of 50 keys of 1 KiB into a warm arena allocated %d bytes", perRead)
	}
}

// TestRangeCountWhileWritingAndCompacting: ranges with a limit, whose
// count walks the index a chunk at a time, find the exact count of their
// revision while keys are added and deleted and compactions run, each
// compaction up to the revision just written: above the revision some of
// the reads began at. A read of a given revision then fails with
// ErrCompacted, never with a short count; a read of the current revision
// is read again.
func TestRangeCountWhileWritingAndCompacting(t *testing.T) {
	s, _ := newTestStore(t)
	const initial = 2*rangeChunk + 500
	const writes = 2000
	// counts[rev] is how many keys were alive at rev, stored before the
	// write that made rev ends.
	counts := make([]atomic.Int64, writes+10)
	index := uint64(0)
	live := []int{}
	end := func(tw *TxnWrite) {
		counts[tw.Rev()].Store(int64(len(live)))
		index++
		if _, err := tw.End(index, 1); err != nil {
			t.Fatal(err)
		}
	}
	tw := s.Write()
	for i := range initial {
		tw.Put(fmt.Appendf(nil, "k%06d", i), []byte("v"), 0)
		live = append(live, i)
	}
	end(tw)
	index++
	if _, err := s.Compact(s.Rev(), index, 1); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	var reads, cut atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for !stop.Load() {
				opts := RangeOptions{Limit: 3}
				if r == 1 {
					// A revision since the last compaction, which the
					// next may pass before the read ends.
					c := s.CompactRev()
					opts.Rev = c + rng.Int64N(s.Rev()-c+1)
				}
				res, err := s.Range([]byte("k"), []byte("l"), opts)
				if errors.Is(err, ErrCompacted) && opts.Rev > 0 {
					cut.Add(1)
					continue
				}
				at := opts.Rev
				if at == 0 {
					at = res.Rev
				}
				if err != nil || res.Count != counts[at].Load() || len(res.KVs) != int(min(3, res.Count)) {
					errs <- fmt.Errorf("Range at %d (asked %d): count %d, %d keys, %v; %d keys were alive", at, opts.Rev, res.Count, len(res.KVs), err, counts[at].Load())
					return
				}
				reads.Add(1)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	next := initial
	for i := range writes {
		tw := s.Write()
		if j := rng.IntN(len(live)); rng.IntN(2) == 0 {
			tw.DeleteRange(fmt.Appendf(nil, "k%06d", live[j]), nil)
			live = slices.Delete(live, j, j+1)
		} else {
			tw.Put(fmt.Appendf(nil, "k%06d", next), []byte("v"), 0)
			live = append(live, next)
			next++
		}
		end(tw)
		if i%50 == 49 {
			index++
			compactWait(t, s, s.Rev(), index)
		}
	}
	stopReaders(t, &stop, &wg, errs)
	t.Logf("%d reads checked, %d of a given revision cut by a compaction", reads.Load(), cut.Load())
}

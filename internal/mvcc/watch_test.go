package mvcc

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func newWatchable(t *testing.T) (*WatchableStore, *writer) {
	t.Helper()
	s, _ := newTestStore(t)
	ws := NewWatchable(s)
	t.Cleanup(ws.Close) // runs before newTestStore's cleanup closes the store
	return ws, &writer{s: s}
}

// writer applies write transactions with increasing raft indexes; it is
// safe for concurrent use.
type writer struct {
	mu    sync.Mutex
	s     *Store
	index uint64
}

func (w *writer) do(f func(tw *TxnWrite)) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	tw := w.s.Write()
	f(tw)
	w.index++
	rev, err := tw.End(w.index, 1)
	if err != nil {
		panic(err)
	}
	return rev
}

func (w *writer) compact(rev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.index++
	done, err := w.s.Compact(rev, w.index, 1)
	if err == nil {
		<-done
	}
}

// receive reads one response other than Created, failing the test if
// none comes in 10s (a safeguard against a hang, not a synchronization).
func receive(t *testing.T, st *WatchStream) WatchResponse {
	t.Helper()
	for {
		select {
		case r, ok := <-st.Chan():
			if !ok {
				t.Fatal("the stream closed")
			}
			if r.Created {
				continue
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no watch response in 10s")
		}
	}
}

// watch starts a watcher, failing the test on an error.
func watch(t *testing.T, st *WatchStream, key, end string, start int64, prevKV bool) WatchID {
	t.Helper()
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	id, err := st.Watch(WatchOptions{Key: []byte(key), End: e, StartRev: start, PrevKV: prevKV})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func eventString(evs []*mvccpb.Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("[%s %s@%d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision)
		if ev.PrevKv != nil {
			s += fmt.Sprintf(" prev %s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
		}
		s += "]"
	}
	return s
}

// A watcher from now sees each revision's events in its range, together,
// with the previous KeyValue if asked; one from the past catches up first.
func TestWatchBasics(t *testing.T) {
	ws, w := newWatchable(t)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("a"), []byte("1"), 0) }) // 2

	st := ws.NewWatchStream()
	defer st.Close()
	now := watch(t, st, "a", "c", 0, true)
	w.do(func(tw *TxnWrite) { // 3: one revision, three events, two in range
		tw.Put([]byte("a"), []byte("2"), 0)
		tw.Put([]byte("b"), []byte("1"), 0)
		tw.Put([]byte("z"), []byte("1"), 0)
	})
	r := receive(t, st)
	if r.WatchID != now || r.Revision != 3 || eventString(r.Events) != "[PUT a@3 prev 1@2][PUT b@3]" {
		t.Fatalf("got %d %d %s", r.WatchID, r.Revision, eventString(r.Events))
	}
	w.do(func(tw *TxnWrite) { tw.DeleteRange([]byte("a"), nil) }) // 4
	r = receive(t, st)
	if eventString(r.Events) != "[DELETE a@4 prev 2@3]" {
		t.Fatalf("got %s", eventString(r.Events))
	}

	past := watch(t, st, "a", "", 2, false)
	r = receive(t, st)
	if r.WatchID != past || eventString(r.Events) != "[PUT a@2][PUT a@3][DELETE a@4]" {
		t.Fatalf("catch-up: %d %s", r.WatchID, eventString(r.Events))
	}
	if err := st.Cancel(past); err != nil {
		t.Fatal(err)
	}
	if err := st.Cancel(past); err != ErrWatcherNotFound {
		t.Fatalf("second cancel: %v", err)
	}
	if r := receive(t, st); r.WatchID != past || !r.Canceled || len(r.Events) != 0 {
		t.Fatalf("cancel: got %+v", r)
	}
	// A future start waits for its revision.
	future := watch(t, st, "k", "", 6, false)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("5"), 0) }) // 5
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("6"), 0) }) // 6
	r = receive(t, st)
	if r.WatchID != future || eventString(r.Events) != "[PUT k@6]" {
		t.Fatalf("future start: %d %s", r.WatchID, eventString(r.Events))
	}
}

// A watcher starting below the compaction is told the compaction revision,
// and sent nothing more.
func TestWatchCompacted(t *testing.T) {
	ws, w := newWatchable(t)
	for i := range 5 {
		w.do(func(tw *TxnWrite) { tw.Put([]byte("a"), fmt.Appendf(nil, "%d", i), 0) })
	}
	w.compact(4)
	st := ws.NewWatchStream()
	defer st.Close()
	id, err := st.Watch(WatchOptions{ID: 7, Key: []byte("a"), StartRev: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := receive(t, st)
	if r.WatchID != id || r.CompactRevision != 4 || len(r.Events) != 0 {
		t.Fatalf("got %+v", r)
	}
	// Its ID stays taken until it is cancelled, as in etcd.
	if _, err := st.Watch(WatchOptions{ID: id, Key: []byte("a")}); err != ErrWatcherDuplicateID {
		t.Fatalf("the compacted watcher's ID: %v", err)
	}
	if err := st.Cancel(id); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, st); r.WatchID != id || !r.Canceled {
		t.Fatalf("cancel of the compacted watcher: got %+v", r)
	}
	if err := st.Cancel(id); err != ErrWatcherNotFound {
		t.Fatalf("the compacted watcher is still there: %v", err)
	}
	// From the compaction revision itself, history is whole.
	watch(t, st, "a", "", 4, false)
	if r := receive(t, st); eventString(r.Events) != "[PUT a@4][PUT a@5][PUT a@6]" {
		t.Fatalf("from the compaction revision: %s", eventString(r.Events))
	}
}

// Watchers see every event in their range exactly once, in order, whether
// they start in the past, now or later, while writes go on concurrently,
// the consumer is slow (so watchers become victims and catch up from the
// backend), and compactions run; a watcher overtaken by a compaction is
// told so instead, and may lose nothing it was sent before.
func TestWatchEveryEventOnce(t *testing.T) {
	for _, compaction := range []bool{false, true} {
		t.Run(fmt.Sprintf("compaction=%v", compaction), func(t *testing.T) { testWatchEveryEventOnce(t, compaction) })
	}
}

func testWatchEveryEventOnce(t *testing.T, compaction bool) {
	ws, w := newWatchable(t)
	rng := rand.New(rand.NewPCG(1, 2))         // the writer's
	consumerRng := rand.New(rand.NewPCG(3, 4)) // the consumer's
	const revs = 3000
	// The log of what was written: key and kind per revision.
	type change struct {
		key string
		del bool
	}
	var logMu sync.Mutex
	history := map[int64][]change{}
	write := func() {
		k := fmt.Sprintf("k%d", rng.IntN(8))
		del := rng.IntN(4) == 0
		w.do(func(tw *TxnWrite) {
			if del {
				if dels, _ := tw.DeleteRange([]byte(k), nil); len(dels) == 0 {
					del = false
					tw.Put([]byte(k), []byte("v"), 0)
				}
			} else {
				tw.Put([]byte(k), []byte("v"), 0)
			}
			// Before End: its events may reach a watcher before do returns.
			logMu.Lock()
			history[tw.Rev()] = append(history[tw.Rev()], change{k, del})
			logMu.Unlock()
		})
	}
	for range 200 {
		write()
	}
	st := ws.NewWatchStream()
	defer st.Close()
	type spec struct {
		key, end string
		start    int64
	}
	specs := map[WatchID]spec{}
	for _, sp := range []spec{{"k0", "", 1}, {"k", "l", 50}, {"k3", "k6", 0}, {"k", "\x00", 150}, {"k5", "", 400}} {
		id := watch(t, st, sp.key, sp.end, sp.start, false)
		if sp.start == 0 {
			sp.start = ws.Rev() + 1 // as of the Watch call, no write racing it
		}
		specs[id] = sp
	}
	// The consumer starts reading only when the writer is half way, so
	// the stream's channel fills and every watcher is moved aside and has
	// to catch up from the backend.
	done, halfway := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := range revs {
			write()
			if i == revs/2 {
				close(halfway)
			}
			if compaction && i == revs*3/4 {
				w.compact(ws.Rev() - 100)
			}
		}
	}()
	<-halfway
	next := map[WatchID]int64{}
	for id, sp := range specs {
		next[id] = sp.start
	}
	compacted := map[WatchID]bool{}
	// satisfied reports whether, with the writer done, every watcher not
	// told of a compaction has had every event of its range.
	satisfied := func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		for id, sp := range specs {
			if compacted[id] {
				continue
			}
			for rev, cs := range history {
				for _, c := range cs {
					if rev >= next[id] && (span{[]byte(sp.key), []byte(sp.end)}).contains([]byte(c.key)) {
						return false
					}
				}
			}
		}
		return true
	}
	writing := done
	for {
		var r WatchResponse
		select {
		case <-writing:
			writing = nil
			if satisfied() {
				return
			}
			continue
		case r = <-st.Chan():
			if r.Created {
				continue
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no watch response in 10s; still expecting events (next: %v)", next)
		}
		if consumerRng.IntN(20) == 0 {
			time.Sleep(time.Millisecond) // a slow consumer, so the channel fills
		}
		if r.CompactRevision != 0 {
			compacted[r.WatchID] = true
			if writing == nil && satisfied() {
				break
			}
			continue
		}
		sp := specs[r.WatchID]
		for _, ev := range r.Events {
			rev := ev.Kv.ModRevision
			if rev < next[r.WatchID] {
				t.Fatalf("watcher %d: event at %d after it was past %d", r.WatchID, rev, next[r.WatchID]-1)
			}
			// Every revision in between had nothing for this watcher.
			logMu.Lock()
			for gap := next[r.WatchID]; gap < rev; gap++ {
				for _, c := range history[gap] {
					if (span{[]byte(sp.key), []byte(sp.end)}).contains([]byte(c.key)) {
						t.Fatalf("watcher %d: missed %s at %d (next event at %d)", r.WatchID, c.key, gap, rev)
					}
				}
			}
			written := history[rev]
			logMu.Unlock()
			next[r.WatchID] = rev + 1
			if len(written) != 1 || (ev.Type == mvccpb.DELETE) != written[0].del || string(ev.Kv.Key) != written[0].key {
				t.Fatalf("watcher %d: event %s at %d, but %v was written", r.WatchID, eventString([]*mvccpb.Event{ev}), rev, written)
			}
		}
		if writing == nil && satisfied() {
			break
		}
	}
}

// A watch from the compaction revision sees a delete at that revision
// (etcd-io/etcd#18089): Kubernetes' informers resume from there.
func TestWatchFromCompactRevSeesDelete(t *testing.T) {
	ws, w := newWatchable(t)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v2"), 0) }) // 2
	w.do(func(tw *TxnWrite) { tw.DeleteRange([]byte("k"), nil) })     // 3
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v4"), 0) }) // 4
	w.compact(3)
	st := ws.NewWatchStream()
	defer st.Close()
	watch(t, st, "k", "", 3, false)
	if got := eventString(receive(t, st).Events); got != "[DELETE k@3][PUT k@4]" {
		t.Fatalf("got %s", got)
	}
}

// A watcher catching up while writes go on loses no revision: the round
// that brings it up to date must not read the current revision after its
// view, or a revision committed in between is skipped by both the round and
// the notification.
func TestWatchCatchUpRacingWrites(t *testing.T) {
	ws, w := newWatchable(t)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v"), 0) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // every revision puts k
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v"), 0) })
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := range 300 {
		st := ws.NewWatchStream()
		start := ws.Rev()
		id := watch(t, st, "k", "", start, false)
		for want := start; want < start+20; {
			r := receive(t, st)
			if r.WatchID != id {
				continue
			}
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != want {
					t.Fatalf("iteration %d: watcher from %d got k@%d, want k@%d", i, start, ev.Kv.ModRevision, want)
				}
				want++
			}
		}
		st.Close()
	}
}

// Filters leave out puts or deletes; a watcher whose events are all
// filtered out is sent nothing for that revision.
func TestWatchFilters(t *testing.T) {
	ws, w := newWatchable(t)
	st := ws.NewWatchStream()
	defer st.Close()
	noPut, _ := st.Watch(WatchOptions{Key: []byte("k"), NoPut: true})
	noDel, _ := st.Watch(WatchOptions{Key: []byte("k"), NoDelete: true})
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("1"), 0) }) // 2
	w.do(func(tw *TxnWrite) { tw.DeleteRange([]byte("k"), nil) })    // 3
	got := map[WatchID]string{}
	for range 2 {
		r := receive(t, st)
		got[r.WatchID] += eventString(r.Events)
	}
	if got[noPut] != "[DELETE k@3]" || got[noDel] != "[PUT k@2]" {
		t.Fatalf("got %v", got)
	}
}

// IDs: the lowest unused one when the client leaves it 0, else the
// client's, refused if taken; an empty range is refused, as in etcd.
func TestWatchIDsAndErrors(t *testing.T) {
	ws, _ := newWatchable(t)
	st := ws.NewWatchStream()
	defer st.Close()
	if id, _ := st.Watch(WatchOptions{ID: 1, Key: []byte("a")}); id != 1 {
		t.Fatalf("chosen ID: %d", id)
	}
	for _, want := range []WatchID{0, 2} {
		if id, _ := st.Watch(WatchOptions{Key: []byte("a")}); id != want {
			t.Fatalf("auto ID: %d, want %d", id, want)
		}
	}
	if _, err := st.Watch(WatchOptions{ID: 2, Key: []byte("a")}); err != ErrWatcherDuplicateID {
		t.Fatalf("taken ID: %v", err)
	}
	if _, err := st.Watch(WatchOptions{Key: []byte("b"), End: []byte("a")}); err != ErrEmptyWatcherRange {
		t.Fatalf("empty range: %v", err)
	}
	if _, err := st.Watch(WatchOptions{Key: []byte("b"), End: []byte{0}}); err != nil {
		t.Fatalf("from-key: %v", err)
	}
	st.Close()
	if _, err := st.Watch(WatchOptions{Key: []byte("a")}); err != ErrWatchStreamClosed {
		t.Fatalf("closed stream: %v", err)
	}
}

// A stream-wide progress response comes once every watcher is up to date,
// after all their events, at the revision they are all up to date with;
// never short of a watcher's start revision.
func TestWatchProgressAll(t *testing.T) {
	ws, w := newWatchable(t)
	for range 5 {
		w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v"), 0) }) // 2..6
	}
	st := ws.NewWatchStream()
	defer st.Close()
	past := watch(t, st, "k", "", 2, false)
	st.RequestProgressAll()
	r := receive(t, st)
	if r.WatchID != past || len(r.Events) != 5 {
		t.Fatalf("catch-up first: %+v", r)
	}
	if r = receive(t, st); r.WatchID != ProgressWatchID || r.Revision != 6 {
		t.Fatalf("progress: %+v", r)
	}
	// A watcher from revision 8 holds progress back until revision 8.
	watch(t, st, "other", "", 8, false)
	st.RequestProgressAll()
	w.do(func(tw *TxnWrite) { tw.Put([]byte("x"), []byte("v"), 0) }) // 7
	w.do(func(tw *TxnWrite) { tw.Put([]byte("x"), []byte("v"), 0) }) // 8
	if r = receive(t, st); r.WatchID != ProgressWatchID || r.Revision != 8 {
		t.Fatalf("progress with a future watcher: %+v", r)
	}
	// Per watcher: only when up to date.
	st.RequestProgress(past)
	if r = receive(t, st); r.WatchID != past || r.Revision != 8 || len(r.Events) != 0 {
		t.Fatalf("watcher progress: %+v", r)
	}
}

// A restore (Attach of another store) moves up-to-date watchers to catch
// up from the new store: they get what it holds after what they were sent,
// once, or are told it is compacted.
func TestWatchAttachRestoredStore(t *testing.T) {
	ws, w := newWatchable(t)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("old"), 0) }) // 2
	st := ws.NewWatchStream()
	defer st.Close()
	id := watch(t, st, "k", "", 0, false)
	// The new store has the same revision 2 and more after it.
	s2, _ := newTestStore(t)
	w2 := &writer{s: s2}
	w2.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("old"), 0) }) // 2
	w2.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("3"), 0) })   // 3
	w2.do(func(tw *TxnWrite) { tw.Put([]byte("j"), []byte("4"), 0) })   // 4
	w2.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("5"), 0) })   // 5
	ws.Detach()
	ws.Attach(s2)
	if r := receive(t, st); r.WatchID != id || eventString(r.Events) != "[PUT k@3][PUT k@5]" {
		t.Fatalf("after restore: %+v %s", r, eventString(r.Events))
	}
	w2.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("6"), 0) }) // 6
	if r := receive(t, st); eventString(r.Events) != "[PUT k@6]" {
		t.Fatalf("after restore, synced: %s", eventString(r.Events))
	}
	// A store compacted past what the watcher was sent.
	s3, _ := newTestStore(t)
	w3 := &writer{s: s3}
	for range 9 {
		w3.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v"), 0) }) // 2..10
	}
	w3.compact(9)
	ws.Detach()
	ws.Attach(s3)
	if r := receive(t, st); r.WatchID != id || r.CompactRevision != 9 {
		t.Fatalf("restore past a compaction: %+v", r)
	}
}

// A stream's watchers are bounded.
func TestWatchMaxWatchersPerStream(t *testing.T) {
	ws, _ := newWatchable(t)
	st := ws.NewWatchStream()
	defer st.Close()
	// Drain, so creates never wait on a full channel.
	go func() {
		for range st.Chan() {
		}
	}()
	for i := range MaxWatchersPerStream {
		if _, err := st.Watch(WatchOptions{Key: fmt.Appendf(nil, "k%d", i)}); err != nil {
			t.Fatalf("watcher %d: %v", i, err)
		}
	}
	if _, err := st.Watch(WatchOptions{Key: []byte("one more")}); err != ErrTooManyWatchers {
		t.Fatalf("over the limit: %v", err)
	}
}

// Answers to creates (Created, or a refusal) go out in the order the
// creates came, even when the channel is full and watchers wait for room;
// each watcher's Created comes before its events.
func TestWatchCreateAnswersInOrder(t *testing.T) {
	ws, w := newWatchable(t)
	st := ws.NewWatchStream()
	defer st.Close()
	watch(t, st, "fill", "", 0, false)
	for range watchChanBufLen + 10 { // more than the channel holds
		w.do(func(tw *TxnWrite) { tw.Put([]byte("fill"), []byte("v"), 0) })
	}
	a := watch(t, st, "a", "", 1, false) // catches up: events come at once
	st.Refuse("no")
	b := watch(t, st, "b", "", 0, false)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("b"), []byte("v"), 0) })
	w.do(func(tw *TxnWrite) { tw.Put([]byte("a"), []byte("v"), 0) })
	var order []string
	seen := map[WatchID]bool{}
	events := 0
	for len(order) < 4 || events < 2 {
		var r WatchResponse
		select {
		case r = <-st.Chan():
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v", order)
		}
		switch {
		case r.Created && r.Canceled:
			order = append(order, "refused:"+r.CancelReason)
		case r.Created:
			order = append(order, fmt.Sprintf("created %d", r.WatchID))
			seen[r.WatchID] = true
		case (r.WatchID == a || r.WatchID == b) && len(r.Events) > 0:
			if !seen[r.WatchID] {
				t.Fatalf("watcher %d: events before its Created", r.WatchID)
			}
			events++
		}
	}
	if got, want := fmt.Sprint(order), fmt.Sprintf("[created 0 created %d refused:no created %d]", a, b); got != want {
		t.Fatalf("create answers %s, want %s", got, want)
	}
}

// A negative start revision reads as etcd reads it: from the beginning.
func TestWatchNegativeStart(t *testing.T) {
	ws, w := newWatchable(t)
	w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v"), 0) }) // 2
	st := ws.NewWatchStream()
	defer st.Close()
	watch(t, st, "k", "", -1, false)
	if r := receive(t, st); eventString(r.Events) != "[PUT k@2]" {
		t.Fatalf("got %+v", r)
	}
}

// Watchers created one after another from the same past revision (etcd's
// watch-get benchmark: 10,000 of them) are caught up from one read of the
// backend, not one read each, and each still gets exactly its events: the
// revisions it asked for, in order, filtered to its key. A restore
// attaches a store with other history, which is read anew.
func TestWatchCatchUpReadsOnce(t *testing.T) {
	ws, w := newWatchable(t)
	start := w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v0"), 0) })
	for i := 1; i < 80; i++ {
		w.do(func(tw *TxnWrite) {
			tw.Put([]byte("k"), []byte(fmt.Sprintf("v%d", i)), 0)
			tw.Put([]byte("other"), []byte("x"), 0)
		})
	}
	want := ""
	for i := range 80 {
		want += fmt.Sprintf("[PUT k@%d]", start+int64(i))
	}
	wantFrom40 := want[len(want)-40*len(fmt.Sprintf("[PUT k@%d]", start+79)):]
	collect := func(st *WatchStream, id WatchID, n int) string {
		got := ""
		for seen := 0; seen < n; {
			r := receive(t, st)
			if r.WatchID != id {
				t.Fatalf("response for watcher %d, want %d", r.WatchID, id)
			}
			got += eventString(r.Events)
			seen += len(r.Events)
		}
		return got
	}
	st := ws.NewWatchStream()
	defer st.Close()
	for i := range 200 {
		from, n, wantEvents := start, 80, want
		if i%2 == 1 { // half start further on, inside what was read
			from, n, wantEvents = start+40, 40, wantFrom40
		}
		id := watch(t, st, "k", "", from, false)
		if got := collect(st, id, n); got != wantEvents {
			t.Fatalf("watcher %d from %d got %s, want %s", i, from, got, wantEvents)
		}
	}
	ws.mu.Lock()
	reads := ws.mu.catchUpReads
	ws.mu.Unlock()
	// One read, and one more each time the syncer dropped what it read
	// (idle for caughtIdle, which only a stalled machine makes happen).
	if reads > 5 {
		t.Fatalf("200 watchers caught up with %d reads of the backend, want 1", reads)
	}

	// Revisions committed since the last read: a watcher created now
	// gets them in its first response with the rest, as from a read of
	// the backend (and as from etcd), not in a second one.
	for i := 80; i < 83; i++ {
		w.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte(fmt.Sprintf("v%d", i)), 0) })
	}
	st.Close() // its 200 watchers would get these revisions too
	st = ws.NewWatchStream()
	defer st.Close()
	id0 := watch(t, st, "k", "", start+40, false)
	if r := receive(t, st); r.WatchID != id0 || len(r.Events) != 43 {
		t.Fatalf("a watcher from %d after 3 more revisions got %d events first (%s), want all 43 at once",
			start+40, len(r.Events), eventString(r.Events))
	}

	// A restored store's history differs: the cache is not served from it.
	s2, _ := newTestStore(t)
	w2 := &writer{s: s2}
	w2.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("restored"), 0) }) // 2
	for range 100 {
		w2.do(func(tw *TxnWrite) { tw.Put([]byte("z"), []byte("z"), 0) })
	}
	ws.Detach()
	ws.Attach(s2)
	id := watch(t, st, "k", "", 2, true)
	if got := collect(st, id, 1); got != "[PUT k@2]" {
		t.Fatalf("after a restore, a watcher from 2 got %s, want [PUT k@2] of the restored store", got)
	}
}

// Hundreds of range watchers on one stream (so that the synced group's
// range index is built, not only looked at one by one), nested,
// overlapping, sharing starts, some open-ended, some from the first
// revision and some from now, and a consumer that reads only once the
// writes are done, so that the stream's channel fills and watchers are set
// aside and catch up: each gets every event of its range, once, in order.
func TestWatchManyRangeWatchersEveryEventOnce(t *testing.T) {
	ws, w := newWatchable(t)
	rng := rand.New(rand.NewPCG(5, 6))
	key := func() string { return fmt.Sprintf("k%d%d", rng.IntN(6), rng.IntN(6)) }
	written := []string{""} // written[rev-1]: the key put at rev (rev 1 is the empty store)
	put := func() {
		k := key()
		rev := w.do(func(tw *TxnWrite) { tw.Put([]byte(k), []byte("v"), 0) })
		if int(rev) != len(written)+1 {
			t.Fatalf("put at revision %d, want %d", rev, len(written)+1)
		}
		written = append(written, k)
	}
	for range 100 {
		put()
	}
	st := ws.NewWatchStream()
	defer st.Close()
	type spec struct {
		key, end string
		start    int64
	}
	specs := map[WatchID]spec{}
	for i := range 400 {
		sp := spec{key: key(), end: key()}
		switch i % 5 {
		case 0:
			sp.end = "\x00"
		case 1:
			sp.end = sp.key[:2] + "9" // the prefix k<d>
		}
		if sp.end != "\x00" && sp.end <= sp.key {
			sp.key, sp.end = sp.end, sp.key+"0"
		}
		if i%2 == 0 {
			sp.start = 1
		}
		id := watch(t, st, sp.key, sp.end, sp.start, false)
		if sp.start == 0 {
			sp.start = ws.Rev() + 1
		}
		specs[id] = sp
	}
	for range 400 {
		put()
	}
	next := map[WatchID]int64{}
	left := 0 // events still to come, over all watchers
	for id, sp := range specs {
		next[id] = sp.start
		for rev := sp.start; rev <= int64(len(written)); rev++ {
			if (span{[]byte(sp.key), []byte(sp.end)}).contains([]byte(written[rev-1])) {
				left++
			}
		}
	}
	for left > 0 {
		r := receive(t, st)
		sp := specs[r.WatchID]
		for _, ev := range r.Events {
			rev := ev.Kv.ModRevision
			for gap := next[r.WatchID]; gap < rev; gap++ {
				if (span{[]byte(sp.key), []byte(sp.end)}).contains([]byte(written[gap-1])) {
					t.Fatalf("watcher %d [%q, %q): missed %s at %d (next event at %d)", r.WatchID, sp.key, sp.end, written[gap-1], gap, rev)
				}
			}
			if rev < next[r.WatchID] || string(ev.Kv.Key) != written[rev-1] || !(span{[]byte(sp.key), []byte(sp.end)}).contains(ev.Kv.Key) {
				t.Fatalf("watcher %d [%q, %q): event %s at %d; next expected from %d", r.WatchID, sp.key, sp.end, ev.Kv.Key, rev, next[r.WatchID])
			}
			next[r.WatchID] = rev + 1
			left--
		}
	}
}

// A stream's Close lets writes in between chunks of its watchers, and
// what runs meanwhile (events for its watchers, the syncer's catch-up and
// retries, cancels, a full channel with create answers still owed) never
// hands a removed watcher back to the store: once Close returns, its
// channel is closed, nothing of it is left, and the store's other
// streams are served as before.
func TestWatchCloseInChunks(t *testing.T) {
	ws, wr := newWatchable(t)
	for i := range 10 {
		wr.do(func(tw *TxnWrite) { tw.Put([]byte(fmt.Sprintf("k%05d", i)), []byte("old"), 0) })
	}
	other := ws.NewWatchStream()
	otherID := watch(t, other, "k", "l", 0, false)
	if r := <-other.Chan(); !r.Created || r.WatchID != otherID {
		t.Fatalf("other stream: %+v", r)
	}

	// Nobody reads st until Close: its channel fills with create answers,
	// and the rest wait (announcements, victims); a third start in the
	// past.
	st := ws.NewWatchStream()
	const n = 4 * closeChunk
	var ids []WatchID
	for i := range n {
		o := WatchOptions{Key: []byte(fmt.Sprintf("k%05d", i))}
		if i%3 == 0 {
			o.StartRev = 1
		}
		id, err := st.Watch(o)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}

	pauses, puts := 0, 0
	ws.betweenCloseChunks = func() {
		pauses++
		for i := range 20 { // watched keys, some of them removed already
			wr.do(func(tw *TxnWrite) { tw.Put([]byte(fmt.Sprintf("k%05d", (pauses*97+i*13)%n)), []byte("new"), 0) })
			puts++
		}
		// Removed already or not: either is fine.
		st.Cancel(ids[pauses*7%n])
		// A slow reader: room for some of what is owed.
		for range 64 {
			select {
			case <-st.Chan():
			default:
			}
		}
		ws.retryVictims()
		ws.syncRound()
		ws.retryProgress()
	}
	st.Close()
	if pauses != n/closeChunk-1 {
		t.Fatalf("%d pauses between chunks, want %d", pauses, n/closeChunk-1)
	}
	for range st.Chan() { // closed: ends once the buffered responses are read
	}
	if s := ws.Stats(); s.Streams != 1 || s.Watchers != 1 || s.Slow != 0 {
		t.Fatalf("after Close: %+v, want only the other stream's watcher", s)
	}
	// The syncer and writes go on without touching the closed stream.
	ws.betweenCloseChunks = nil
	wr.do(func(tw *TxnWrite) { tw.Put([]byte("k00000"), []byte("last"), 0) })
	puts++
	ws.retryVictims()
	ws.syncRound()
	got := 0
	for got < puts {
		r := receive(t, other)
		got += len(r.Events)
	}
	if got != puts {
		t.Fatalf("the other stream got %d events, want %d", got, puts)
	}
}

// A stream whose creates outrun its reader keeps their answers owed: a
// retry that finds the channel still full does not wake the syncer again
// at once, and the reader wakes it once it has made room. It did, and the
// syncer spun a core for as long as the reader lagged (100,000 creates on
// an unread stream: 2.06 CPU-s in 2 s, 0.09 after).
func TestWatchOwedCreatesDoNotSpinSyncer(t *testing.T) {
	ws, _ := newWatchable(t)
	ws.Close() // the syncer stops: the test plays it, one retry at a time
	st := ws.NewWatchStream()
	const n = watchChanBufLen + 10
	for i := range n {
		watch(t, st, fmt.Sprintf("k%03d", i), "", 0, false)
	}
	select {
	case <-ws.syncc: // the first answer that did not fit asked for a retry
	default:
		t.Fatal("no retry asked for the answers that did not fit")
	}
	for range 3 {
		ws.retryVictims()
		if len(ws.syncc) != 0 {
			t.Fatal("a retry that sent nothing woke the syncer again")
		}
	}
	// The reader catches up: once it has made room, its Sent wakes the
	// syncer, whose retry sends what was owed, in order.
	for i := range n {
		if i == watchChanBufLen/2 {
			select {
			case <-ws.syncc:
			default:
				t.Fatal("the reader made room and the syncer was not woken")
			}
		}
		if i == watchChanBufLen {
			ws.retryVictims()
		}
		select {
		case r := <-st.Chan():
			if !r.Created || r.WatchID != WatchID(i) {
				t.Fatalf("answer %d: %+v", i, r)
			}
			st.Sent(r)
		default:
			t.Fatalf("answer %d not sent", i)
		}
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.mu.announcing) != 0 || len(ws.mu.victims) != 0 {
		t.Fatalf("after every answer was sent: %d streams announcing, %d victims", len(ws.mu.announcing), len(ws.mu.victims))
	}
}

// stalledStream makes a watchable store whose syncer is stopped (the test
// plays it) and a stream with n watchers on keys k0000..., each then sent
// one event, value "v1", by a put of its key. If readCreated, each
// watcher's Created is read before the next watcher is made; else the
// channel fills with answers, and the rest are owed.
func stalledStream(t *testing.T, n int, readCreated bool) (*WatchableStore, *WatchStream) {
	t.Helper()
	ws, wr := newWatchable(t)
	ws.Close()
	st := ws.NewWatchStream()
	for i := range n {
		watch(t, st, fmt.Sprintf("k%04d", i), "", 0, false)
		if !readCreated {
			continue
		}
		if r := <-st.Chan(); !r.Created {
			t.Fatalf("watcher %d: %+v", i, r)
		}
	}
	for i := range n {
		wr.do(func(tw *TxnWrite) { tw.Put([]byte(fmt.Sprintf("k%04d", i)), []byte("v1"), 0) })
	}
	return ws, st
}

// retryCountingVictims runs the syncer's retry of victims n times and
// returns the victims it tried.
func retryCountingVictims(ws *WatchableStore, n int) int {
	ws.mu.Lock()
	before := ws.mu.victimTries
	ws.mu.Unlock()
	for range n {
		ws.retryVictims()
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.mu.victimTries - before
}

// readPlayingSyncer reads st's responses (telling it each was sent) until
// on has counted events of them, playing the stopped syncer (a retry and
// a catch-up round) whenever the channel is empty; it fails if that
// brings nothing.
func readPlayingSyncer(t *testing.T, ws *WatchableStore, st *WatchStream, events int, on func(WatchResponse)) {
	t.Helper()
	for got := 0; got < events; {
		select {
		case r := <-st.Chan():
			st.Sent(r)
			on(r)
			got += len(r.Events)
		default:
			ws.retryVictims()
			ws.syncRound()
			if len(st.Chan()) == 0 {
				t.Fatalf("%d of %d events delivered, then nothing", got, events)
			}
		}
	}
}

// Victims wait for their stream's reader: a retry tries a stream's
// victims only while its channel has room, so a stalled stream with many
// victims costs the syncer nothing, and each watcher still gets every
// event once, in order, when the reader comes back.
func TestWatchStalledStreamVictims(t *testing.T) {
	// The reader stalls once every watcher is made: each gets an event,
	// and those past the channel's room become victims.
	const n = 4 * watchChanBufLen
	ws, st := stalledStream(t, n, true)
	if s := ws.Stats(); s.Slow != n-watchChanBufLen {
		t.Fatalf("%d slow watchers, want %d", s.Slow, n-watchChanBufLen)
	}
	if tries := retryCountingVictims(ws, 3); tries != 0 {
		t.Fatalf("retries of a stalled stream tried %d victims, want 0", tries)
	}

	// The reader comes back; the syncer's retries and catch-up rounds
	// deliver the rest.
	seen := map[WatchID]int{}
	readPlayingSyncer(t, ws, st, n, func(r WatchResponse) {
		for _, ev := range r.Events {
			if string(ev.Kv.Value) != "v1" {
				t.Fatalf("watcher %d: event %s", r.WatchID, ev.Kv.Value)
			}
			seen[r.WatchID]++
		}
	})
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("watcher %d got its event %d times", id, c)
		}
	}
	for i := 0; ws.syncRound(); i++ { // the last ones sent rejoin the synced
		if i == n {
			t.Fatal("the syncer's rounds never end")
		}
	}
	if s := ws.Stats(); s.Slow != 0 {
		t.Fatalf("%d slow watchers once everything was read", s.Slow)
	}
}

// The reader wakes the syncer once it has made room, whatever waits for
// it: a victim's events, or answers to creates (here refusals only).
func TestWatchReaderWakesSyncer(t *testing.T) {
	for _, what := range []string{"victim", "refusal"} {
		t.Run(what, func(t *testing.T) {
			ws, wr := newWatchable(t)
			ws.Close() // the syncer stops: the test plays it
			st := ws.NewWatchStream()
			if what == "victim" {
				watch(t, st, "k", "", 0, false)
				for range watchChanBufLen {
					wr.do(func(tw *TxnWrite) { tw.Put([]byte("k"), []byte("v"), 0) })
				}
				if s := ws.Stats(); s.Slow != 1 {
					t.Fatalf("%d slow watchers, want the one", s.Slow)
				}
			} else {
				for range watchChanBufLen + 1 {
					st.Refuse("no")
				}
			}
			select { // the response that did not fit asked for a retry
			case <-ws.syncc:
			default:
				t.Fatal("no retry asked for")
			}
			for i := range watchChanBufLen / 2 {
				if len(ws.syncc) != 0 {
					t.Fatalf("the syncer woken after %d responses read, with the channel still over half full", i)
				}
				st.Sent(<-st.Chan())
			}
			if len(ws.syncc) != 1 {
				t.Fatal("the reader made room and the syncer was not woken")
			}
			ws.retryVictims()
			if n := len(st.Chan()); n != watchChanBufLen/2+1 {
				t.Fatalf("%d responses in the channel after the retry, want %d", n, watchChanBufLen/2+1)
			}
		})
	}
}

// Victims whose Created is still owed: a retry with room in the channel
// sends the owed answers first, in order, and tries no victim once the
// channel is full; then everything arrives, each watcher's Created before
// its event. (retryVictims also passes over a stream still owing answers
// after its flush, which only a reader taking responses during the retry
// brings about: not played here.)
func TestWatchVictimsOwingCreatedNotWalked(t *testing.T) {
	const n = 3 * watchChanBufLen
	ws, st := stalledStream(t, n, false) // events for watchers whose Created is owed
	if s := ws.Stats(); s.Slow < n-watchChanBufLen {
		t.Fatalf("%d slow watchers, want at least %d", s.Slow, n-watchChanBufLen)
	}
	created := map[WatchID]bool{}
	for range watchChanBufLen / 2 {
		r := <-st.Chan()
		st.Sent(r)
		created[r.WatchID] = r.Created
	}
	if tries := retryCountingVictims(ws, 1); tries != 0 || len(st.Chan()) != watchChanBufLen {
		t.Fatalf("retry: %d victims tried, %d responses in the channel; want 0 and a full channel of answers", tries, len(st.Chan()))
	}
	// Everything still arrives, each watcher's Created before its event.
	readPlayingSyncer(t, ws, st, n, func(r WatchResponse) {
		if r.Created {
			created[r.WatchID] = true
		} else if !created[r.WatchID] {
			t.Fatalf("watcher %d: an event before its Created", r.WatchID)
		}
	})
}

// A closing stream's victims are not tried between Close's chunks: its
// answers to creates are dropped at once, so its victims whose Created
// is owed could never be sent, and a retry walking them every tick undid
// the chunks (writes waiting 19-43 ms again with 100,000 watchers).
func TestWatchClosingStreamVictimsNotWalked(t *testing.T) {
	ws, st := stalledStream(t, 4*watchChanBufLen, false)
	for range watchChanBufLen / 2 { // room, then the client goes away
		st.Sent(<-st.Chan())
	}
	tries, pauses := 0, 0
	ws.betweenCloseChunks = func() {
		pauses++
		tries += retryCountingVictims(ws, 1)
	}
	st.Close()
	if pauses == 0 || tries != 0 {
		t.Fatalf("%d victims tried in %d pauses of Close, want none", tries, pauses)
	}
	if s := ws.Stats(); s.Slow != 0 || s.Watchers != 0 {
		t.Fatalf("after Close: %+v", s)
	}
}

package mvcc

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

const (
	// watchChanBufLen is how many responses a stream's channel holds
	// before its watchers are moved aside (see WatchableStore).
	watchChanBufLen = 128
	// maxRevsPerSync bounds the revisions one catch-up round reads, so
	// that the round, during which writes wait to notify, stays short.
	maxRevsPerSync = 1000
	// victimRetry is how often the syncer retries watchers whose stream
	// was full.
	victimRetry = 10 * time.Millisecond
)

// ErrWatcherNotFound is a Cancel of an unknown watch ID.
var ErrWatcherNotFound = errors.New("mvcc: watcher not found")

// WatchID names a watcher within its stream.
type WatchID int64

// WatchResponse is what a watcher is sent: events, all of whole revisions
// and in revision order; or, if CompactRevision is set, notice that the
// revisions it asked for are compacted, after which it is gone.
type WatchResponse struct {
	WatchID WatchID
	// Events must not be modified: watchers share them.
	Events []*mvccpb.Event
	// Revision is the store's revision the response brings the watcher
	// up to.
	Revision        int64
	CompactRevision int64
}

// WatchableStore is a Store whose changes watchers follow from any
// revision not compacted.
//
// Watchers are in one of three groups. Synced watchers are up to date and
// are sent each revision's events as it is applied. Unsynced watchers
// start in the past (or fell behind) and a goroutine the store owns (the
// syncer) catches them up from the backend, a bounded number of revisions
// a round, then moves them to synced. A watcher whose stream's channel is
// full is a victim: it keeps what it could not send, the syncer retries,
// and once sent it catches up as an unsynced watcher. No send ever blocks,
// so a slow consumer never holds up writes.
//
// Lock order: Store.writeMu (notify runs under it), then mu, then
// Store.mu and the index's lock. A WatchStream has no lock of its own: mu
// guards it.
type WatchableStore struct {
	*Store

	mu struct {
		sync.Mutex
		synced   map[*watcher]struct{}
		unsynced map[*watcher]struct{}
		victims  map[*watcher]struct{}
	}

	// syncc wakes the syncer; size 1, so a wake-up is never lost and
	// never blocks.
	syncc     chan struct{}
	stopc     chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// watcher follows a key range. Its fields after stream are guarded by
// WatchableStore.mu.
type watcher struct {
	id       WatchID
	key, end []byte
	prevKV   bool
	stream   *WatchStream

	// next is the first revision the watcher has not been sent.
	next int64
	// pending are responses not yet sent (a victim's).
	pending []WatchResponse
	// compacted is set once the watcher is told its start is compacted:
	// it is removed when that is sent.
	compacted bool
}

// NewWatchable makes s watchable and starts its syncer. Close stops it.
func NewWatchable(s *Store) *WatchableStore {
	ws := &WatchableStore{Store: s, syncc: make(chan struct{}, 1), stopc: make(chan struct{})}
	ws.mu.synced = map[*watcher]struct{}{}
	ws.mu.unsynced = map[*watcher]struct{}{}
	ws.mu.victims = map[*watcher]struct{}{}
	s.notify = ws.notify
	ws.wg.Add(1)
	go ws.syncLoop()
	return ws
}

// Close stops the syncer and the store's background work. Streams stay
// open; their owners close them.
func (ws *WatchableStore) Close() {
	ws.closeOnce.Do(func() {
		close(ws.stopc)
		ws.wg.Wait()
		ws.Store.Close()
	})
}

// WatchStream is a set of watchers sharing one channel of responses, as
// an etcd Watch RPC stream does.
type WatchStream struct {
	ws *WatchableStore
	ch chan WatchResponse

	// Guarded by ws.mu (the channel is closed under it, so that no send
	// races the close).
	watchers map[WatchID]*watcher
	nextID   WatchID
	closed   bool
}

// NewWatchStream opens a stream.
func (ws *WatchableStore) NewWatchStream() *WatchStream {
	return &WatchStream{ws: ws, ch: make(chan WatchResponse, watchChanBufLen), watchers: map[WatchID]*watcher{}}
}

// Chan returns the stream's responses. It is closed by Close.
func (st *WatchStream) Chan() <-chan WatchResponse { return st.ch }

// Watch starts a watcher on a range (as for Range) from revision startRev:
// 0 means from the next change. Events before startRev are not sent; if
// startRev is compacted, the watcher is sent a response with
// CompactRevision set, and removed.
func (st *WatchStream) Watch(key, end []byte, startRev int64, prevKV bool) (WatchID, error) {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if st.closed {
		return 0, errors.New("mvcc: watch stream closed")
	}
	id := st.nextID
	st.nextID++
	w := &watcher{id: id, key: bytes.Clone(key), end: bytes.Clone(end), prevKV: prevKV, stream: st}
	st.watchers[id] = w
	current := ws.Rev()
	switch {
	case startRev == 0:
		w.next = current + 1
		ws.mu.synced[w] = struct{}{}
	case startRev > current:
		w.next = startRev
		ws.mu.synced[w] = struct{}{}
	default:
		w.next = startRev
		ws.mu.unsynced[w] = struct{}{}
		ws.wake()
	}
	return id, nil
}

// Cancel removes a watcher. Responses it was already sent stay in the
// channel.
func (st *WatchStream) Cancel(id WatchID) error {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := st.watchers[id]
	if !ok {
		return ErrWatcherNotFound
	}
	ws.removeLocked(w)
	return nil
}

// Close cancels every watcher and closes the channel.
func (st *WatchStream) Close() {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if st.closed {
		return
	}
	for _, w := range st.watchers {
		ws.removeLocked(w)
	}
	st.closed = true
	close(st.ch)
}

// REQUIRES: ws.mu held.
func (ws *WatchableStore) removeLocked(w *watcher) {
	delete(ws.mu.synced, w)
	delete(ws.mu.unsynced, w)
	delete(ws.mu.victims, w)
	delete(w.stream.watchers, w.id)
}

func (ws *WatchableStore) wake() {
	select {
	case ws.syncc <- struct{}{}:
	default:
	}
}

func (w *watcher) matches(key []byte) bool {
	return span{w.key, w.end}.contains(key)
}

// trySendLocked sends what the watcher has pending, in order, without
// blocking; it reports whether everything went.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) trySendLocked(w *watcher) bool {
	for len(w.pending) > 0 {
		select {
		case w.stream.ch <- w.pending[0]:
			w.pending = w.pending[1:]
		default:
			return false
		}
	}
	if w.compacted {
		ws.removeLocked(w)
	}
	return true
}

// notify hands a committed revision's events to the synced watchers. The
// Store calls it under its writeMu, in revision order.
func (ws *WatchableStore) notify(rev int64, events []*mvccpb.Event) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	prev := prevKVs{ws: ws, rev: rev}
	for w := range ws.mu.synced {
		if w.next > rev {
			continue // it starts later, or a catch-up already sent rev
		}
		w.next = rev + 1
		evs := w.filter(events, &prev)
		if len(evs) == 0 {
			continue
		}
		w.pending = append(w.pending, WatchResponse{WatchID: w.id, Events: evs, Revision: rev})
		if !ws.trySendLocked(w) {
			// Move it aside; later revisions come from the backend once
			// this is sent.
			delete(ws.mu.synced, w)
			ws.mu.victims[w] = struct{}{}
			ws.wake()
		}
	}
}

// filter returns the events in w's range, with their previous KeyValues
// if w asked for them.
func (w *watcher) filter(events []*mvccpb.Event, prev *prevKVs) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range events {
		if !w.matches(ev.Kv.Key) {
			continue
		}
		if w.prevKV {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev.get(ev.Kv.Key, ev.Kv.ModRevision)}
		}
		out = append(out, ev)
	}
	return out
}

// prevKVs looks up, once per key, what keys held before a revision.
type prevKVs struct {
	ws    *WatchableStore
	rev   int64
	cache map[string]*mvccpb.KeyValue
}

func (p *prevKVs) get(key []byte, rev int64) *mvccpb.KeyValue {
	if p.cache == nil || p.rev != rev {
		p.cache, p.rev = map[string]*mvccpb.KeyValue{}, rev
	}
	if kv, ok := p.cache[string(key)]; ok {
		return kv
	}
	var kv *mvccpb.KeyValue
	// Below the compaction there is nothing to tell: no previous KeyValue.
	if res, err := p.ws.Store.Range(key, nil, RangeOptions{Rev: rev - 1}); err == nil && len(res.KVs) == 1 {
		kv = res.KVs[0]
	}
	p.cache[string(key)] = kv
	return kv
}

// syncLoop is the syncer: it retries victims and catches up unsynced
// watchers whenever woken, and every victimRetry while victims wait.
func (ws *WatchableStore) syncLoop() {
	defer ws.wg.Done()
	ticker := time.NewTicker(victimRetry)
	defer ticker.Stop()
	for {
		select {
		case <-ws.stopc:
			return
		case <-ws.syncc:
		case <-ticker.C:
		}
		ws.retryVictims()
		if ws.syncRound() {
			ws.wake() // more to do
		}
	}
}

func (ws *WatchableStore) retryVictims() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.mu.victims {
		if ws.trySendLocked(w) && !w.compacted {
			delete(ws.mu.victims, w)
			ws.mu.unsynced[w] = struct{}{}
		}
	}
}

// syncRound catches unsynced watchers up by at most maxRevsPerSync
// revisions, moving those it brings up to date to synced. It reports
// whether unsynced watchers remain.
func (ws *WatchableStore) syncRound() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.mu.unsynced) == 0 {
		return false
	}
	// The view and both revisions under one read lock: no revision is
	// published meanwhile (the view may hold a commit not yet published,
	// whose notify then comes after this round), and whatever the view
	// lacks was removed by a compaction already recorded.
	ws.Store.mu.RLock()
	view := ws.b.NewReadView()
	current, compacted := ws.Store.mu.currentRev, ws.Store.mu.compactRev
	ws.Store.mu.RUnlock()
	defer view.Close()

	from := current + 1
	for w := range ws.mu.unsynced {
		if w.next < compacted {
			w.compacted = true
			w.pending = append(w.pending, WatchResponse{WatchID: w.id, Revision: current, CompactRevision: compacted})
			delete(ws.mu.unsynced, w)
			if !ws.trySendLocked(w) {
				ws.mu.victims[w] = struct{}{}
			}
			continue
		}
		from = min(from, w.next)
	}
	if from > current {
		for w := range ws.mu.unsynced {
			delete(ws.mu.unsynced, w)
			ws.mu.synced[w] = struct{}{}
		}
		return false
	}
	to := min(current, from+maxRevsPerSync-1)
	events, err := readEvents(view, from, to)
	if err != nil {
		// The ticker retries; waking at once would spin on the error.
		ws.logger.Error("mvcc: reading events for watchers; retrying", zap.Error(err))
		return false
	}
	for w := range ws.mu.unsynced {
		if w.next > to {
			continue
		}
		var mine []*mvccpb.Event
		for _, ev := range events {
			if ev.Kv.ModRevision >= w.next {
				mine = append(mine, ev)
			}
		}
		prev := prevKVs{ws: ws}
		evs := w.filter(mine, &prev)
		w.next = to + 1
		if len(evs) > 0 {
			w.pending = append(w.pending, WatchResponse{WatchID: w.id, Events: evs, Revision: to})
		}
		if !ws.trySendLocked(w) {
			delete(ws.mu.unsynced, w)
			ws.mu.victims[w] = struct{}{}
			continue
		}
		if w.next > current {
			delete(ws.mu.unsynced, w)
			ws.mu.synced[w] = struct{}{}
		}
	}
	return len(ws.mu.unsynced) > 0
}

// readEvents reads the events of revisions from..to from the backend, in
// order.
func readEvents(view interface {
	Scan(start, end []byte, fn func(key, value []byte) bool) error
}, from, to int64) ([]*mvccpb.Event, error) {
	var (
		events []*mvccpb.Event
		err    error
	)
	scanErr := view.Scan(revisionKey(Revision{Main: from}, false), revisionKey(Revision{Main: to + 1}, false),
		func(k, v []byte) bool {
			rev, tombstone, perr := parseRevisionKey(k)
			kv := &mvccpb.KeyValue{}
			if perr == nil {
				perr = kv.Unmarshal(v)
			}
			if perr != nil {
				err = perr
				return false
			}
			if tombstone {
				events = append(events, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: rev.Main}})
			} else {
				events = append(events, &mvccpb.Event{Type: mvccpb.PUT, Kv: kv})
			}
			return true
		})
	return events, errors.Join(scanErr, err)
}

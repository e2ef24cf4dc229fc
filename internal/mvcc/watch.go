package mvcc

import (
	"bytes"
	"errors"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/backend"
)

const (
	// watchChanBufLen is how many responses a stream's channel holds
	// before its watchers are moved aside (see WatchableStore).
	watchChanBufLen = 128
	// maxRevsPerSync and maxBytesPerSync bound what one catch-up round
	// reads (whole revisions, at least one), and maxWatchersPerSync the
	// watchers it serves (etcd's numbers, and a byte bound), so that the
	// round, during which writes wait to notify, stays short, and so does
	// each response it makes.
	maxRevsPerSync     = 1000
	maxBytesPerSync    = 1 << 20
	maxWatchersPerSync = 512
	// victimRetry is how often the syncer retries watchers whose stream
	// was full, and progress responses owed.
	victimRetry = 10 * time.Millisecond
	// MaxWatchersPerStream bounds the watchers of one stream (etcd has no
	// such bound): each costs memory for as long as the stream lives.
	MaxWatchersPerStream = 100000
	// ProgressWatchID is the watch ID of a progress response sent for
	// every watcher of a stream (etcd's InvalidWatchID).
	ProgressWatchID WatchID = -1
)

// Errors of Watch and Cancel; the first three are etcd's, word for word,
// since clients are sent them as cancel reasons.
var (
	ErrEmptyWatcherRange  = errors.New("mvcc: watcher range is empty")
	ErrWatcherDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	ErrWatcherNotFound    = errors.New("mvcc: watcher does not exist")
	ErrTooManyWatchers    = errors.New("mvcc: too many watchers on one stream (100000)")
	ErrWatchStreamClosed  = errors.New("mvcc: watch stream closed")
)

// WatchID names a watcher within its stream.
type WatchID int64

// WatchResponse is what a stream sends, for one watcher or (WatchID
// ProgressWatchID) for all of them. Exactly one of these:
//   - Created: the watcher exists; nothing for it comes before this.
//   - Events: all of whole revisions, in revision order.
//   - CompactRevision set: the revisions the watcher asked for are
//     compacted; it is gone, and nothing for it follows.
//   - Canceled: the watcher is cancelled; nothing for it follows.
//   - none of them: progress. Every event up to Revision was sent.
type WatchResponse struct {
	WatchID WatchID
	// Events must not be modified: watchers share them.
	Events []*mvccpb.Event
	// Revision is the store's revision as of the response (as etcd's
	// header revision). For events of a revision just written, it is
	// that revision; for a compacted watcher, it is 0, as in etcd.
	Revision        int64
	CompactRevision int64
	Created         bool
	Canceled        bool
	// CancelReason says why a create was refused (see Refuse).
	CancelReason string
}

// WatchOptions says what a watcher follows.
type WatchOptions struct {
	// ID is the watcher's ID; 0 lets the stream choose the lowest unused
	// one (etcd's AutoWatchID).
	ID WatchID
	// Key and End are a range as for Range: End empty for one key, "\x00"
	// for every key from Key on.
	Key, End []byte
	// StartRev is the first revision to send; 0 means the next one.
	StartRev int64
	// PrevKV attaches to each event the key's previous KeyValue, if any.
	PrevKV bool
	// NoPut and NoDelete leave out put and delete events.
	NoPut, NoDelete bool
}

// WatchableStore lets watchers follow the changes of a Store (the
// attached one, which a snapshot restore replaces) from any revision not
// compacted.
//
// Watchers are in one of three states. Synced watchers are up to date (as
// of mu.rev) and are sent each revision's events as it is applied.
// Unsynced watchers start in the past, or fell behind, and a goroutine the
// store owns (the syncer) catches them up from the backend, a bounded
// amount a round, then moves them to synced. A watcher whose stream's
// channel is full is a victim: it keeps what it could not send (at most
// three responses: created, events and a final one), the syncer retries,
// and once sent it catches up as an unsynced watcher. No send ever blocks,
// so a slow consumer never holds up writes, and its memory is bounded.
//
// Lock order: Store.writeMu (notify runs under it), then mu, then
// Store.mu and the index's lock. A WatchStream has no lock of its own: mu
// guards it.
type WatchableStore struct {
	logger *zap.Logger
	// metrics are the first store's, which every store attached after
	// shares (the applier hands each the same).
	metrics *Metrics

	mu struct {
		sync.Mutex
		// store is the store followed: nil while detached (a restore).
		store *Store
		// rev is the last revision whose events were handed out: synced
		// watchers have everything up to it. It trails the store's own
		// revision by the notification in progress, if any.
		rev      int64
		synced   watcherGroup
		unsynced map[*watcher]struct{}
		// victims are the streams with victims (WatchStream.victims);
		// nvictims counts the victims of all of them.
		victims  map[*WatchStream]struct{}
		nvictims int
		// progress are the streams owed a progress response.
		progress map[*WatchStream]struct{}
		// announcing are the streams whose create answers wait for room.
		announcing map[*WatchStream]struct{}
		// streams and watchers count the open streams and their watchers.
		streams, watchers int
		// caught is what the last catch-up round read, which the rounds
		// after it serve from while their watchers start within it
		// (see caughtUpEventsLocked).
		caught eventCache
		// catchUpReads counts the rounds that read the backend, and
		// victimTries the victims retryVictims tried to send (tests).
		catchUpReads, victimTries int
	}

	// syncc wakes the syncer; size 1, so a wake-up is never lost and
	// never blocks.
	syncc     chan struct{}
	stopc     chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	// betweenCloseChunks, if set (by tests), runs between two chunks of a
	// WatchStream's Close, without ws.mu.
	betweenCloseChunks func()
}

type watcherState int

const (
	stateSynced watcherState = iota
	stateUnsynced
	stateVictim
	// stateCompacted is a watcher told its start is compacted: it is in
	// no group, and sends nothing more, but keeps its ID until cancelled,
	// as in etcd (where a Cancel of it is answered, and its ID is taken).
	stateCompacted
)

// watcherEnd is what a watcher's last response, once pending, says.
type watcherEnd int

const (
	endNone watcherEnd = iota
	endCompacted
	endCanceled
)

// watcher follows a key range. Its fields after filter are guarded by
// WatchableStore.mu.
type watcher struct {
	id       WatchID
	key, end []byte
	prevKV   bool
	noPut    bool
	noDelete bool
	// startRev is the start revision asked for (0 for none): until the
	// store reaches it, no progress response is sent, as in etcd, so a
	// client never hears of progress short of where it asked to start.
	startRev int64
	stream   *WatchStream

	state watcherState
	// next is the first revision the watcher has not been sent. A synced
	// watcher not in the last notification may lag mu.rev: it had
	// nothing there.
	next int64
	// pending are responses not yet sent (a victim's), in order.
	pending []WatchResponse
	// last is set once the watcher's last response is pending: when it is
	// sent, a cancelled watcher is removed and a compacted one moves to
	// stateCompacted.
	last watcherEnd
}

// NewWatchable makes a watchable store following s, and starts its
// syncer. Close stops it.
func NewWatchable(s *Store) *WatchableStore {
	ws := &WatchableStore{logger: s.logger, metrics: s.metrics, syncc: make(chan struct{}, 1), stopc: make(chan struct{})}
	ws.mu.synced.init()
	ws.mu.unsynced = map[*watcher]struct{}{}
	ws.mu.victims = map[*WatchStream]struct{}{}
	ws.mu.progress = map[*WatchStream]struct{}{}
	ws.mu.announcing = map[*WatchStream]struct{}{}
	ws.Attach(s)
	ws.wg.Add(1)
	go ws.syncLoop()
	return ws
}

// Close stops the syncer. Streams stay open (their owners close them);
// the store stays open (its owner closes it).
func (ws *WatchableStore) Close() {
	ws.closeOnce.Do(func() {
		close(ws.stopc)
		ws.wg.Wait()
	})
}

// Detach stops following the store, which may then be closed: watchers
// wait, and nothing may write to any store until Attach.
func (ws *WatchableStore) Detach() {
	ws.mu.Lock()
	s := ws.mu.store
	ws.mu.Unlock()
	if s == nil {
		return
	}
	// The lock order: the store's writeMu first.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	s.notify = nil
	ws.mu.store = nil
	ws.mu.caught = eventCache{}
}

// Attach follows s from now on: a store restored from a snapshot, whose
// revision jumped. Watchers that were up to date catch up from s, as
// if they had fallen behind; so their next event is the first one after
// what they were sent, or, if s compacted it, a compacted response.
func (ws *WatchableStore) Attach(s *Store) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	s.notify = ws.notify
	old := ws.mu.rev
	ws.mu.store, ws.mu.rev = s, s.Rev()
	ws.mu.synced.each(func(w *watcher) {
		ws.mu.synced.remove(w)
		w.next = max(w.next, old+1)
		w.state = stateUnsynced
		ws.mu.unsynced[w] = struct{}{}
	})
	ws.wake()
}

// Rev is the last revision watchers were told of.
func (ws *WatchableStore) Rev() int64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.mu.rev
}

// WatchStream is a set of watchers sharing one channel of responses, as
// an etcd Watch RPC stream does.
type WatchStream struct {
	ws *WatchableStore
	ch chan WatchResponse

	// Guarded by ws.mu (the channel is closed under it, so that no send
	// races the close).
	watchers map[WatchID]*watcher
	// victims are its watchers whose responses wait for room in ch.
	victims map[*watcher]struct{}
	nextID  WatchID
	// waiting is set while the stream has victims or owes create
	// answers (it is in ws.mu.victims or ws.mu.announcing): Sent then
	// wakes the syncer once the reader has made room.
	waiting atomic.Bool
	closed  bool
	// announce are the answers to creates not sent yet, in the order the
	// creates came: a watcher, whose pending starts with its Created, or
	// a refusal. They go out in that order, as etcd's do, so a client that
	// pairs answers with its creates in order is never misled.
	announce []announcement
}

type announcement struct {
	w       *watcher      // nil for a refusal
	refusal WatchResponse // if w is nil
}

// NewWatchStream opens a stream.
func (ws *WatchableStore) NewWatchStream() *WatchStream {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.mu.streams++
	return &WatchStream{ws: ws, ch: make(chan WatchResponse, watchChanBufLen), watchers: map[WatchID]*watcher{}}
}

// WatchStats counts streams and watchers, for metrics.
type WatchStats struct {
	Streams, Watchers int
	// Slow are the watchers behind: catching up, or whose stream is full.
	Slow int
}

// Stats returns the current counts.
func (ws *WatchableStore) Stats() WatchStats {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return WatchStats{Streams: ws.mu.streams, Watchers: ws.mu.watchers, Slow: len(ws.mu.unsynced) + ws.mu.nvictims}
}

// Chan returns the stream's responses. It is closed by Close.
func (st *WatchStream) Chan() <-chan WatchResponse { return st.ch }

// Watch starts a watcher. Its first response is Created (with the
// revision it is current as of); then come its events from o.StartRev on
// (from the next revision if 0), or, if o.StartRev is compacted, a
// response with CompactRevision set, after which it is gone.
func (st *WatchStream) Watch(o WatchOptions) (WatchID, error) {
	if o.StartRev < 0 {
		// As etcd reads it: from the beginning (or compacted).
		o.StartRev = 1
	}
	isFromKey := len(o.End) == 1 && o.End[0] == 0
	if len(o.End) > 0 && !isFromKey && bytes.Compare(o.Key, o.End) >= 0 {
		return -1, ErrEmptyWatcherRange
	}
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch {
	case st.closed:
		return -1, ErrWatchStreamClosed
	case len(st.watchers) >= MaxWatchersPerStream:
		return -1, ErrTooManyWatchers
	}
	id := o.ID
	if id == 0 {
		for st.watchers[st.nextID] != nil {
			st.nextID++
		}
		id = st.nextID
		st.nextID++
	} else if _, ok := st.watchers[id]; ok {
		return -1, ErrWatcherDuplicateID
	}
	w := &watcher{id: id, key: bytes.Clone(o.Key), end: bytes.Clone(o.End), prevKV: o.PrevKV,
		noPut: o.NoPut, noDelete: o.NoDelete, startRev: o.StartRev, stream: st}
	st.watchers[id] = w
	ws.mu.watchers++
	current := ws.mu.rev
	w.pending = []WatchResponse{{WatchID: id, Created: true, Revision: current}}
	switch {
	case o.StartRev == 0:
		w.next = current + 1
	case o.StartRev > current:
		w.next = o.StartRev
	default:
		w.next = o.StartRev
		w.state = stateUnsynced
	}
	if w.state == stateSynced {
		ws.mu.synced.add(w)
	} else {
		ws.mu.unsynced[w] = struct{}{}
		ws.wake()
	}
	st.announce = append(st.announce, announcement{w: w})
	ws.flushAnnounceLocked(st)
	return id, nil
}

// Refuse answers a create that failed: a response with WatchID
// ProgressWatchID, Created and Canceled set, and reason, as etcd's, sent
// after the answers to the creates before it.
func (st *WatchStream) Refuse(reason string) {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if st.closed {
		return
	}
	st.announce = append(st.announce, announcement{refusal: WatchResponse{WatchID: ProgressWatchID, Created: true,
		Canceled: true, CancelReason: reason, Revision: ws.mu.rev}})
	ws.flushAnnounceLocked(st)
}

// flushAnnounceLocked sends st's create answers, in order, while the
// channel has room; the syncer retries the rest.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) flushAnnounceLocked(st *WatchStream) {
	for len(st.announce) > 0 {
		a := st.announce[0]
		if a.w == nil {
			select {
			case st.ch <- a.refusal:
				st.announce[0] = announcement{}
				st.announce = st.announce[1:]
				continue
			default:
			}
		} else if ws.sendOrSetAsideLocked(a.w); len(st.announce) == 0 || st.announce[0].w != a.w {
			continue // its Created went, which took it off the queue
		}
		if _, ok := ws.mu.announcing[st]; !ok {
			// Once: the syncer's retry comes back here while the
			// channel is full, and a wake-up each time spun it. The
			// reader's Sent wakes it when there is room.
			ws.mu.announcing[st] = struct{}{}
			ws.setWaitingLocked(st)
			ws.wake()
		}
		return
	}
	st.announce = nil
	delete(ws.mu.announcing, st)
	ws.setWaitingLocked(st)
}

// Cancel removes a watcher. It is sent a Canceled response, after what
// it was sent before; nothing after.
func (st *WatchStream) Cancel(id WatchID) error {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := st.watchers[id]
	if !ok || w.last == endCanceled {
		return ErrWatcherNotFound
	}
	ws.closeLocked(w, WatchResponse{WatchID: id, Canceled: true, Revision: ws.mu.rev}, endCanceled)
	return nil
}

// RequestProgress sends the watcher a progress response, if it is up to
// date and the channel has room; else nothing (it is periodic: the next
// one will do).
func (st *WatchStream) RequestProgress(id WatchID) {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w, ok := st.watchers[id]; !ok || !ws.upToDateLocked(w) {
		return
	}
	select {
	case st.ch <- WatchResponse{WatchID: id, Revision: ws.mu.rev}:
	default:
	}
}

// RequestProgressAll sends one progress response for the whole stream
// (WatchID ProgressWatchID) as soon as every watcher on it is up to date
// and the channel has room: its revision then bounds every event sent
// before it, on every watcher. Requests made while one is owed are
// answered together. A stream with no watchers is sent nothing, as in
// etcd.
func (st *WatchStream) RequestProgressAll() {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if st.closed {
		return
	}
	if !ws.progressLocked(st) {
		ws.mu.progress[st] = struct{}{}
		ws.wake()
	}
}

// progressLocked sends st's stream-wide progress response if it can.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) progressLocked(st *WatchStream) bool {
	if len(st.watchers) == 0 {
		return true // as etcd: no watcher, no response
	}
	if len(st.announce) > 0 {
		return false
	}
	for _, w := range st.watchers {
		if ws.progressBlockedLocked(w) {
			return false
		}
	}
	select {
	case st.ch <- WatchResponse{WatchID: ProgressWatchID, Revision: ws.mu.rev}:
		return true
	default:
		return false
	}
}

// upToDateLocked reports whether w has been sent everything up to mu.rev,
// and mu.rev is not short of where it asked to start.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) upToDateLocked(w *watcher) bool {
	return w.state == stateSynced && len(w.pending) == 0 && ws.mu.rev >= w.startRev
}

// progressBlockedLocked reports whether w keeps its stream from a
// progress response. A compacted watcher does not, once told: in etcd it
// does until cancelled, so a stream that does not cancel it never hears
// of progress again (a difference the README lists).
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) progressBlockedLocked(w *watcher) bool {
	return w.state != stateCompacted && !ws.upToDateLocked(w)
}

// Close cancels every watcher and closes the channel. The watchers leave
// closeChunk at a time, and every applied write waits for ws.mu to notify
// its watchers: a stream of 100,000 watchers took 110-135 ms to close
// under one hold, and a write waited as long; now 0.9-5.7 ms with a key
// each (BenchmarkWriteDuringStreamClose), the close taking longer.
//
// From the first hold on, the stream takes no new watcher (Watch and
// Refuse see st.closed) and owes no create answer or progress response;
// the watchers not yet removed go on meanwhile (an event, a cancel, a
// catch-up may still send to the channel, which is closed once the last
// has left). So a second Close may return before the first is done, and
// the channel's reader must have stopped reading (Close drains it).
func (st *WatchStream) Close() {
	ws := st.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if st.closed {
		return
	}
	st.closed = true
	// Before any watcher is removed: an announcement would hand a removed
	// watcher back to a group (flushAnnounceLocked).
	delete(ws.mu.progress, st)
	delete(ws.mu.announcing, st)
	st.announce = nil
	ws.setWaitingLocked(st)
	for {
		n := 0
		for _, w := range st.watchers {
			ws.removeLocked(w) // deletes it from st.watchers: allowed during range
			if n++; n == closeChunk {
				break
			}
		}
		if len(st.watchers) == 0 {
			break
		}
		ws.mu.Unlock()
		runtime.Gosched() // a write woken by the unlock takes the lock
		if ws.betweenCloseChunks != nil {
			ws.betweenCloseChunks()
		}
		ws.mu.Lock()
	}
	ws.mu.streams--
	close(st.ch)
	// What was never taken will never be sent.
	for r := range st.ch {
		ws.metrics.pendingEvents.Sub(float64(len(r.Events)))
	}
}

// closeChunk is how many watchers Close removes under one hold of ws.mu:
// about 0.3 ms.
const closeChunk = 256

// Sent tells the stream that the events of a response taken from Chan
// were sent to the client (the events metrics).
//
// While responses wait for room (victims, owed create answers), it wakes
// the syncer once the channel is half empty: the syncer retries them on
// its ticker otherwise, one channel's worth (128) every 10 ms.
func (st *WatchStream) Sent(r WatchResponse) {
	if n := len(r.Events); n > 0 {
		st.ws.metrics.pendingEvents.Sub(float64(n))
		st.ws.metrics.events.Add(float64(n))
	}
	if st.waiting.Load() && len(st.ch) <= cap(st.ch)/2 {
		st.ws.wake()
	}
}

// setWaitingLocked updates st.waiting.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) setWaitingLocked(st *WatchStream) {
	_, announcing := ws.mu.announcing[st]
	st.waiting.Store(len(st.victims) > 0 || announcing)
}

// closeLocked ends w with its last response: w leaves its group at once,
// and, if cancelled, its stream once that response is sent.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) closeLocked(w *watcher, last WatchResponse, end watcherEnd) {
	ws.leaveGroupLocked(w)
	w.last = end
	w.pending = append(w.pending, last)
	w.state = stateVictim
	ws.addVictimLocked(w)
	if !ws.sendOrSetAsideLocked(w) {
		// Already a victim, setAsideLocked woke no one: the syncer
		// retries it (or the reader's Sent wakes it).
		ws.wake()
	}
}

// REQUIRES: ws.mu held.
func (ws *WatchableStore) leaveGroupLocked(w *watcher) {
	switch w.state {
	case stateSynced:
		ws.mu.synced.remove(w)
	case stateUnsynced:
		delete(ws.mu.unsynced, w)
	case stateVictim:
		ws.removeVictimLocked(w)
	}
}

// addVictimLocked and removeVictimLocked keep w in (out of) its stream's
// victims, and the stream in (out of) ws.mu.victims while it has any.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) addVictimLocked(w *watcher) {
	st := w.stream
	if _, ok := st.victims[w]; ok {
		return
	}
	if st.victims == nil {
		st.victims = map[*watcher]struct{}{}
	}
	st.victims[w] = struct{}{}
	ws.mu.victims[st] = struct{}{}
	ws.mu.nvictims++
	ws.setWaitingLocked(st)
}

// REQUIRES: ws.mu held.
func (ws *WatchableStore) removeVictimLocked(w *watcher) {
	st := w.stream
	if _, ok := st.victims[w]; !ok {
		return
	}
	delete(st.victims, w)
	ws.mu.nvictims--
	if len(st.victims) == 0 {
		st.victims = nil // a map keeps its size: 100k victims once, 1-2 MB
		delete(ws.mu.victims, st)
		ws.setWaitingLocked(st)
	}
}

// REQUIRES: ws.mu held.
func (ws *WatchableStore) removeLocked(w *watcher) {
	ws.leaveGroupLocked(w)
	delete(w.stream.watchers, w.id)
	ws.mu.watchers--
}

func (ws *WatchableStore) wake() {
	select {
	case ws.syncc <- struct{}{}:
	default:
	}
}

// sendOrSetAsideLocked sends what w has pending, in order, without
// blocking. If the channel is full, w becomes a victim. Once everything is
// sent, a cancelled watcher is removed, a compacted one set aside, and a
// victim catches up as unsynced. It reports whether everything was sent.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) sendOrSetAsideLocked(w *watcher) bool {
	st := w.stream
	for len(w.pending) > 0 {
		created := w.pending[0].Created
		if created && (len(st.announce) == 0 || st.announce[0].w != w) {
			// Answers to earlier creates go first.
			ws.setAsideLocked(w)
			return false
		}
		select {
		case st.ch <- w.pending[0]:
			if n := len(w.pending[0].Events); n > 0 {
				ws.metrics.pendingEvents.Add(float64(n))
			}
			w.pending[0] = WatchResponse{}
			w.pending = w.pending[1:]
			if created {
				st.announce[0] = announcement{}
				st.announce = st.announce[1:]
			}
		default:
			ws.setAsideLocked(w)
			return false
		}
	}
	w.pending = nil
	switch {
	case w.last == endCanceled:
		ws.removeLocked(w)
	case w.last == endCompacted:
		ws.leaveGroupLocked(w)
		w.state = stateCompacted
	case w.state == stateVictim:
		ws.removeVictimLocked(w)
		w.state = stateUnsynced
		ws.mu.unsynced[w] = struct{}{}
		ws.wake()
	}
	return true
}

// setAsideLocked makes w a victim: its pending responses wait for room.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) setAsideLocked(w *watcher) {
	if w.state != stateVictim {
		ws.leaveGroupLocked(w)
		w.state = stateVictim
		ws.addVictimLocked(w)
		ws.wake()
	}
}

// notify hands a committed revision's events to the synced watchers. The
// Store calls it under its writeMu, in revision order.
func (ws *WatchableStore) notify(rev int64, events []*mvccpb.Event) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.mu.rev = rev
	prev := prevKVs{ws: ws}
	if len(events) == 1 {
		// The common case needs no grouping.
		ws.mu.synced.matching(events[0].Kv.Key, func(w *watcher) { ws.deliverLocked(w, rev, events, &prev) })
		return
	}
	var order []*watcher
	batches := map[*watcher][]*mvccpb.Event{}
	for _, ev := range events {
		ws.mu.synced.matching(ev.Kv.Key, func(w *watcher) {
			if _, ok := batches[w]; !ok {
				order = append(order, w)
			}
			batches[w] = append(batches[w], ev)
		})
	}
	for _, w := range order {
		ws.deliverLocked(w, rev, batches[w], &prev)
	}
}

// deliverLocked sends a synced watcher the events of revision rev in its
// range.
//
// REQUIRES: ws.mu held.
func (ws *WatchableStore) deliverLocked(w *watcher, rev int64, events []*mvccpb.Event, prev *prevKVs) {
	if w.next > rev {
		return // it starts later
	}
	w.next = rev + 1
	if evs := w.filter(events, prev); len(evs) > 0 {
		w.pending = append(w.pending, WatchResponse{WatchID: w.id, Events: evs, Revision: rev})
		// If the channel is full, w is moved aside; later revisions come
		// from the backend once this is sent.
		ws.sendOrSetAsideLocked(w)
	}
}

// filter returns the events in w's range that it wants, with their
// previous KeyValues if it asked for them.
func (w *watcher) filter(events []*mvccpb.Event, prev *prevKVs) []*mvccpb.Event {
	if !w.prevKV && !w.noPut && !w.noDelete && w.matchesAll(events) {
		return events // shared, as they are: no copy per watcher
	}
	var out []*mvccpb.Event
	for _, ev := range events {
		if !w.matches(ev.Kv.Key) || ev.Type == mvccpb.PUT && w.noPut || ev.Type == mvccpb.DELETE && w.noDelete {
			continue
		}
		if w.prevKV {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev.get(ev)}
		}
		out = append(out, ev)
	}
	return out
}

func (w *watcher) matchesAll(events []*mvccpb.Event) bool {
	for _, ev := range events {
		if !w.matches(ev.Kv.Key) {
			return false
		}
	}
	return true
}

func (w *watcher) matches(key []byte) bool {
	return span{w.key, w.end}.contains(key)
}

// prevKVs looks up, once per key and revision, what keys held before a
// revision; one serves every watcher of a notification or catch-up round.
type prevKVs struct {
	ws    *WatchableStore
	cache map[prevKey]*mvccpb.KeyValue
}

type prevKey struct {
	key string
	rev int64
}

// get returns what ev's key held just before ev.
//
// REQUIRES: ws.mu held, with a store attached.
func (p *prevKVs) get(ev *mvccpb.Event) *mvccpb.KeyValue {
	if ev.Type == mvccpb.PUT && ev.Kv.Version == 1 {
		return nil // a creation: nothing before it (as etcd, no lookup)
	}
	k := prevKey{string(ev.Kv.Key), ev.Kv.ModRevision}
	if kv, ok := p.cache[k]; ok {
		return kv
	}
	var kv *mvccpb.KeyValue
	// Below the compaction there is nothing to tell: no previous KeyValue.
	// Always a given revision (every write's is 2 or more, so the one
	// before is above 0): Range reads one once, where a read of the
	// current revision may retry holding compactions off, and this may
	// run under writeMu (notify) or ws.mu.
	if rev := ev.Kv.ModRevision - 1; rev > 0 {
		if res, err := p.ws.mu.store.Range(ev.Kv.Key, nil, RangeOptions{Rev: rev}); err == nil && len(res.KVs) == 1 {
			kv = res.KVs[0]
		}
	}
	if p.cache == nil {
		p.cache = map[prevKey]*mvccpb.KeyValue{}
	}
	p.cache[k] = kv
	return kv
}

// syncLoop is the syncer: it retries victims and owed progress responses
// and catches up unsynced watchers whenever woken, and every victimRetry
// while victims or progress responses wait.
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
		more := ws.syncRound()
		ws.retryProgress()
		if more {
			ws.wake()
		}
	}
}

func (ws *WatchableStore) retryVictims() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for st := range ws.mu.announcing {
		ws.flushAnnounceLocked(st)
	}
	for st := range ws.mu.victims {
		// Each retry tries a stream's victims only while its channel has
		// room: trying every victim spun the syncer under the lock
		// (100,000 victims on a stalled stream: a core, and writes 60
		// ms apart). A victim whose Created is still owed takes no
		// room when tried (answers go out in order), so a stream still
		// owing answers after the flush above is tried only once they
		// are out; a closing one not at all (its reader has stopped;
		// Close removes its watchers).
		if st.closed || len(st.announce) > 0 {
			continue
		}
		for w := range st.victims {
			if len(st.ch) == cap(st.ch) {
				break // the next retry (or the reader's Sent) goes on
			}
			ws.mu.victimTries++
			ws.sendOrSetAsideLocked(w)
		}
	}
}

func (ws *WatchableStore) retryProgress() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for st := range ws.mu.progress {
		if ws.progressLocked(st) {
			delete(ws.mu.progress, st)
		}
	}
}

// syncRound catches unsynced watchers up by a bounded number of
// revisions, moving those it brings up to date to synced. It reports
// whether unsynced watchers remain.
func (ws *WatchableStore) syncRound() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	s := ws.mu.store
	if len(ws.mu.unsynced) == 0 || s == nil {
		if time.Since(ws.mu.caught.used) > caughtIdle {
			ws.mu.caught = eventCache{} // nobody behind for a while: free it
		}
		return false
	}
	// Every revision up to mu.rev is committed, so in the view. The view
	// and the compaction revision under one read lock: whatever the view
	// lacks was removed by a compaction already recorded.
	s.mu.RLock()
	view := s.b.NewReadView()
	compacted := s.mu.compactRev
	s.mu.RUnlock()
	defer view.Close()
	current := ws.mu.rev

	// At most maxWatchersPerSync a round: the round holds mu, and so
	// holds up writes (which notify under it).
	from := current + 1
	var chosen []*watcher
	for w := range ws.mu.unsynced {
		if len(chosen) == maxWatchersPerSync {
			break
		}
		if w.next < compacted {
			// etcd's compacted response carries no revision.
			ws.closeLocked(w, WatchResponse{WatchID: w.id, CompactRevision: compacted}, endCompacted)
			continue
		}
		chosen = append(chosen, w)
		from = min(from, w.next)
	}
	if from > current {
		for _, w := range chosen {
			ws.toSyncedLocked(w)
		}
		return len(ws.mu.unsynced) > 0
	}
	events, to, err := ws.caughtUpEventsLocked(view, s, from, current)
	if err != nil {
		// The ticker retries; waking at once would spin on the error.
		ws.logger.Error("mvcc: reading events for watchers; retrying", zap.Error(err))
		return false
	}
	prev := prevKVs{ws: ws}
	for _, w := range chosen {
		if w.next > to {
			continue
		}
		i := 0
		for i < len(events) && events[i].Kv.ModRevision < w.next {
			i++
		}
		evs := w.filter(events[i:], &prev)
		w.next = to + 1
		if len(evs) > 0 {
			// As etcd, the response carries the current revision, even
			// when it does not bring the watcher that far.
			w.pending = append(w.pending, WatchResponse{WatchID: w.id, Events: evs, Revision: current})
			if !ws.sendOrSetAsideLocked(w) {
				continue
			}
		}
		if w.next > current {
			ws.toSyncedLocked(w)
		}
	}
	return len(ws.mu.unsynced) > 0
}

// REQUIRES: ws.mu held; w unsynced.
func (ws *WatchableStore) toSyncedLocked(w *watcher) {
	delete(ws.mu.unsynced, w)
	w.state = stateSynced
	ws.mu.synced.add(w)
}

// eventCache holds the events of revisions from..to of store, whole, last
// served at used: bytes of them, and cut if a read stopped at
// maxBytesPerSync before the revision it was asked for.
type eventCache struct {
	store    *Store
	from, to int64
	events   []*mvccpb.Event
	bytes    int
	cut      bool
	used     time.Time
}

// caughtIdle is how long the syncer keeps what a catch-up round read (at
// most maxBytesPerSync of events) with no watcher behind: watchers created
// one after another may each be caught up before the next one comes.
const caughtIdle = time.Second

// caughtUpEventsLocked returns the events of a catch-up round from
// revision from on (whole revisions, within maxRevsPerSync and
// maxBytesPerSync, up to current at most) and the last revision they
// cover. Watchers created one after another each wake the syncer, and each
// round read the same revisions again for the few watchers it found:
// 10,000 watchers starting 80 revisions back (etcd's watch-get benchmark,
// --events 80) spent 40% of the members' CPU samples decoding those
// revisions. So a round starting within what the last one read serves
// from it, reading only the revisions committed since; it gives what a
// read from the backend would (the same events, as far: a watcher's first
// response holds everything up to current, as etcd's does) unless that
// read stopped at maxBytesPerSync, when the next round goes on from where
// it stopped. A revision's events never change once committed (a
// compaction removes history, and a watcher that starts below it gets a
// compacted response instead), and they are shared, never modified
// (watcher.filter copies an event to add what it needs). A restore attaches
// another store, which the cache is not served to.
//
// REQUIRES: ws.mu held; s attached.
func (ws *WatchableStore) caughtUpEventsLocked(view *backend.ReadView, s *Store, from, current int64) ([]*mvccpb.Event, int64, error) {
	c := &ws.mu.caught
	target := min(current, from+maxRevsPerSync-1)
	if c.store != s || from < c.from || from > c.to || target-c.from >= maxRevsPerSync {
		// Start afresh: empty, the read below begins at from.
		*c = eventCache{store: s, from: from, to: from - 1}
	}
	if c.to < target && !c.cut {
		// From from, or the revisions committed since the cache was read.
		events, to, n, err := readEvents(view, c.to+1, target, maxBytesPerSync-c.bytes)
		if err != nil {
			return nil, 0, err
		}
		ws.mu.catchUpReads++
		c.events, c.to, c.bytes, c.cut = append(c.events, events...), to, c.bytes+n, to < target
	}
	c.used = time.Now()
	i := sort.Search(len(c.events), func(i int) bool { return c.events[i].Kv.ModRevision >= from })
	// Capped: the cache appends after what it hands out.
	return c.events[i:len(c.events):len(c.events)], c.to, nil
}

// readEvents reads the events of revisions from..to from the backend, in
// order, stopping early after a revision once maxBytes are read. It
// returns the last revision read whole and the bytes read.
func readEvents(view *backend.ReadView, from, to int64, maxBytes int) ([]*mvccpb.Event, int64, int, error) {
	var (
		events  []*mvccpb.Event
		err     error
		bytes   int
		stopped bool
		last    = from - 1
	)
	scanErr := view.Scan(revisionKey(Revision{Main: from}, false), revisionKey(Revision{Main: to + 1}, false),
		func(k, v []byte) bool {
			rev, tombstone, perr := parseRevisionKey(k)
			if perr == nil && rev.Main != last && bytes >= maxBytes {
				stopped = true // a revision boundary, and enough read
				return false
			}
			kv := &mvccpb.KeyValue{}
			if perr == nil {
				perr = unmarshalKV(v, kv)
			}
			if perr != nil {
				err = perr
				return false
			}
			last, bytes = rev.Main, bytes+len(k)+len(v)
			if tombstone {
				events = append(events, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: rev.Main}})
			} else {
				events = append(events, &mvccpb.Event{Type: mvccpb.PUT, Kv: kv})
			}
			return true
		})
	if !stopped {
		last = to // everything up to to was read
	}
	return events, last, bytes, errors.Join(scanErr, err)
}

// watcherGroup is a set of watchers indexed for notify: single-key
// watchers by key, range watchers by range (see rangeWatchers).
type watcherGroup struct {
	keys   map[string]map[*watcher]struct{}
	ranges rangeWatchers
}

func (g *watcherGroup) init() {
	g.keys = map[string]map[*watcher]struct{}{}
	g.ranges = newRangeWatchers()
}

func (g *watcherGroup) add(w *watcher) {
	if len(w.end) > 0 {
		g.ranges.add(w)
		return
	}
	set := g.keys[string(w.key)]
	if set == nil {
		set = map[*watcher]struct{}{}
		g.keys[string(w.key)] = set
	}
	set[w] = struct{}{}
}

func (g *watcherGroup) remove(w *watcher) {
	if len(w.end) > 0 {
		g.ranges.remove(w)
		return
	}
	if set := g.keys[string(w.key)]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(g.keys, string(w.key))
		}
	}
}

// matching calls fn for each watcher whose range holds key.
func (g *watcherGroup) matching(key []byte, fn func(*watcher)) {
	for w := range g.keys[string(key)] {
		fn(w)
	}
	g.ranges.matching(key, fn)
}

// each calls fn for every watcher; fn may remove it.
func (g *watcherGroup) each(fn func(*watcher)) {
	for _, set := range g.keys {
		for w := range set {
			fn(w)
		}
	}
	for w := range g.ranges.live {
		fn(w)
	}
}

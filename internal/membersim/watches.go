package membersim

import (
	"fmt"
	"strings"
	"time"

	"github.com/cairn-db/cairn/internal/mvcc"
)

// numWatches is how many watch clients follow every key.
const numWatches = 3

// watches are clients that follow every key, as clientv3 does: on a
// member, and when that member goes down, again on another from the
// revision after the last one seen. Every revision makes at least one
// event (only writes that change something make one), so a watcher of
// every key must see each revision after its start exactly once, in
// order, each whole in one response; and every watcher must see the same
// events at the same revision.
type watches struct {
	ws []*watchClient
	// events[rev] is the first description of revision rev's events any
	// watcher saw; every other watcher must see the same.
	events map[int64]string
}

type watchClient struct {
	name   string
	member *simMember
	stream *mvcc.WatchStream
	// next is the first revision not yet seen (0: not started, the
	// first response sets it).
	next    int64
	created bool
}

// start (re)starts w on a random member that serves clients, from w.next.
func (w *watchClient) start(s *Sim) {
	var serving []*simMember
	for _, m := range s.up() {
		if m.serving() {
			serving = append(serving, m)
		}
	}
	m := s.pick(serving)
	if m == nil {
		return
	}
	w.member = m
	w.stream = m.st.Applier.Watchable().NewWatchStream()
	w.created = false
	if _, err := w.stream.Watch(mvcc.WatchOptions{Key: []byte{0}, End: []byte{0}, StartRev: w.next}); err != nil {
		s.failf("watch on %s: %v", m.name, err)
	}
	s.tracef("%s watches on %s from %d", w.name, m.name, w.next)
}

func (ws *watches) init(s *Sim) {
	ws.events = map[int64]string{}
	for i := range numWatches {
		w := &watchClient{name: fmt.Sprintf("w%d", i)}
		ws.ws = append(ws.ws, w)
	}
}

// drain takes what the watchers' streams have sent, and starts the
// watchers that have no stream.
func (ws *watches) drain(s *Sim) {
	if ws.events == nil {
		ws.init(s)
	}
	for _, w := range ws.ws {
		if w.stream == nil {
			w.start(s)
			continue
		}
		ws.drainOne(s, w)
	}
}

// check checks one response to w.
func (ws *watches) check(s *Sim, w *watchClient, resp mvcc.WatchResponse) {
	switch {
	case resp.Created:
		w.created = true
		if w.next == 0 {
			w.next = resp.Revision + 1
		}
		return
	case resp.CompactRevision != 0:
		// The revisions asked for are gone; start again from the
		// compaction, as a client must.
		s.tracef("%s compacted at %d (wanted %d)", w.name, resp.CompactRevision, w.next)
		w.stream.Close()
		w.stream = nil
		w.next = resp.CompactRevision
		s.stats.WatchResum++
		return
	case resp.Canceled:
		s.failf("%s on %s: cancelled: %s", w.name, w.member.name, resp.CancelReason)
		return
	case len(resp.Events) == 0:
		return // progress
	}
	if !w.created {
		s.failf("%s on %s: events before Created", w.name, w.member.name)
	}
	// Group by revision; each must be the next one, whole.
	i := 0
	for i < len(resp.Events) {
		rev := resp.Events[i].Kv.ModRevision
		var b strings.Builder
		j := i
		for ; j < len(resp.Events) && resp.Events[j].Kv.ModRevision == rev; j++ {
			ev := resp.Events[j]
			fmt.Fprintf(&b, "%v %s=%s;", ev.Type, ev.Kv.Key, ev.Kv.Value)
		}
		if rev != w.next {
			s.failf("%s on %s: revision %d, expected %d (a revision skipped, repeated or split)",
				w.name, w.member.name, rev, w.next)
			return
		}
		desc := b.String()
		if want, ok := ws.events[rev]; !ok {
			ws.events[rev] = desc
		} else if want != desc {
			s.failf("%s on %s: revision %d is %q, another watcher saw %q", w.name, w.member.name, rev, desc, want)
		}
		s.stats.WatchEvents += j - i
		w.next = rev + 1
		i = j
	}
}

// memberDown ends the streams on m: their clients start again elsewhere.
func (ws *watches) memberDown(s *Sim, m *simMember) {
	for _, w := range ws.ws {
		if w.member == m && w.stream != nil {
			// What the stream sent before the crash still counts.
			ws.drainOne(s, w)
			if w.stream != nil {
				w.stream.Close()
				w.stream = nil
				s.stats.WatchResum++
			}
		}
	}
}

// drainOne checks what w's stream has sent, until it has nothing more or
// is closed (a compaction ends it).
func (ws *watches) drainOne(s *Sim, w *watchClient) {
	for w.stream != nil {
		select {
		case resp := <-w.stream.Chan():
			w.stream.Sent(resp) // as the server's stream does
			ws.check(s, w, resp)
		default:
			return
		}
	}
}

// catchUp waits (in real time: the store's syncer is a goroutine) until
// every watcher has seen revision rev.
func (ws *watches) catchUp(s *Sim, rev int64) {
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range ws.ws {
		for w.stream != nil && w.next <= rev && s.err == nil {
			select {
			case resp := <-w.stream.Chan():
				w.stream.Sent(resp)
				ws.check(s, w, resp)
			case <-time.After(time.Until(deadline)):
				s.failf("%s on %s: stuck before revision %d (store at %d)", w.name, w.member.name, w.next, rev)
				return
			}
		}
	}
}

func (ws *watches) closeAll() {
	for _, w := range ws.ws {
		if w.stream != nil {
			w.stream.Close()
			w.stream = nil
		}
	}
}

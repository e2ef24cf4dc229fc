package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eventLog is what one watcher received: every event, in order.
type eventLog struct {
	mu     sync.Mutex
	events []*clientv3.Event
	err    error
	// last is the revision of the last event.
	last    int64
	changed chan struct{}
}

// follow reads ch into a log until it closes or ctx ends.
func follow(ch clientv3.WatchChan) *eventLog {
	l := &eventLog{changed: make(chan struct{}, 1)}
	go func() { // ends when the channel closes (its context is cancelled)
		for r := range ch {
			l.mu.Lock()
			if err := r.Err(); err != nil && l.err == nil {
				l.err = err
			}
			l.events = append(l.events, r.Events...)
			if len(r.Events) > 0 {
				l.last = r.Events[len(r.Events)-1].Kv.ModRevision
			}
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// waitRev waits until the log has an event at rev or later.
func (l *eventLog) waitRev(t *testing.T, rev int64) []*clientv3.Event {
	t.Helper()
	timeout := time.After(waitDeadline)
	for {
		l.mu.Lock()
		last, err, evs := l.last, l.err, slices.Clone(l.events)
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("watch error: %v", err)
		}
		if last >= rev {
			return evs
		}
		select {
		case <-l.changed:
		case <-timeout:
			t.Fatalf("watch did not reach revision %d within %v (at %d)", rev, waitDeadline, last)
		}
	}
}

// requireEveryRevisionOnce fails the test unless evs hold one event for
// each revision from..to, in order (every write of the test is one put the
// watcher sees).
func requireEveryRevisionOnce(t *testing.T, evs []*clientv3.Event, from, to int64) {
	t.Helper()
	next := from
	for _, ev := range evs {
		if ev.Kv.ModRevision != next {
			t.Fatalf("after revision %d, the watcher got %d (%s)", next-1, ev.Kv.ModRevision, ev.Kv.Key)
		}
		next++
	}
	if next != to+1 {
		t.Fatalf("the watcher ended at revision %d, want %d", next-1, to)
	}
}

// TestWatchSameOnEveryMember: watchers on each of three members, under
// concurrent multi-key writes, receive the same events in the same order.
func TestWatchSameOnEveryMember(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs []*eventLog
	for _, m := range c.members {
		logs = append(logs, follow(m.client().Watch(ctx, "s/", clientv3.WithPrefix(), clientv3.WithPrevKV())))
	}
	// Watchers answer once created: a write after all are reads from all.
	cli := c.client()
	start, err := cli.Put(ctxT(t), "s/start", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		l.waitRev(t, start.Header.Revision)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range 100 {
				var ops []clientv3.Op
				used := map[int]bool{}
				for range 1 + r.IntN(4) {
					k := r.IntN(20)
					if used[k] {
						continue
					}
					used[k] = true
					if r.IntN(4) == 0 {
						ops = append(ops, clientv3.OpDelete(fmt.Sprintf("s/%d", k)))
					} else {
						ops = append(ops, clientv3.OpPut(fmt.Sprintf("s/%d", k), fmt.Sprint(r.IntN(1000))))
					}
				}
				resp, err := cli.Txn(ctxT(t)).Then(ops...).Commit()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				last = max(last, resp.Header.Revision)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Deletes of absent keys make no revision: end on a put.
	end, err := cli.Put(ctxT(t), "s/end", "")
	if err != nil {
		t.Fatal(err)
	}
	want := eventsString(logs[0].waitRev(t, end.Header.Revision))
	for i, l := range logs[1:] {
		if got := eventsString(l.waitRev(t, end.Header.Revision)); got != want {
			t.Fatalf("member %d's watcher differs from member 0's:\n%s\n%s", i+1, got, want)
		}
	}
}

// TestWatchAcrossLeaderKill: a watcher on the leader, under write load,
// the leader SIGKILLed. The client resumes on another member from its last
// revision + 1, and sees every revision exactly once, in order: every
// write is a put under the watched prefix, so the revisions it sees must
// be exactly start, start+1, ... up to the last one written.
func TestWatchAcrossLeaderKill(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	cli := c.members[lead].client()
	start, err := cli.Put(ctxT(t), "lk/start", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := follow(cli.Watch(ctx, "lk/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision)))
	log.waitRev(t, start.Header.Revision)
	// The stream is on the leader; now the client may fail over.
	cli.SetEndpoints(c.endpoints()...)

	load := startLoadPrefix(c.client(), 8, "lk/")
	load.waitAcked(300, waitDeadline)
	c.members[lead].kill()
	t.Logf("killed the leader, m%d", lead)
	if n := load.waitAcked(1200, failoverDeadline+waitDeadline); n < 1200 {
		t.Fatalf("only %d writes acknowledged after the leader was killed", n)
	}
	load.halt()
	end, err := c.client().Put(ctxT(t), "lk/end", "")
	if err != nil {
		t.Fatal(err)
	}
	evs := log.waitRev(t, end.Header.Revision)
	requireEveryRevisionOnce(t, evs, start.Header.Revision, end.Header.Revision)
	// Every acknowledged write is among them, at its revision.
	seen := map[string]int64{}
	for _, ev := range evs {
		seen[string(ev.Kv.Key)] = ev.Kv.ModRevision
	}
	for k, rev := range load.acked {
		if seen[k] != rev {
			t.Fatalf("acknowledged %s at %d; the watcher saw it at %d", k, rev, seen[k])
		}
	}
	t.Logf("%d revisions watched exactly once across the kill (%d writes acknowledged)", len(evs), len(load.acked))
}

// TestWatchRequireLeader: with clientv3.WithRequireLeader (as Kubernetes
// watches), a member that loses its leader ends the watch with "no
// leader" (after three election timeouts, as etcd), so the client can go
// to a member in touch with a quorum; requests are refused at once.
func TestWatchRequireLeader(t *testing.T) {
	c := newCluster(t, 3)
	m := c.members[0]
	cli := m.client()
	ctx := clientv3.WithRequireLeader(context.Background())
	ch := cli.Watch(ctx, "rl")
	if _, err := cli.Put(ctxT(t), "rl", "1"); err != nil {
		t.Fatal(err)
	}
	collectEvents(t, ch, 1)
	c.members[1].kill()
	c.members[2].kill()
	start := time.Now()
	for {
		r := nextResp(t, ch)
		if err := r.Err(); err != nil {
			if err != rpctypes.ErrNoLeader {
				t.Fatalf("watch ended with %v, want %v", err, rpctypes.ErrNoLeader)
			}
			break
		}
	}
	t.Logf("watch ended %v after the quorum was lost", time.Since(start).Round(time.Millisecond))
	if _, err := cli.Get(clientv3.WithRequireLeader(ctxT(t)), "rl"); err != rpctypes.ErrNoLeader {
		t.Fatalf("get requiring a leader: %v", err)
	}
	// Without the requirement, serializable reads still work.
	if _, err := cli.Get(ctxT(t), "rl", clientv3.WithSerializable()); err != nil {
		t.Fatalf("serializable get: %v", err)
	}
}

// TestWatchAcrossMemberRestart: a watcher on a one-member cluster whose
// only member is SIGKILLed and started again; the client reconnects to it,
// resumes from its last revision + 1, and sees every revision exactly once.
func TestWatchAcrossMemberRestart(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	start, err := cli.Put(ctxT(t), "mr/start", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := follow(cli.Watch(ctx, "mr/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision)))
	for i := range 50 {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("mr/before/%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	log.waitRev(t, start.Header.Revision+50)
	m.restart()
	c.waitLeader()
	var end *clientv3.PutResponse
	for i := range 50 {
		if end, err = cli.Put(ctxT(t), fmt.Sprintf("mr/after/%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	requireEveryRevisionOnce(t, log.waitRev(t, end.Header.Revision), start.Header.Revision, end.Header.Revision)
}

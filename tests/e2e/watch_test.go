package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nextResp reads one response from a watch channel, failing the test if
// none comes within waitDeadline (a safeguard against a hang, not a
// synchronization).
func nextResp(t *testing.T, ch clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("the watch channel closed")
		}
		return r
	case <-time.After(waitDeadline):
		t.Fatalf("no watch response within %v", waitDeadline)
	}
	return clientv3.WatchResponse{}
}

// collectEvents reads events from ch until n have come.
func collectEvents(t *testing.T, ch clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) < n {
		r := nextResp(t, ch)
		if err := r.Err(); err != nil {
			t.Fatalf("watch error after %d events: %v", len(evs), err)
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

func eventsString(evs []*clientv3.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "[%s %s", ev.Type, ev.Kv.Key)
		if ev.Type == mvccpb.PUT {
			fmt.Fprintf(&b, "=%s", ev.Kv.Value)
		}
		if ev.PrevKv != nil {
			fmt.Fprintf(&b, " prev=%s", ev.PrevKv.Value)
		}
		b.WriteString("]")
	}
	return b.String()
}

// metric reads one unlabelled series from a member's /metrics.
func metric(t *testing.T, m *member, name string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: waitDeadline}).Get(m.clientURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitMetric polls a member's metric until it equals want.
func waitMetric(t *testing.T, m *member, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		got := metric(t, m, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process
	}
}

// TestWatch covers the Watch API through the official client, on one
// member: each subtest watches keys of its own.
func TestWatch(t *testing.T) {
	c := newCluster(t, 1, "--watch-progress-notify-interval", "200ms")
	m := c.members[0]
	cli := m.client()
	put := func(k, v string) int64 {
		t.Helper()
		resp, err := cli.Put(ctxT(t), k, v)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	del := func(k string, opts ...clientv3.OpOption) int64 {
		t.Helper()
		resp, err := cli.Delete(ctxT(t), k, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}

	t.Run("cancel", func(t *testing.T) {
		// First, so no other subtest's watchers come and go meanwhile.
		before := metric(t, m, "etcd_debugging_mvcc_watcher_total")
		ctx, cancel := context.WithCancel(context.Background())
		ch := cli.Watch(ctx, "c")
		put("c", "1")
		collectEvents(t, ch, 1)
		waitMetric(t, m, "etcd_debugging_mvcc_watcher_total", before+1)
		cancel()
		for r := range ch {
			if len(r.Events) > 0 {
				t.Fatalf("events after cancel: %s", eventsString(r.Events))
			}
		}
		// The client cancelled it on the server too.
		waitMetric(t, m, "etcd_debugging_mvcc_watcher_total", before)
	})
	t.Run("key", func(t *testing.T) {
		ch := cli.Watch(ctxT(t), "key")
		put("key", "1")
		put("key2", "x") // another key
		del("key")
		if got := eventsString(collectEvents(t, ch, 2)); got != "[PUT key=1][DELETE key]" {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("prefix range and from-key", func(t *testing.T) {
		ctx := ctxT(t)
		prefix := cli.Watch(ctx, "p/", clientv3.WithPrefix())
		rng := cli.Watch(ctx, "p/b", clientv3.WithRange("p/d"))
		fromKey := cli.Watch(ctx, "p/c", clientv3.WithFromKey())
		for _, k := range []string{"p/a", "p/b", "p/c", "p/d", "q"} {
			put(k, "v")
		}
		if got := eventsString(collectEvents(t, prefix, 4)); got != "[PUT p/a=v][PUT p/b=v][PUT p/c=v][PUT p/d=v]" {
			t.Fatalf("prefix: %s", got)
		}
		if got := eventsString(collectEvents(t, rng, 2)); got != "[PUT p/b=v][PUT p/c=v]" {
			t.Fatalf("range: %s", got)
		}
		if got := eventsString(collectEvents(t, fromKey, 3)); got != "[PUT p/c=v][PUT p/d=v][PUT q=v]" {
			t.Fatalf("from-key: %s", got)
		}
	})
	t.Run("from a revision, and from the future", func(t *testing.T) {
		first := put("h", "1")
		put("h", "2")
		put("h", "3")
		ch := cli.Watch(ctxT(t), "h", clientv3.WithRev(first))
		if got := eventsString(collectEvents(t, ch, 3)); got != "[PUT h=1][PUT h=2][PUT h=3]" {
			t.Fatalf("history: %s", got)
		}
		future := cli.Watch(ctxT(t), "h", clientv3.WithRev(first+5))
		put("h", "4") // first+3
		put("h", "5") // first+4
		put("h", "6") // first+5
		evs := collectEvents(t, future, 1)
		if got := eventsString(evs); got != "[PUT h=6]" || evs[0].Kv.ModRevision != first+5 {
			t.Fatalf("future start: %s", got)
		}
	})
	t.Run("prev_kv", func(t *testing.T) {
		put("pk", "v1")
		ch := cli.Watch(ctxT(t), "pk", clientv3.WithPrevKV())
		put("pk", "v2")
		del("pk")
		put("pk", "v3") // created again: nothing before it
		if got := eventsString(collectEvents(t, ch, 3)); got != "[PUT pk=v2 prev=v1][DELETE pk prev=v2][PUT pk=v3]" {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("filters", func(t *testing.T) {
		ctx := ctxT(t)
		noPut := cli.Watch(ctx, "f", clientv3.WithFilterPut())
		noDel := cli.Watch(ctx, "f", clientv3.WithFilterDelete())
		put("f", "1")
		del("f")
		put("f", "2")
		del("f")
		if got := eventsString(collectEvents(t, noPut, 2)); got != "[DELETE f][DELETE f]" {
			t.Fatalf("no puts: %s", got)
		}
		if got := eventsString(collectEvents(t, noDel, 2)); got != "[PUT f=1][PUT f=2]" {
			t.Fatalf("no deletes: %s", got)
		}
	})
	t.Run("progress notify", func(t *testing.T) {
		ch := cli.Watch(ctxT(t), "idle", clientv3.WithProgressNotify())
		rev := put("other", "x")
		// Periodic (every 200ms here) while the watcher sees nothing.
		for {
			r := nextResp(t, ch)
			if r.IsProgressNotify() && r.Header.Revision >= rev {
				break
			}
			if len(r.Events) > 0 {
				t.Fatalf("events on an idle key: %s", eventsString(r.Events))
			}
		}
	})
	t.Run("request progress", func(t *testing.T) {
		ctx := ctxT(t)
		a := cli.Watch(ctx, "rp/a")
		b := cli.Watch(ctx, "rp/b", clientv3.WithRev(1)) // catches up first
		put("rp/a", "1")
		rev := put("rp/b", "2")
		collectEvents(t, a, 1)
		if evs := collectEvents(t, b, 1); evs[0].Kv.ModRevision != rev {
			t.Fatalf("rp/b: %s", eventsString(evs))
		}
		if err := cli.RequestProgress(ctx); err != nil {
			t.Fatal(err)
		}
		// Both watchers share the stream: both hear of it, at rev.
		for _, ch := range []clientv3.WatchChan{a, b} {
			if r := nextResp(t, ch); !r.IsProgressNotify() || r.Header.Revision != rev {
				t.Fatalf("progress: %+v", r)
			}
		}
	})
	t.Run("compacted start", func(t *testing.T) {
		put("cp", "1")
		rev := put("cp", "2")
		if _, err := cli.Compact(ctxT(t), rev); err != nil {
			t.Fatal(err)
		}
		ch := cli.Watch(ctxT(t), "cp", clientv3.WithRev(rev-1))
		r := nextResp(t, ch)
		if !r.Canceled || r.CompactRevision != rev || r.Err() != rpctypes.ErrCompacted {
			t.Fatalf("got canceled=%v compact_revision=%d err=%v, want compact_revision %d", r.Canceled,
				r.CompactRevision, r.Err(), rev)
		}
		if _, ok := <-ch; ok {
			t.Fatal("the channel stays open after a compacted response")
		}
		// From the compaction revision itself, history is whole.
		ch = cli.Watch(ctxT(t), "cp", clientv3.WithRev(rev))
		if got := eventsString(collectEvents(t, ch, 1)); got != "[PUT cp=2]" {
			t.Fatalf("from the compaction revision: %s", got)
		}
	})
	t.Run("empty range is refused", func(t *testing.T) {
		ch := cli.Watch(ctxT(t), "z", clientv3.WithRange("a"))
		r := nextResp(t, ch)
		if !r.Canceled || r.Err() == nil || !strings.Contains(r.Err().Error(), "watcher range is empty") {
			t.Fatalf("got canceled=%v err=%v", r.Canceled, r.Err())
		}
	})
	t.Run("seeds", func(t *testing.T) {
		// ../shared/seeds/000: watch a key and print each event (until
		// the delete, or a hang's deadline).
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		defer cancel()
		client := cli
		var printed []string
		done := make(chan struct{})
		watchCh := client.Watch(ctx, "key")
		go func() {
			defer close(done)
			for watchResp := range watchCh {
				for _, event := range watchResp.Events {
					printed = append(printed, fmt.Sprintf("Type: %s, Key: %s, Value: %s", event.Type, event.Kv.Key, event.Kv.Value))
					if event.Type == clientv3.EventTypeDelete {
						cancel()
					}
				}
			}
		}()
		put("key", "value")
		del("key")
		<-done
		if got := strings.Join(printed, "\n"); got != "Type: PUT, Key: key, Value: value\nType: DELETE, Key: key, Value: " {
			t.Fatalf("printed:\n%s", got)
		}

		// ../shared/seeds/001: watch /cron/jobs/job7 from the revision
		// after a get.
		getResp, err := client.Get(ctxT(t), "/cron/jobs/job7")
		if err != nil {
			t.Fatal(err)
		}
		watchStartRevision := getResp.Header.Revision + 1
		watcher := clientv3.NewWatcher(client)
		defer watcher.Close()
		put("/cron/jobs/job7", "i am job7")
		del("/cron/jobs/job7")
		watchRespChan := watcher.Watch(ctxT(t), "/cron/jobs/job7", clientv3.WithRev(watchStartRevision))
		evs := collectEvents(t, watchRespChan, 2)
		if evs[0].Type != mvccpb.PUT || string(evs[0].Kv.Value) != "i am job7" || evs[0].Kv.ModRevision != watchStartRevision ||
			evs[1].Type != mvccpb.DELETE {
			t.Fatalf("cron job events: %s", eventsString(evs))
		}
	})
}

// TestWatchFragment: a revision too large for one message is split, with
// fragment set, for watchers that asked; the client reassembles it. Others
// get it whole.
func TestWatchFragment(t *testing.T) {
	const maxRequest = 64 << 10
	c := newCluster(t, 1, "--max-request-bytes", strconv.Itoa(maxRequest))
	cli := c.members[0].client()
	value := strings.Repeat("v", 16<<10)
	for i := range 10 {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("big/%d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t)
	frag := cli.Watch(ctx, "big/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithFragment())
	whole := cli.Watch(ctx, "big/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	// One revision of ten deletes, each carrying a 16 KiB previous value:
	// about 160 KiB of events, over the 64 KiB limit.
	if _, err := cli.Delete(ctxT(t), "big/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]clientv3.WatchChan{"fragmented": frag, "whole": whole} {
		r := nextResp(t, ch)
		if len(r.Events) != 10 {
			t.Fatalf("%s: %d events in the first response, want the whole revision (10)", name, len(r.Events))
		}
		for i, ev := range r.Events {
			if ev.Type != mvccpb.DELETE || string(ev.Kv.Key) != fmt.Sprintf("big/%d", i) || string(ev.PrevKv.Value) != value {
				t.Fatalf("%s: event %d: %s %s", name, i, ev.Type, ev.Kv.Key)
			}
		}
	}
}

// TestWatchManyWatchersOneStream: 1,000 watchers share one stream (the
// client multiplexes watchers of one context), and each gets its key's
// events, once.
func TestWatchManyWatchersOneStream(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	const n = 1000
	ctx := ctxT(t)
	chans := make([]clientv3.WatchChan, n)
	for i := range n {
		chans[i] = cli.Watch(ctx, fmt.Sprintf("many/%04d", i))
	}
	waitMetric(t, m, "etcd_debugging_mvcc_watcher_total", n)
	if got := metric(t, m, "etcd_debugging_mvcc_watch_stream_total"); got != 1 {
		t.Fatalf("%v streams, want 1", got)
	}
	// Eight transactions of 125 puts: each watcher's event comes in a
	// revision shared with 124 others.
	for b := range n / 125 {
		var ops []clientv3.Op
		for i := b * 125; i < (b+1)*125; i++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("many/%04d", i), strconv.Itoa(i)))
		}
		if _, err := cli.Txn(ctxT(t)).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range chans {
		evs := collectEvents(t, ch, 1)
		if len(evs) != 1 || string(evs[0].Kv.Key) != fmt.Sprintf("many/%04d", i) || string(evs[0].Kv.Value) != strconv.Itoa(i) {
			t.Fatalf("watcher %d: %s", i, eventsString(evs))
		}
	}
	// Nothing more for anyone: a put to each key again is each one's
	// next event.
	for i := range n {
		if i%100 == 0 {
			if _, err := cli.Put(ctxT(t), fmt.Sprintf("many/%04d", i), "again"); err != nil {
				t.Fatal(err)
			}
			if evs := collectEvents(t, chans[i], 1); string(evs[0].Kv.Value) != "again" {
				t.Fatalf("watcher %d: %s", i, eventsString(evs))
			}
		}
	}
}

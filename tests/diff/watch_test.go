package diff

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// watchSide is one server under a watch differential test: a KV client and
// one raw Watch stream, read by a goroutine into resps.
type watchSide struct {
	name   string
	kv     pb.KVClient
	stream pb.Watch_WatchClient
	resps  chan *pb.WatchResponse
	errc   chan error
	// creates counts the create requests sent, created the responses to
	// them received.
	creates, created int
}

func (w *watchSide) create(c *pb.WatchCreateRequest) string {
	w.creates++
	return sendErr(w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}))
}

func newWatchSide(t *testing.T, binary string) *watchSide {
	conn := startServer(t, binary)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	side := &watchSide{name: binary, kv: pb.NewKVClient(conn), stream: stream, resps: make(chan *pb.WatchResponse, 1024),
		errc: make(chan error, 1)}
	go func() { // ends when the stream does, at the latest on cancel
		for {
			r, err := stream.Recv()
			if err != nil {
				side.errc <- err
				return
			}
			side.resps <- r
		}
	}()
	return side
}

// barrier returns everything the stream sent until a stream-wide progress
// response at revision rev (the store's), grouped by watch ID (in each
// group, in the order sent: order across watchers is not part of the
// contract). A stream-wide progress response comes only once every watcher
// is up to date, so everything the steps so far caused was sent before it.
//
// etcd answers a progress request made while a watcher catches up only at
// a later request (as Kubernetes, which asks every 100ms until answered,
// expects), so the request is repeated until answered; answers to earlier
// requests, at older revisions, are skipped.
func (w *watchSide) barrier(t *testing.T, rev int64) string {
	t.Helper()
	ask := func() {
		if err := w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{
			ProgressRequest: &pb.WatchProgressRequest{}}}); err != nil {
			t.Fatal(err)
		}
	}
	ask()
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	deadline := time.After(waitDeadline) // a safeguard against a hang
	groups := map[int64][]string{}
	cancelling := map[int64]bool{}
	for {
		var r *pb.WatchResponse
		select {
		case r = <-w.resps:
		case <-retry.C:
			ask()
			continue
		case err := <-w.errc:
			t.Fatalf("%s: watch stream ended: %v", w.name, err)
		case <-deadline:
			t.Fatalf("%s: no progress response at revision %d within %v", w.name, rev, waitDeadline)
		}
		if r.WatchId == -1 && !r.Created && !r.Canceled && len(r.Events) == 0 {
			if r.Header.Revision != rev || len(cancelling) > 0 || w.created < w.creates {
				// An earlier request's, or one before a cancel below, or
				// one that overtook a created response (etcd sends those
				// by another path).
				continue
			}
			ids := make([]int64, 0, len(groups))
			for id := range groups {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			var b strings.Builder
			for _, id := range ids {
				fmt.Fprintf(&b, "watch %d:\n  %s\n", id, strings.Join(groups[id], "\n  "))
			}
			return b.String()
		}
		groups[r.WatchId] = append(groups[r.WatchId], result(r, nil))
		if r.Created {
			w.created++
		}
		if r.Canceled && r.CompactRevision == 0 {
			delete(cancelling, r.WatchId)
		}
		if r.CompactRevision != 0 {
			cancelling[r.WatchId] = true
			// As clientv3 does: etcd keeps the watcher (and withholds
			// progress responses) until it is cancelled.
			if err := w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{
				CancelRequest: &pb.WatchCancelRequest{WatchId: r.WatchId}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWatchDifferential sends the same seeded writes, watch creates (on
// keys and ranges, from now, the past, the future and compacted
// revisions, with prev_kv and filters, with IDs chosen by the client,
// some taken) and cancels, and compactions to cairn and to stock etcd,
// and compares what each watch stream sends.
func TestWatchDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	for seed := range seeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			a, b := newWatchSide(t, cairn), newWatchSide(t, etcd)
			// A stream with no watchers gets no progress response (in
			// etcd, so in Cairn): a sentinel watcher, on a key never
			// written, with an ID no cancel below names, keeps the
			// barrier working.
			for _, w := range []*watchSide{a, b} {
				w.create(&pb.WatchCreateRequest{Key: []byte("sentinel"), WatchId: 1000})
			}
			if got, want := a.barrier(t, 1), b.barrier(t, 1); got != want {
				t.Fatalf("the sentinel watcher:\ncairn:\n%s\netcd:\n%s", got, want)
			}
			r := rand.New(rand.NewPCG(uint64(seed), 1))
			var rev int64 = 1
			var nextID int64
			for i := range 150 {
				var desc string
				var step func(w *watchSide) string
				switch k := r.IntN(20); {
				case k < 9:
					req := randWatchTxn(r)
					desc = fmt.Sprintf("txn %v", req)
					step = func(w *watchSide) string {
						ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
						defer cancel()
						return result(w.kv.Txn(ctx, req))
					}
				case k < 15:
					key, end := randRange(r)
					if r.IntN(8) == 0 {
						key, end = []byte("e"), []byte("a") // an empty range
					}
					c := &pb.WatchCreateRequest{Key: key, RangeEnd: end, PrevKv: r.IntN(3) == 0}
					// Not in the future: etcd withholds progress responses
					// until the store reaches every watcher's start, and
					// then answers late (at the next request), where
					// Cairn answers at once; the barrier would hang.
					switch r.IntN(4) {
					case 3:
						if r.IntN(4) == 0 {
							c.StartRevision = -1
						}
					case 0:
						c.StartRevision = 1 + r.Int64N(rev)
					case 1:
						c.StartRevision = max(1, rev-r.Int64N(5))
					}
					if r.IntN(4) == 0 {
						c.Filters = append(c.Filters, pb.WatchCreateRequest_FilterType(r.IntN(2)))
					}
					if r.IntN(4) == 0 {
						c.WatchId = r.Int64N(nextID + 3)
					}
					nextID++
					desc = fmt.Sprintf("create %v", c)
					step = func(w *watchSide) string { return w.create(c) }
				case k < 18:
					id := r.Int64N(nextID+2) - 1
					desc = fmt.Sprintf("cancel %d", id)
					step = func(w *watchSide) string {
						return sendErr(w.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{
							CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}))
					}
				default:
					req := &pb.CompactionRequest{Revision: r.Int64N(rev + 1), Physical: true}
					desc = fmt.Sprintf("compact %v", req)
					step = func(w *watchSide) string {
						ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
						defer cancel()
						return result(w.kv.Compact(ctx, req))
					}
				}
				got, want := step(a), step(b)
				if got != want {
					t.Fatalf("step %d: %s\ncairn: %s\netcd:  %s", i, desc, got, want)
				}
				if j := strings.Index(want, "revision:"); j >= 0 {
					fmt.Sscan(strings.TrimLeft(want[j+len("revision:"):], " "), &rev)
				}
				if got, want := a.barrier(t, rev), b.barrier(t, rev); got != want {
					t.Fatalf("step %d: %s: the watch streams differ\ncairn:\n%s\netcd:\n%s", i, desc, got, want)
				}
			}
		})
	}
}

func sendErr(err error) string {
	if err != nil {
		return "send: " + err.Error()
	}
	return "sent"
}

// randWatchTxn is a write of one to three changes, on distinct keys, in
// one revision.
func randWatchTxn(r *rand.Rand) *pb.TxnRequest {
	req := &pb.TxnRequest{}
	used := map[string]bool{}
	for range 1 + r.IntN(3) {
		key := randKey(r)
		if used[string(key)] {
			continue
		}
		used[string(key)] = true
		if r.IntN(4) == 0 {
			req.Success = append(req.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{
				RequestDeleteRange: &pb.DeleteRangeRequest{Key: key}}})
			continue
		}
		req.Success = append(req.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{
			RequestPut: &pb.PutRequest{Key: key, Value: []byte(strconv.Itoa(r.IntN(100)))}}})
	}
	return req
}

package server

import (
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// waitRegistry holds the proposals waiting for their entries to be
// applied, by request ID, with their requests: the applier uses a request
// as the proposer built it rather than decoding the entry (claim).
type waitRegistry struct {
	mu      sync.Mutex
	waiters map[uint64]waiter
}

type waiter struct {
	ch chan apply.Result
	// req is the request proposed, marshalled into size bytes (nil for
	// a conf change); claimed says the applier took it.
	req     *pb.InternalRaftRequest
	size    int
	claimed bool
}

func newWaitRegistry() *waitRegistry {
	return &waitRegistry{waiters: map[uint64]waiter{}}
}

// register returns the channel id's result will arrive on (buffered, so
// the applier never blocks on a proposer that gave up). The caller only
// receives from it, and hands it to release once it has received. req,
// if not nil, is the request marshalled into size bytes for id's entry:
// from now on it must not change, and, as ch, it may be reused only once
// its result was received (a proposer that gave up may have left it with
// the applier).
func (w *waitRegistry) register(id uint64, req *pb.InternalRaftRequest, size int) chan apply.Result {
	ch := resultChans.Get().(chan apply.Result)
	w.mu.Lock()
	w.waiters[id] = waiter{ch: ch, req: req, size: size}
	w.mu.Unlock()
	return ch
}

// claim returns the request registered for a normal entry's ID, for the
// applier to use instead of decoding the entry, or nil if nobody here
// waits for it (another member proposed it, or the proposer gave up), it
// was claimed before, or the entry's size is not the request's (an ID
// that is not ours). The applier must be done with the request before it
// triggers the ID's result.
func (w *waitRegistry) claim(e raftpb.Entry) *pb.InternalRaftRequest {
	id, ok := apply.RequestID(e.Data)
	if !ok {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.waiters[id]
	if !ok || wt.req == nil || wt.claimed || wt.size != len(e.Data) {
		return nil
	}
	wt.claimed = true
	w.waiters[id] = wt
	return wt.req
}

// trigger delivers id's result, if anyone waits for it here.
func (w *waitRegistry) trigger(id uint64, r apply.Result) {
	w.mu.Lock()
	wt, ok := w.waiters[id]
	delete(w.waiters, id)
	w.mu.Unlock()
	if ok {
		wt.ch <- r
	}
}

// refused is the Err of a result that refuse delivers: raft refused the
// proposal (err), so it was never appended.
type refused struct{ err error }

func (r refused) Error() string { return "proposal refused: " + r.err.Error() }

// refuse delivers id's result as refused by raft, if anyone waits for it
// here. Called from the raft loop: it never blocks (ch is buffered and
// gets one result: a refused proposal is never applied).
func (w *waitRegistry) refuse(id uint64, err error) {
	w.trigger(id, apply.Result{ID: id, Err: refused{err}})
}

// release keeps ch, registered and then received from, for a later
// register: trigger, which sent the one result, no longer holds it. A
// channel whose id was cancelled instead is never released: a trigger may
// have taken it from the map just before, and send later.
func (w *waitRegistry) release(ch chan apply.Result) {
	resultChans.Put(ch)
}

// resultChans holds empty result channels (capacity 1) that nothing else
// holds: one per proposal was 3% of what a busy leader allocated.
var resultChans = sync.Pool{New: func() any { return make(chan apply.Result, 1) }}

// cancel forgets id.
func (w *waitRegistry) cancel(id uint64) {
	w.mu.Lock()
	delete(w.waiters, id)
	w.mu.Unlock()
}

// len is how many proposals wait.
func (w *waitRegistry) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiters)
}

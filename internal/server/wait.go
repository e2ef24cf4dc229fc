package server

import (
	"sync"

	"github.com/cairn-db/cairn/internal/apply"
)

// waitRegistry holds the proposals waiting for their entries to be
// applied, by request ID.
type waitRegistry struct {
	mu      sync.Mutex
	waiters map[uint64]chan apply.Result
}

func newWaitRegistry() *waitRegistry {
	return &waitRegistry{waiters: map[uint64]chan apply.Result{}}
}

// register returns the channel id's result will arrive on (buffered, so
// the applier never blocks on a proposer that gave up). The caller only
// receives from it, and hands it to release once it has received.
func (w *waitRegistry) register(id uint64) chan apply.Result {
	ch := resultChans.Get().(chan apply.Result)
	w.mu.Lock()
	w.waiters[id] = ch
	w.mu.Unlock()
	return ch
}

// trigger delivers id's result, if anyone waits for it here.
func (w *waitRegistry) trigger(id uint64, r apply.Result) {
	w.mu.Lock()
	ch, ok := w.waiters[id]
	delete(w.waiters, id)
	w.mu.Unlock()
	if ok {
		ch <- r
	}
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

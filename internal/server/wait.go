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
// the applier never blocks on a proposer that gave up).
func (w *waitRegistry) register(id uint64) <-chan apply.Result {
	ch := make(chan apply.Result, 1)
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

package server

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/cairn-db/cairn/internal/invariants"
)

// maxProposalBytes is how many bytes of proposals a member has in flight
// (proposed and not yet applied or given up) before later ones wait to be
// proposed: admission's limit.
const maxProposalBytes = 32 << 20

// admission bounds the bytes of proposals in flight, so that a burst of
// large requests (100 clients putting 1 MiB values) queues here, in
// arrival order, before its request timeout starts, instead of all being
// proposed at once and timing out together behind each other in the raft
// log, the WAL and the apply queue ("request timed out" for requests
// that then apply anyway). Requests far below the limit (nearly all)
// pass at once unless large ones wait ahead of them: they would wait
// behind those in the raft log anyway. A request larger than the limit
// takes the whole of it.
//
// Waiting ends with the caller's context (the client's deadline) or the
// member's stop.
type admission struct {
	limit int64

	mu sync.Mutex
	// used is the bytes admitted and not released. Invariant:
	// 0 <= used <= limit.
	used int64
	// waiting holds the *admissionWaiter of requests not yet admitted,
	// oldest first. Invariant: the first does not fit (used + n > limit).
	waiting list.List
}

type admissionWaiter struct {
	n int64
	// admitted is closed once the request is admitted (its n counted).
	admitted chan struct{}
}

func newAdmission(limit int64) *admission {
	return &admission{limit: limit}
}

// acquire waits until n bytes (at most the limit) fit after everything
// waiting ahead, then counts them as used; the caller releases them with
// release(n). It fails with ctx's error, or ErrStopped when stop closes,
// counting nothing.
func (a *admission) acquire(ctx context.Context, stop <-chan struct{}, n int) error {
	need := min(int64(n), a.limit)
	a.mu.Lock()
	if a.waiting.Len() == 0 && a.used+need <= a.limit {
		a.used += need
		a.checkLocked()
		a.mu.Unlock()
		return nil
	}
	w := &admissionWaiter{n: need, admitted: make(chan struct{})}
	e := a.waiting.PushBack(w)
	a.mu.Unlock()

	var err error
	select {
	case <-w.admitted:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = ErrStopped
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.admitted: // admitted meanwhile: give it back
		a.used -= need
	default:
		a.waiting.Remove(e)
	}
	// Either way the head may fit now.
	a.admitLocked()
	return err
}

// release gives back n bytes acquired.
func (a *admission) release(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.used -= min(int64(n), a.limit)
	a.admitLocked()
}

// waiters is how many requests wait to be admitted.
func (a *admission) waiters() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting.Len()
}

// admitLocked admits waiters from the oldest while they fit.
func (a *admission) admitLocked() {
	for e := a.waiting.Front(); e != nil; e = a.waiting.Front() {
		w := e.Value.(*admissionWaiter)
		if a.used+w.n > a.limit {
			break
		}
		a.used += w.n
		a.waiting.Remove(e)
		close(w.admitted)
	}
	a.checkLocked()
}

func (a *admission) checkLocked() {
	if !invariants.Enabled {
		return
	}
	if a.used < 0 || a.used > a.limit {
		panic(fmt.Sprintf("admission: %d bytes used of %d", a.used, a.limit))
	}
	if e := a.waiting.Front(); e != nil && a.used+e.Value.(*admissionWaiter).n <= a.limit {
		panic("admission: the first waiter fits but waits")
	}
}

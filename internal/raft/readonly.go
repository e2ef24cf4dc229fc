package raft

import "encoding/binary"

// ReadState answers a ReadIndex request: once this member has applied up to
// Index, reading its state machine is linearizable. RequestCtx is the
// context the request was made with.
type ReadState struct {
	Index      uint64
	RequestCtx []byte
}

type readRequest struct {
	// index is the leader's commit index when the request was admitted.
	index uint64
	// from is the member that asked (the leader itself for local reads).
	from uint64
	ctx  []byte
	// round is the heartbeat round that confirms the request: the first
	// round sent after it was admitted.
	round uint64
}

// readOnly is the leader's ReadIndex bookkeeping (§6.4), batched by
// heartbeat round: every request admitted before round k is sent waits for
// round k, and one quorum of acknowledgements of round k (or later)
// releases them all. A member acknowledges round k by answering any
// heartbeat sent at or after round k started, so the periodic heartbeats
// confirm reads too.
//
//	read A, read B        -> both wait for round 1
//	heartbeats (round 1)  -> quorum acks 1 -> A, B released at their index
//	read C                -> waits for round 2
//
// Invariant: queue is ordered by round, and every queued round is
// <= round+1.
type readOnly struct {
	maxPending int
	// round is the last round sent in a heartbeat broadcast.
	round uint64
	// needRound: a queued request waits for round+1, not yet sent.
	needRound bool
	// waiting holds requests that came before the leader committed an entry
	// of its term; until then its commit index may be stale.
	waiting []readRequest
	queue   []readRequest
}

// add admits a request, or returns false if too many are pending.
func (ro *readOnly) add(req readRequest, committedInTerm bool, committed uint64) bool {
	if len(ro.waiting)+len(ro.queue) >= ro.maxPending {
		return false
	}
	if !committedInTerm {
		ro.waiting = append(ro.waiting, req)
		return true
	}
	ro.enqueue(req, committed)
	return true
}

func (ro *readOnly) enqueue(req readRequest, committed uint64) {
	req.index = committed
	req.round = ro.round + 1
	ro.queue = append(ro.queue, req)
	ro.needRound = true
}

func (ro *readOnly) hasWaiting() bool { return len(ro.waiting) > 0 }

// admitWaiting queues the waiting requests once the leader's commit index
// is trustworthy.
func (ro *readOnly) admitWaiting(committed uint64) {
	for _, req := range ro.waiting {
		ro.enqueue(req, committed)
	}
	ro.waiting = nil
}

// sentRound is called as a heartbeat broadcast goes out.
func (ro *readOnly) sentRound() {
	if ro.needRound {
		ro.round++
		ro.needRound = false
	}
}

// roundContext is the heartbeat context naming the current round.
func (ro *readOnly) roundContext() []byte {
	if ro.round == 0 {
		return nil
	}
	return binary.BigEndian.AppendUint64(nil, ro.round)
}

func (ro *readOnly) hasConfirmable() bool { return len(ro.queue) > 0 }

// release removes and returns the requests whose round <= acked.
func (ro *readOnly) release(acked uint64) []readRequest {
	n := 0
	for n < len(ro.queue) && ro.queue[n].round <= acked {
		n++
	}
	if n == 0 {
		return nil
	}
	out := ro.queue[:n:n]
	ro.queue = ro.queue[n:]
	return out
}

func (ro *readOnly) reset() {
	*ro = readOnly{maxPending: ro.maxPending}
}

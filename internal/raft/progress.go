package raft

import (
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// ProgressState is how the leader currently replicates to one follower.
type ProgressState uint8

const (
	// StateProbe: the leader does not know where the follower's log ends.
	// It sends one MsgApp and waits for the answer (or a heartbeat answer)
	// before sending another.
	StateProbe ProgressState = iota
	// StateReplicate: the follower's log is known to match up to Match; the
	// leader streams entries optimistically, bounded by the inflight window.
	StateReplicate
	// StateSnapshot: the follower needs a snapshot; nothing else is sent
	// until it has been applied or has failed.
	StateSnapshot
)

func (s ProgressState) String() string {
	return [...]string{"StateProbe", "StateReplicate", "StateSnapshot"}[s]
}

// Progress is the leader's view of one member's log.
//
// Invariant: Match < Next.
type Progress struct {
	Match, Next uint64
	State       ProgressState
	// PendingSnapshot is the index of the snapshot being sent (StateSnapshot).
	PendingSnapshot uint64
	// RecentActive: heard from since the last check-quorum round.
	RecentActive bool
	// ProbeSent: in StateProbe, a MsgApp is outstanding.
	ProbeSent bool
	// ReadAck is the highest read round this member has acknowledged in the
	// leader's current term (see readOnly).
	ReadAck   uint64
	Inflights *inflights
	IsLearner bool
}

func (pr *Progress) String() string {
	s := fmt.Sprintf("%s match=%d next=%d", pr.State, pr.Match, pr.Next)
	if pr.IsLearner {
		s += " learner"
	}
	if pr.State == StateSnapshot {
		s += fmt.Sprintf(" pendingSnap=%d", pr.PendingSnapshot)
	}
	if pr.ProbeSent {
		s += " paused"
	}
	if n := pr.Inflights.count; n > 0 {
		s += fmt.Sprintf(" inflight=%d", n)
		if pr.Inflights.full() {
			s += "[full]"
		}
	}
	return s
}

func (pr *Progress) resetState(state ProgressState) {
	pr.ProbeSent = false
	pr.PendingSnapshot = 0
	pr.State = state
	pr.Inflights.reset()
}

func (pr *Progress) becomeProbe() {
	// Coming back from a snapshot, the follower has at least the snapshot.
	if pr.State == StateSnapshot {
		pending := pr.PendingSnapshot
		pr.resetState(StateProbe)
		pr.Next = max(pr.Match+1, pending+1)
		return
	}
	pr.resetState(StateProbe)
	pr.Next = pr.Match + 1
}

func (pr *Progress) becomeReplicate() {
	pr.resetState(StateReplicate)
	pr.Next = pr.Match + 1
}

func (pr *Progress) becomeSnapshot(snapIndex uint64) {
	pr.resetState(StateSnapshot)
	pr.PendingSnapshot = snapIndex
	pr.Next = snapIndex + 1
}

// maybeUpdate records that the follower's log matches up to n.
func (pr *Progress) maybeUpdate(n uint64) bool {
	updated := pr.Match < n
	if updated {
		pr.Match = n
		pr.ProbeSent = false
	}
	pr.Next = max(pr.Next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the MsgApp sent after index rejected;
// matchHint is the highest index that may still match. It returns false if
// the rejection is stale (answers a message older than the latest probe).
func (pr *Progress) maybeDecrTo(rejected, matchHint uint64) bool {
	if pr.State == StateReplicate {
		if rejected <= pr.Match {
			return false
		}
		pr.Next = pr.Match + 1
		return true
	}
	if pr.Next-1 != rejected {
		return false
	}
	pr.Next = max(min(rejected, matchHint+1), pr.Match+1)
	pr.ProbeSent = false
	return true
}

// isPaused reports whether the leader must not send this member another
// MsgApp now.
func (pr *Progress) isPaused() bool {
	switch pr.State {
	case StateProbe:
		return pr.ProbeSent
	case StateReplicate:
		return pr.Inflights.full()
	default:
		return true
	}
}

// inflights is the window of MsgApps sent in StateReplicate and not yet
// acknowledged, bounded by count and by payload bytes.
type inflights struct {
	start, count int
	bytes        uint64
	maxCount     int
	maxBytes     uint64
	// buffer is a ring of (last index, payload bytes) per message, grown
	// lazily up to maxCount.
	buffer []inflight
}

type inflight struct {
	index uint64
	bytes uint64
}

func newInflights(maxCount int, maxBytes uint64) *inflights {
	return &inflights{maxCount: maxCount, maxBytes: maxBytes}
}

func (in *inflights) add(index, bytes uint64) {
	if in.full() {
		panic("raft: add to full inflights")
	}
	next := in.start + in.count
	if next >= in.maxCount {
		next -= in.maxCount
	}
	if next >= len(in.buffer) {
		n := max(len(in.buffer)*2, 1)
		n = min(n, in.maxCount)
		nb := make([]inflight, n)
		copy(nb, in.buffer)
		in.buffer = nb
	}
	in.buffer[next] = inflight{index, bytes}
	in.count++
	in.bytes += bytes
}

// freeLE frees the messages whose last index is <= to.
func (in *inflights) freeLE(to uint64) {
	for in.count > 0 && in.buffer[in.start].index <= to {
		in.bytes -= in.buffer[in.start].bytes
		in.start++
		if in.start >= in.maxCount {
			in.start -= in.maxCount
		}
		in.count--
	}
	if in.count == 0 {
		in.start = 0
	}
}

// freeFirst frees the oldest message.
func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.freeLE(in.buffer[in.start].index)
	}
}

func (in *inflights) full() bool {
	return in.count == in.maxCount || (in.maxBytes != 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}

// tracker is the leader-side record of the configuration and each member's
// progress. Followers keep it too (for the configuration), unused otherwise.
type tracker struct {
	conf     raftpb.ConfState
	progress map[uint64]*Progress
	// ids are the keys of progress, sorted, so that iteration order (and
	// so message order) is deterministic.
	ids []uint64
	// votes received in the current election (true = granted).
	votes map[uint64]bool
}

func (t *tracker) quorum() int { return len(t.conf.Voters)/2 + 1 }

// quorumIndex returns the largest value v such that a quorum of voters have
// value(id) >= v. With voters {1,2,3} and values {5, 9, 7} it is 7.
func (t *tracker) quorumIndex(value func(id uint64) uint64) uint64 {
	n := len(t.conf.Voters)
	if n == 0 {
		return 0
	}
	var stack [7]uint64
	vals := stack[:0]
	for _, id := range t.conf.Voters {
		vals = append(vals, value(id))
	}
	slices.Sort(vals)
	return vals[n-t.quorum()]
}

// committed is the highest index stored on a quorum of voters.
func (t *tracker) committed() uint64 {
	return t.quorumIndex(func(id uint64) uint64 {
		if pr := t.progress[id]; pr != nil {
			return pr.Match
		}
		return 0
	})
}

// quorumActive reports whether a quorum of voters was recently active.
func (t *tracker) quorumActive() bool {
	active := 0
	for _, id := range t.conf.Voters {
		if pr := t.progress[id]; pr != nil && pr.RecentActive {
			active++
		}
	}
	return active >= t.quorum()
}

type voteResult uint8

const (
	votePending voteResult = iota
	voteWon
	voteLost
)

// tallyVotes counts the votes of voters only.
func (t *tracker) tallyVotes() (granted, rejected int, result voteResult) {
	for _, id := range t.conf.Voters {
		v, ok := t.votes[id]
		if !ok {
			continue
		}
		if v {
			granted++
		} else {
			rejected++
		}
	}
	switch q := t.quorum(); {
	case granted >= q:
		return granted, rejected, voteWon
	case len(t.conf.Voters)-rejected < q:
		return granted, rejected, voteLost
	}
	return granted, rejected, votePending
}

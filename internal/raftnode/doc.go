// Package raftnode runs a member's raft core: the one goroutine that owns
// raft.Node, ticks it from a ticker, feeds it messages and proposals, and
// handles each Ready in the order raft.Ready documents:
//
//  1. Leader only: send MsgApp and MsgHeartbeat now, so followers write
//     while the leader writes (§10.2.1; the leader's own entries count
//     toward a quorum only after Advance).
//  2. Persist: an installed snapshot (snap file, then the WAL's reset
//     marker), then HardState and Entries in one WAL write, fsynced when
//     MustSync. A persistence error is fatal: the loop stops and Err
//     reports it; the member never goes on with state it cannot trust.
//  3. Update the in-memory raft storage (snapshot, entries).
//  4. Learn new members from ConfState, then send the remaining messages.
//  5. Hand the snapshot and committed entries, in order, to the one
//     applier (Apply channel), and the ReadStates to the read loop.
//  6. Advance.
//
// Local snapshots are taken on request (TakeSnapshot) between Readys, by
// the same goroutine, so the WAL never sees a taken snapshot race an
// installed one. The caller must make the state machine durable up to the
// index first: the WAL is released up to it.
package raftnode

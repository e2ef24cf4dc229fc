// Package raftnode runs a member's raft core. Driver (driver.go) is the
// Ready handling, deterministic: it owns raft.Node, has no clock (ticks
// come from outside) and no goroutine, and reaches storage, the network
// and the applier through small interfaces it owns (LogStore, SnapStore,
// Sender, Applier). Node (raftnode.go) runs a Driver in one goroutine,
// ticked by a ticker, fed by channels; the simulators (raft/sim,
// membersim) call a Driver from their schedulers instead, with simulated
// I/O behind the same interfaces. Limits (limits.go) are the one set of
// size bounds, checked against the largest request at start-up.
//
// The Driver handles each Ready in the order raft.Ready documents:
//
//  0. Tell the hooks of a new leader and of the configuration in force
//     (the transport learns new members before messages reach them).
//  1. Leader only: send MsgApp and MsgHeartbeat now, so followers write
//     while the leader writes (§10.2.1; the leader's own entries count
//     toward a quorum only after Advance).
//  2. Persist: an installed snapshot (snap file, then the WAL's reset
//     marker), then HardState and Entries in one WAL write, fsynced when
//     MustSync. A persistence error is fatal: the loop stops and Err
//     reports it; the member never goes on with state it cannot trust.
//  3. Update the in-memory raft storage (snapshot, entries).
//  4. Send the remaining messages.
//  5. Hand the snapshot, the committed entries and the ReadStates, in
//     order, to the Applier (Node: the Apply channel, bounded in bytes by
//     MaxApplyBytes, and the ReadStates channel).
//  6. Advance.
//
// Local snapshots are taken on request (TakeSnapshot) between Readys, or
// while Node waits to hand entries to the applier, by the same goroutine,
// so the WAL never sees a taken snapshot race an installed one. The
// caller must make the state machine durable up to the index first: the
// WAL is released up to it.
package raftnode

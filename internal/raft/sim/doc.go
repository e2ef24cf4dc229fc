// Package sim is a deterministic simulator for Cairn's raft core: real
// raft.Node cores, each run by the driver production runs
// (raftnode.Driver: the order of persisting, sending and applying), a
// seeded scheduler, and a simulated network and disk. The disk is the
// core's in-memory storage, which survives crashes; the state machine is
// a log of what was applied. Package membersim runs whole members (WAL,
// snapshots, mvcc) the same way.
//
// One step is one action chosen by the seeded random source: a tick of every
// member's clock, the delivery of one due message (in any order among those
// due), the handling of one member's Ready, a client write or read, or a
// fault. Faults are message drops, duplicates and delays (which reorder),
// symmetric and one-way partitions and healing, crashes (a member loses
// everything it did not persist through Ready, sometimes between persisting
// a Ready and sending its messages) and restarts, membership changes (new
// members join empty), leadership transfers, and snapshots that compact a
// member's log so that laggards need a snapshot. A leader sends its
// appends before persisting its own entries (allowed by the dissertation,
// §10.2.1, and done by the driver) and may crash in between; any member
// may crash after persisting a Ready and before sending its messages.
//
// After every step the simulator checks:
//
//   - Election Safety: at most one leader per term.
//   - Leader Completeness: a new leader's log holds every committed entry.
//   - Committed entries never change or disappear: every entry a member
//     reveals as committed (by its commit index or by applying it) equals
//     the one first seen at that index, and no member overwrites an entry
//     at or below its persisted commit index.
//   - State Machine Safety: every member applies the same entries in the
//     same order, each exactly once, and snapshots are of that sequence.
//   - Linearizable reads: a read index covers every write acknowledged to
//     its client before the read started.
//
// Every StabilizeEvery steps, and at the end, it stops the faults, heals the
// network and restarts crashed members (sometimes leaving one voter down
// where every configuration in play tolerates that), and asserts progress:
// a new write commits and is applied on every up member within a bound of
// ticks.
//
// A run is a pure function of its Config: a failing seed reproduces
// exactly. See sim_test.go for the environment variables that replay one
// seed with a full trace or run a long soak.
package sim

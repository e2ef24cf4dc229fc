// Package raft is Cairn's consensus core: Raft as described in Diego
// Ongaro's dissertation ("Consensus: Bridging Theory and Practice", 2014),
// written as a pure, deterministic state machine.
//
// # Shape
//
// The core has no goroutines, no clock, no I/O and no randomness of its
// own. Time advances only by Node.Tick; input arrives by Node.Step
// (messages from peers) and by the proposal methods; output leaves through
// Node.Ready, which the caller persists, sends and applies, then
// acknowledges with Node.Advance. The ordering rules the caller must follow
// are written on the Ready type. Its only other output is log lines about
// elections, votes, role and configuration changes, in etcd raft's words
// ("1 became leader at term 2"), to the Logger in its Config. Election timeouts are drawn from the Rand
// in the Config, so a seed reproduces a run exactly (see package sim).
//
//	 Tick  Step(msg)  Propose/ReadIndex/...
//	   |      |        |
//	   v      v        v
//	+-----------------------+      reads      +---------+
//	|   raft state machine  | --------------> | Storage | (durable log,
//	+-----------------------+                 +---------+  written by caller)
//	            |
//	          Ready{HardState, Entries, Snapshot,        caller: persist,
//	                Messages, CommittedEntries, ...}  -> send, apply,
//	                                                     then Advance()
//
// Roles are step and tick function fields set by becomeFollower,
// becomePreCandidate, becomeCandidate and becomeLeader; an illegal
// transition panics.
//
// # What it implements
//
//   - Leader election with randomized timeouts; term and vote persisted
//     through HardState before any vote is sent.
//   - Pre-vote (§9.6) and check-quorum with a leader lease: a member that
//     heard from a leader within the election timeout ignores vote
//     requests, so a partitioned or rejoining member never disrupts a
//     healthy leader; a leader that hears from no quorum for an election
//     timeout steps down.
//   - Log replication with per-follower progress (probe, replicate,
//     snapshot), a bounded in-flight window (count and bytes), batching up
//     to MaxSizePerMsg, and fast backtracking: a rejection carries a hint
//     (index, term) that lets the leader skip a whole term of conflicting
//     entries per round trip (see raftLog.findConflictByTerm). An append
//     that only moves the commit index of a follower the leader knows to
//     hold its whole log is marked as wanting no answer (Message.Reject on
//     a MsgApp), and the follower accepts it silently.
//   - Commitment only of current-term entries, counted by quorum (§5.4.2);
//     a new leader appends an empty entry. The leader's own entries count
//     toward a quorum only once the caller reports them durable (Advance).
//   - Log compaction: the caller snapshots its state machine into Storage
//     and compacts; a follower whose next entry is gone gets the snapshot.
//   - Linearizable reads by ReadIndex (§6.4), batched by heartbeat round
//     (see readOnly), forwarded from followers, and held until the leader
//     has committed an entry of its term.
//   - Membership changes, leadership transfer and proposal limits, below.
//
// # Membership changes: single-server, in effect when appended
//
// Cairn uses one-at-a-time single-server changes (§4.1): add a voter, add a
// learner, promote a learner (AddVoter on a learner), demote a voter
// (AddLearner on a voter), remove a member. Any two majorities of
// configurations that differ by one voter overlap, so no joint consensus is
// needed. As the dissertation specifies, a member uses the LATEST
// configuration in its log, committed or not; truncating the log reverts
// it (confLog records the configuration at each change). Two rules make
// this safe:
//
//   - Only one change may be pending: the leader refuses a new one while the
//     latest configuration entry is uncommitted (ErrConfChangePending).
//   - A new leader refuses changes until it has committed the empty entry of
//     its term. Without this, the dissertation's published bug (raft-dev,
//     2015) lets two leaders of overlapping terms commit changes whose
//     majorities do not overlap.
//
// Why not etcd's choice (apply the configuration when the application
// applies the entry)? With it, a member whose log holds C2 and C3 but that
// has applied neither still counts votes with C1; C1 and C3 differ by two
// voters and their majorities need not overlap, so two leaders could be
// elected in one term. etcd's maintainers reached the same conclusion
// (etcd-io/etcd#5004, #7625: "the current etcd/raft membership change
// protocol is unsound", #11284), and raft-rs moved to append-time changes
// for it. The dissertation's rule leaves no such window, and our simulator
// checks election safety after every step.
//
// One consequence for the server: a configuration needs a quorum of
// itself to commit, so a ONE-voter cluster that adds a second voter cannot
// commit that change until the new member runs and answers. (In etcd the
// change commits at once and the cluster is unavailable until the new
// member starts.) etcdctl's flow, `member add` and only then start the
// member, would wait forever; the server must add such a member as a
// learner at the raft level and promote it once it has caught up
// (issue #5).
//
// Removing the leader (§4.2.2): the leader appends the configuration
// without itself, keeps replicating without counting itself, and steps down
// once that configuration commits, sending MsgTimeoutNow to an up-to-date
// voter so the cluster does not wait an election timeout. A member removed
// by an uncommitted configuration still campaigns (without counting its own
// vote): it may be needed to elect anyone (Figure 4.6).
//
// # Leadership transfer (§3.10)
//
// The leader brings the transferee up to date, then sends MsgTimeoutNow;
// the transferee campaigns at once, skipping pre-vote, with a context that
// voters honour despite their leader lease. Proposals are refused while a
// transfer is in progress (ErrTransferInProgress), and a transfer that has
// not finished within an election timeout is abandoned.
//
// # Limits
//
// Nothing grows without bound: proposals beyond MaxUncommittedEntriesSize
// of uncommitted payload fail with ErrTooManyRequests; a member with no
// leader refuses with ErrNoLeader; pending reads are bounded by
// MaxPendingReads; in-flight appends per follower by MaxInflightMsgs and
// MaxInflightBytes; committed entries per Ready by MaxCommittedSizePerReady.
package raft

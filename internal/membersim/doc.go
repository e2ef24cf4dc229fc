// Package membersim is a deterministic simulator of whole Cairn members:
// it runs the code a cairn process runs between the network and the disk,
// not a stand-in for it, and checks what clients see.
//
// Each simulated member is
//
//	raftnode.Driver            the Ready handling production runs
//	  ├─ *wal.WAL, *snap.Snapshotter   on an internal/vfs MemFS (crashable)
//	  ├─ member.Pipeline        the apply pipeline: images, entries, snapshots
//	  │    └─ apply.Applier, mvcc.Store  on pebble's crashable in-memory FS
//	  └─ member.Images          snapshot images, sent as the transport sends them
//
// opened and recovered by member.Open, exactly as at a process start. Only
// I/O is simulated: the two disks and the network (a MsgSnap carries the
// sender's image, which the receiver stores before raft sees the message,
// and every snapshot send is reported, as the transport does).
//
// A seeded scheduler interleaves ticks, message deliveries (any order
// among those due), applies (late, or at once as the apply goroutine may),
// client operations and faults. A seed's mix (swarm testing) sets how often
// each happens. Faults: message loss, duplication (not of forwarded
// proposals: the transport's streams never duplicate) and delay;
// partitions that heal after a while; power loss of a member, at any step
// or mid-Ready just before or after any storage write of the driver,
// keeping only what each disk made durable (the WAL's disk also a random
// part of the rest); restarts; slow apply.
//
// Membership changes (a seed's mix sets how often; none in 2 seeds out of
// 5) are made as the server makes them (see membership.go): the leader,
// once it has applied what it committed, validates the change against its
// applied membership (membership.Validate) and proposes it in its term
// (Driver.ProposeConfChangeAsLeader). Voters are added as raft learners
// whose record says voter, and the leader's duty promotes them once caught
// up (member.PromotionsDue); learners are added, and promoted on request
// only once caught up (member.CaughtUp: "learner not ready"); members are
// removed (voters, learners, the leader) and their peer URLs updated (the
// network is by ID: only the records change). Once `member add` has
// returned, the new member is started empty in join mode (member.Open with
// Join) soon, after a long while, or never. A member that applied its own
// removal, or whose traffic a peer refuses as removed (etcd's transport
// answers 410 Gone), stops for good: it is never restarted and nothing
// waits for it. The cluster stays between 1 voter and maxMembers members.
// Changes draw from a generator of their own: a seed without them runs its
// faults and clients as it did before they existed.
//
// Clients (at most numClients operations at a time) put, delete and run
// txns with compares on a few keys, read linearizably (ReadIndex, served
// once the applied index reaches it) and serializably, grant and revoke
// leases with keys attached, and compact. Watchers follow every key and
// move to another member when theirs goes down.
//
// Checks, per seed:
//
//   - the client history is linearizable: porcupine, against a model of
//     etcd's KV that knows revisions (every write that changes something
//     makes one) and leases (a revoke deletes its keys in one revision).
//     An operation whose client never heard is resolved once the cluster
//     has converged: by the outcome of its first apply, or dropped if no
//     member applied it;
//   - every member computes the same result for every entry, and each
//     request is applied at one index only;
//   - a member's applied index and revision never go back (within a run
//     of the process), and it serves clients only once it has applied
//     what it had committed before it started;
//   - no acknowledged put is lost, across any crash: at the end each reads
//     as written at its revision (unless compacted), and serializable
//     reads saw what the store held at the revision they reported;
//   - every member's HashKV at the same revision is equal;
//   - every watcher sees each revision after its start exactly once, in
//     order, whole in one response, with the same events as every other
//     watcher;
//   - a membership change the leader validated is never ignored by raft
//     as invalid, and no removed ID is added again;
//   - at convergence every running member has the same members, removed
//     IDs and configuration, and raft's configuration is the applied one;
//     a voter record is a raft voter (or, while its member does not run,
//     a raft learner), a learner record a raft learner, and every ID in
//     the configuration has a record; every removed ID is remembered and
//     none is back; each member's peer URLs are those of its latest
//     update.
//
// At the end the simulator stops the faults, restarts every member (but
// those removed, or never to be started) and requires the cluster to
// converge (a leader, everything applied everywhere, nothing in flight,
// every running pending voter promoted) within a bound of ticks.
//
// A failing seed reproduces with CAIRN_MEMBERSIM_SEED=<seed> (see
// sim_test.go), which also traces every event. Pebble flushes in its own
// goroutines, so what a power cut keeps beyond the backend's last sync can
// vary from run to run; the WAL, the network and the scheduler do not.
//
// scripts/plant-bugs.sh plants the bugs of testdata/bugs, one at a time,
// and reports which seeds catch each.
package membersim

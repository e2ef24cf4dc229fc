// Package server runs one Cairn member: it opens the member's storage
// (member.Open, on the real disk), starts the raft loop (raftnode.Node,
// which runs a raftnode.Driver), the peer transport and the apply loop
// (member.Pipeline), and serves the client API's requests to the gRPC
// adaptors in package v3rpc. What is deterministic lives in packages
// raftnode and member, where the member simulator (package membersim)
// runs it; this package holds the goroutines, the waiting and the wiring.
//
// Its parts are small and each owns one job:
//
//   - server.go: the member's lifecycle and the apply loop, the one
//     goroutine that feeds committed entries to the pipeline in order;
//     proposals, refused with "too many requests" while the applied index
//     is more than 5000 entries behind the commit index.
//   - wait.go: proposals waiting for their entry to be applied.
//   - read.go: linearizable reads by ReadIndex, batched: every reader that
//     arrives while a round is in flight shares the next round.
//   - kv.go: the KV requests, validated by v3rpc, proposed or read here.
//   - lease.go: the lease API and the leader's lease duties (expiry,
//     checkpoints), proposed by a few bounded workers.
//   - compactor.go: periodic and revision auto-compaction.
//   - metrics.go: the Prometheus series, under etcd's names.
//
// Goroutines: Start starts the raft loop, the transport's, the apply loop,
// the read loop, the attribute publisher, the raft-loop watcher, the lease
// loop and its workers, and the compactor; Stop stops them all and waits
// for each.
package server

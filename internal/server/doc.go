// Package server runs one Cairn member: it recovers or bootstraps the
// member's storage, starts the raft loop (package raftnode), the peer
// transport and the applier, and serves the client API's requests to the
// gRPC adaptors in package v3rpc.
//
// Its parts are small and each owns one job:
//
//   - bootstrap.go: first start (WAL created, founding conf changes
//     written) or restart (snapshot, backend, WAL replay after the
//     consistent index).
//   - server.go: the member's lifecycle and the apply loop, the one
//     goroutine that feeds committed entries to the applier in order.
//   - wait.go: proposals waiting for their entry to be applied.
//   - read.go: linearizable reads by ReadIndex, batched: every reader that
//     arrives while a round is in flight shares the next round.
//   - kv.go: the KV requests, validated by v3rpc, proposed or read here.
//   - compactor.go: periodic and revision auto-compaction.
//   - metrics.go: the Prometheus series, under etcd's names.
//
// Goroutines: Start starts the raft loop, the transport's, the apply loop,
// the read loop, the attribute publisher and the compactor; Stop stops
// them all and waits for each.
package server

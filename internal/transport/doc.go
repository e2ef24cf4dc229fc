// Package transport carries raft messages between members on the peer
// URLs: raft's messages on a raw connection of their own, everything else
// over gRPC (HTTP/2).
//
// Each member keeps, for every peer, one long-lived raw message connection
// for small messages (appends, heartbeats, votes, ...), and opens a gRPC
// connection per snapshot, so that a multi-gigabyte image never queues
// behind or ahead of a heartbeat:
//
//	member A                                             member B
//	peer(B).run ── raw message connection (conn 1) ──>  serveRaw -> Raft.Process
//	sendSnapshot ── gRPC Raft/Snapshot stream (conn 2) ──> handleSnapshot -> Snapshots.SaveImage, Raft.Process
//
// The raw connection (raw.go) is a hello, then length-prefixed frames,
// written by the peer's one goroutine straight to the socket and read by
// one goroutine on the receiver: a gRPC stream added a writer goroutine
// on the sender and a handler on the receiver, and HTTP/2's framing, to
// every append and acknowledgement. Send itself writes a peer's messages
// to a plain socket when that cannot block nor pass a queued message
// (direct.go), which spares an idle member's appends and acknowledgements
// the wait for the goroutine. Serve tells the two kinds of
// connection apart by their first bytes on the one peer listener. A peer
// that does not answer the hello as a raw receiver (a member from before
// the raw connection) is sent to on a gRPC Raft/Messages stream instead,
// which every member still receives.
//
// Wire format. The gRPC methods are client streams of raw frames (no
// protobuf); the raw connection carries the same Messages frames:
//
//	Messages frame:  | cluster ID (8B BE) | count (uvarint) | { len (uvarint) | raftpb.Message } * count |
//	Snapshot frame 1: | cluster ID (8B BE) | image size (8B BE) | image CRC-32C (4B BE) | raftpb.Message (MsgSnap) |
//	Snapshot frames 2..: image bytes, at most snapshotChunkBytes each
//	raw connection:  hello | { frame length (4B BE) | Messages frame } ...   (raw.go)
//
// A raw connection's hello carries the sender's cluster ID and member ID
// and the intended receiver's ID, as every gRPC stream carries them as
// metadata. The receiver refuses a connection or stream whose cluster ID
// or receiver is not its own (a raw refusal, or FailedPrecondition), and
// drops any message whose frame names another cluster or whose From or To
// does not match the stream, logging each refusal: a member of another
// cluster never reaches raft.
//
// A member removed from the cluster (Config.Removed) has its connections,
// streams and calls refused with ErrMemberRemoved (PermissionDenied over
// gRPC), which tells it to stop (Config.OnRemoved), as etcd's peers answer
// such a member 410.
//
// A vanished peer is noticed in seconds: gRPC connections by HTTP/2 keep-
// alive pings, raw ones by TCP keep-alives, TCP_USER_TIMEOUT (data left
// unacknowledged) and a write deadline (a receiver that reads nothing).
//
// Two unary methods sit beside the streams: Call carries what a follower
// forwards to the leader (lease keep-alives, membership changes) and the
// corruption checks' hash requests to any member, checked like a stream;
// Cluster answers a member that is joining and knows
// neither the cluster's ID nor its own (FetchCluster), so it checks
// nothing and says only what Config.Cluster says.
//
// A message that cannot be sent (queue full, no connection) is dropped and
// reported to raft with ReportUnreachable; raft retries on its own. Every
// MsgSnap is reported with ReportSnapshot, success or failure, as raft
// requires.
package transport

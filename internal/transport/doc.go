// Package transport carries raft messages between members over gRPC
// (HTTP/2) on the peer URLs.
//
// Each member keeps, for every peer, one long-lived client stream for small
// messages (appends, heartbeats, votes, ...), and opens a separate
// connection per snapshot, so that a multi-gigabyte image never queues
// behind or ahead of a heartbeat:
//
//	member A                                         member B
//	peer(B).run ── Raft/Messages stream (conn 1) ──> handleMessages -> Raft.Process
//	sendSnapshot ── Raft/Snapshot stream (conn 2) ──> handleSnapshot -> Snapshots.SaveImage, Raft.Process
//
// Wire format. Both methods are client streams of raw frames (no protobuf):
//
//	Messages frame:  | cluster ID (8B BE) | count (uvarint) | { len (uvarint) | raftpb.Message } * count |
//	Snapshot frame 1: | cluster ID (8B BE) | image size (8B BE) | image CRC-32C (4B BE) | raftpb.Message (MsgSnap) |
//	Snapshot frames 2..: image bytes, at most snapshotChunkBytes each
//
// Every stream also carries the sender's cluster ID and member ID and the
// intended receiver's ID as gRPC metadata. The receiver refuses a stream
// (FailedPrecondition) whose cluster ID or receiver is not its own, and
// drops any message whose frame names another cluster or whose From or To
// does not match the stream, logging each refusal: a member of another
// cluster never reaches raft.
//
// A member removed from the cluster (Config.Removed) has its streams and
// calls refused with ErrMemberRemoved (PermissionDenied), which tells it
// to stop (Config.OnRemoved), as etcd's peers answer such a member 410.
//
// Two unary methods sit beside the streams: Call carries what a follower
// forwards to the leader (lease keep-alives, membership changes) and the
// corruption checks' hash requests to any member, checked like a stream; Cluster answers a member that is joining and knows
// neither the cluster's ID nor its own (FetchCluster), so it checks
// nothing and says only what Config.Cluster says.
//
// A message that cannot be sent (queue full, no connection) is dropped and
// reported to raft with ReportUnreachable; raft retries on its own. Every
// MsgSnap is reported with ReportSnapshot, success or failure, as raft
// requires.
package transport

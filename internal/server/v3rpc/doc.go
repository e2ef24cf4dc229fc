// Package v3rpc adapts etcd's gRPC services (KV, Watch, Lease, Maintenance,
// Cluster) to the server: each handler validates the request as etcd does, delegates,
// maps the error to etcd's gRPC error (rpctypes), and fills the response
// header {cluster_id, member_id, revision, raft_term}. Nothing else,
// besides what every call shares: the require-leader check (leader.go) and
// the codec for etcd's messages (codec.go).
//
// Calls the server does not implement yet answer codes.Unimplemented with
// a message naming the call, so tools fail clearly instead of appearing to
// succeed; services not registered at all yet (Auth, Lock, Election) get
// gRPC's own Unimplemented "unknown service" answer, which names them too.
package v3rpc

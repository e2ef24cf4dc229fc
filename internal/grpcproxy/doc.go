// Package grpcproxy is the gRPC side of `cairn grpc-proxy start`, etcd's
// stateless gRPC proxy: clients speak etcd's gRPC API to the proxy, which
// forwards every call to the cluster through one clientv3 client (whose
// balancer picks a member and fails over).
//
// Calls are forwarded as raw messages (rawCodec), whatever their service:
// KV, Watch, Lease, Cluster, Maintenance, Auth, Lock and Election, and
// whatever a newer client asks (the cluster answers what it does not
// know). A unary call goes through the client's unary path (its retries of
// calls that never reached a member); a streaming one is piped both ways
// on a stream of its own. The caller's metadata goes along (its auth
// token, require-leader), minus what gRPC itself sets.
//
// As etcd's proxy, two Cluster methods are answered here: MemberList, when
// the proxy advertises a client URL, lists the proxy itself, or every
// proxy registered under the resolver prefix (Register), so that clients
// that sync their endpoints stay on proxies; MemberPromote is refused.
//
// Unlike etcd's proxy it keeps no cache of serializable ranges and does
// not coalesce watchers: each client's watch stream is a watch stream on
// a member (README: Deliberate differences).
//
// Goroutines: each forwarded stream runs one goroutine beside its
// handler, copying the client's messages to the cluster; it ends when the
// client's side of the stream does, which the handler's return ensures.
// Register and WatchRegistered run one goroutine each, until the client
// closes.
package grpcproxy

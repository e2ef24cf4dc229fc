// Package v3lock serves etcd's Lock and Election gRPC services
// (api/v3lockpb, api/v3electionpb) as etcd does: over clientv3's
// concurrency package (Mutex, Election), whose client is in process.
//
// The inner client's KV, Lease and Watch call the client API's own
// service handlers (internal/server/v3rpc) directly, each with the
// context of the request being served, so every read, write and watch a
// Lock or Campaign makes is checked as the caller (its token, or its
// client certificate's name), with the caller's permissions, and no
// request crosses a socket. Watch and lease keepalive streams are pipes
// (pipe.go): the stream handler runs in a goroutine of the Server, which
// Close waits for after closing the client.
//
// As etcd's, every request takes a concurrency session on the caller's
// lease and orphans it at once: the service never keeps a lease alive.
// A Lock with lease 0 grants a lease of 60s for the lock.
//
// One deliberate difference: each request watches on a stream of its own
// (Server.call), where etcd's shared in-process client puts concurrent
// waiters on one stream, checked as the user who opened it.
package v3lock

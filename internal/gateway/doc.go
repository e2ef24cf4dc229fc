// Package gateway serves etcd's gRPC client API as HTTP/JSON at /v3/...,
// as etcd's grpc-gateway does (`curl -X POST localhost:2379/v3/kv/range
// -d '{"key":"Zm9v"}'`).
//
// The routes are the google.api.http mappings of etcd's rpc.proto, as
// generated in go.etcd.io/etcd/api/v3/etcdserverpb/gw; the JSON is
// grpc-gateway v2's runtime with etcd's options (see New). Every HTTP
// request becomes a gRPC call to the member's own client gRPC server,
// which therefore authenticates, limits, counts and logs it as any other:
//
//	HTTP client --JSON--> Gateway.Handler (runtime.ServeMux, generated routes)
//	      --gRPC over an in-memory connection (Gateway.Listener)--> client grpc.Server
//
// etcd dials its own client listener instead; the in-memory connection
// works whatever that listener is (TLS, a unix socket, gRPC-only with
// --listen-client-http-urls) and carries no TLS, so the only credential
// a gateway request can present is the token of its HTTP Authorization
// header (forwarded as gRPC metadata "authorization").
//
// Invariant: one gRPC connection carries every gateway request, as
// etcd's one dialled connection does; the server's
// --max-concurrent-streams bounds the gateway's concurrent requests.
package gateway

// Package h2grpc is a gRPC server of Cairn's own for the client API: HTTP/2
// (prior knowledge, as etcd's clients speak to http:// endpoints, or over
// a TLS connection whose handshake is done) and gRPC's framing,
// dispatching every call through the services' generated descriptors
// (grpc.ServiceDesc) to the same handlers and interceptors grpc-go's
// server runs: ARCHITECTURE.md's "the client API's own HTTP/2 server".
// Cairn's default on http:// client URLs and for gRPC clients on https://
// ones (--own-grpc-server; false: grpc-go's). Options.Creds tells
// handlers a connection's TLS state, as grpc.Creds does.
//
// Why: on small requests grpc-go's server is most of a member's CPU (half
// of the leader's under puts from 100 clients; its per-stream state,
// contexts and buffers are a third of the leader's allocations). This one
// keeps a call's state in one object, hands a unary call to a worker only
// once its request is whole, and has two fast paths the server's options
// choose: a call answered on the connection's reader (Options.Inline: a
// serializable read of one key), and a call answered later by whatever
// ends its wait (Options.Defer: a linearizable read, by the goroutine
// that ends its ReadIndex round), no worker woken for either.
//
// One connection:
//
//	reader goroutine  reads frames (Framer, 32 KiB buffer); HEADERS open a
//	                  stream, DATA append to its message buffer, SETTINGS,
//	                  PING, WINDOW_UPDATE and RST_STREAM are handled here
//	a unary call      run by a pooled worker once its request is whole
//	                  (or inline, or deferred: see above); its answer
//	                  (HEADERS, DATA, trailers) appended to the
//	                  connection's out buffer in one critical section
//	a streaming call  run by a pooled worker from its HEADERS on; RecvMsg
//	                  waits for the reader's messages, SendMsg for the
//	                  peer's flow-control windows
//	writer goroutine  woken when the out buffer gets its first frames
//	                  since the last write; writes everything appended
//	                  by then in one syscall, outside the lock
//
// Locking: conn.wmu guards the write side: the out buffer, the hpack
// encoder, the send windows (the connection's and every stream's), the
// stream table and each stream's send state; conn.wcond (on wmu) wakes
// senders waiting for a window. stream.mu guards a stream's received
// messages; stream.cond (on mu) wakes RecvMsg. Never take wmu while
// holding a stream's mu.
//
// What it matches of grpc-go's server (tests: h2grpc's own against
// clientv3 and hand-written frames, and cairn's e2e suite with the flag):
// SETTINGS both ways (initial window, max frame size, header table size),
// flow control both ways, PING answers and keepalive enforcement (GOAWAY
// "too_many_pings" after more than two pings closer than MinTime, or any
// with no stream open beyond the first), server keepalive pings,
// RST_STREAM cancelling a call's context, grpc-timeout deadlines,
// metadata (-bin values base64), the status and message in trailers
// (percent-encoded), messages over MaxRecvMsgSize refused with
// ResourceExhausted in grpc-go's words, MaxConcurrentStreams (streams
// beyond it refused with REFUSED_STREAM), compression by the compressors
// registered with grpc's encoding package (others refused with
// Unimplemented; cairn registers none), the reader throttled while the
// out buffer is past maxPendingOut, a deadline for the client's preface
// (prefaceTimeout; grpc-go's is its 120 s connection timeout), and
// GracefulStop (GOAWAY, calls opened after it refused with
// REFUSED_STREAM, the unary calls in flight answered, up to a timeout).
//
// Not yet: the HTTP/JSON gateway's in-memory connections (they stay on
// grpc-go's server, as do browsers' and curl's TLS connections, which
// net/http serves), grpc.SetHeader/SendHeader through the context (the
// stream's own methods work). Unlike grpc-go's: GracefulStop does not
// wait for streaming calls (a watch never ends by itself: grpc-go's would
// wait for it until its caller gives up, etcd's after its request
// timeout) but closes each connection once its unary calls have
// answered; a reset stream leaves
// MaxConcurrentStreams' count at once, while its handler may still run
// (grpc-go counts it until the handler returns; this matters only with
// a limit set), and Stop waits for running handlers (they end with their
// contexts, which Stop cancels).
package h2grpc

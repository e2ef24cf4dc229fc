// Package tcpproxy is etcd's gateway (`etcd gateway start`): a stateless
// TCP proxy that hands each client connection, whole, to one of a
// cluster's client endpoints, so that a client configured with one local
// address reaches whichever members are up.
//
// Each accepted connection is dialled through to the next endpoint in
// turn (round robin) and the bytes are copied both ways until either side
// closes; the proxy never looks inside (gRPC, HTTP and TLS pass through
// alike). An endpoint that refuses a dial is passed over for RetryDelay,
// as etcd's gateway deactivates it for its --retry-delay; then it is
// tried again by the next connection that comes.
//
// Where etcd's differs, deliberately: when every endpoint has been passed
// over, etcd closes new connections until its monitor finds one back (up
// to --retry-delay, a minute by default, after the whole cluster
// restarted); this proxy then tries them all again at once, so that a
// client reconnecting after a full restart is served as soon as a member
// answers. A dial is bounded by DialTimeout (etcd's has none).
package tcpproxy

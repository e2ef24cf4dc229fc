// Package dashboard is the web dashboard every member serves at /ui/ on
// its client URLs: static files embedded in the binary (no fetch at run
// time), which the browser runs against the HTTP/JSON gateway (/v3/...)
// as any client would. The member has no endpoint of its own for it.
//
// # Pages
//
// Cluster: every member (name, ID, role, health, raft term, index and
// applied index, DB size and in use, version, peer and client URLs) and
// the alarms, refreshed every second. The member list comes from the
// member serving the page, or from any other member that answers once it
// is down; each member's status comes from that member's own client URL
// (the gateway answers other origins: --cors defaults to "*", as etcd's).
//
// Keys: a prefix's keys, a page of 50 at a time (keys-only ranges, the
// next page from the last key + "\0"), a key's value as text, JSON or
// hex and its history (ranges at the revision before each version's, back
// to its creation or to the compacted revision), put and delete after a
// confirm(), and a live watch (the gateway's streamed /v3/watch).
//
// Leases: /v3/lease/leases, each lease's time-to-live with its keys, and
// revoke after a confirm(). Load: the member's /metrics every 2 s
// (requests/s from grpc_server_handled_total, latency quantiles from
// etcd_server_request_duration_seconds' buckets, watchers), drawn as SVG.
//
// With auth enabled, the page asks for a user and password and sends the
// token /v3/auth/authenticate returns with every call.
//
// # Front end
//
// Hand-written HTML, CSS and JavaScript, no framework and no build step:
// the files in assets/ are what the browser runs (about 30 KB), so the
// binary needs no toolchain beyond Go's and a review reads what ships.
//
// # When it is served
//
// --dashboard (Cairn's own flag): "auto", the default, serves it when
// every client URL listens on a loopback address, where only this machine
// can load it; "on" and "off" say so. It needs the gateway
// (--enable-grpc-gateway, on by default). TLS, client certificates and
// --host-whitelist apply to it as to every request on the client URLs.
package dashboard

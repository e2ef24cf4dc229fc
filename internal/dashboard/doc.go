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
// With auth enabled, the page asks for a user and password and sends the
// token /v3/auth/authenticate returns with every call.
//
// # Front end
//
// Hand-written HTML, CSS and JavaScript, no framework and no build step:
// the files in assets/ are what the browser runs (about 10 KB), so the
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

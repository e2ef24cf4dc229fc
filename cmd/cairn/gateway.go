package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"

	"github.com/cairn-db/cairn/internal/dashboard"
	"github.com/cairn-db/cairn/internal/gateway"
)

// dashboardOn says whether --dashboard serves the dashboard: with "auto",
// when every URL serving the client HTTP endpoints listens on a loopback
// address (or a unix socket), so only this machine reaches it.
func (c *config) dashboardOn() bool {
	switch c.Dashboard {
	case "on":
		return true
	case "off":
		return false
	}
	urls := c.ListenClientURLs
	if len(c.ListenClientHTTPURLs) > 0 {
		urls = c.ListenClientHTTPURLs
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return false
		}
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			continue
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}

// addPprof serves Go's profiles under /debug/pprof/.
func addPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// clientHTTPMux is what the client URLs (or --listen-client-http-urls)
// serve over HTTP, as etcd's createMux: pprof with --enable-pprof, the
// gateway (if on) under /v3/, the dashboard (if on) under /ui/, and the
// other endpoints (/health, /metrics, /version, ...) at every other path.
func clientHTTPMux(endpoints http.Handler, gw *gateway.Gateway, enablePprof, dashboardOn bool) http.Handler {
	mux := http.NewServeMux()
	if enablePprof {
		addPprof(mux)
	}
	if gw != nil {
		mux.Handle("/v3/", gw.Handler())
	}
	if dashboardOn {
		mux.Handle("/ui/", dashboard.Handler("/ui/"))
	}
	mux.Handle("/", endpoints)
	return mux
}

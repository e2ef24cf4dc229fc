package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/cairn-db/cairn/internal/gateway"
)

// clientHTTPMux is what the client URLs (or --listen-client-http-urls)
// serve over HTTP, as etcd's createMux: pprof with --enable-pprof, the
// gateway (if on) under /v3/, and the other endpoints (/health,
// /metrics, /version, ...) at every other path.
func clientHTTPMux(endpoints http.Handler, gw *gateway.Gateway, enablePprof bool) http.Handler {
	mux := http.NewServeMux()
	if enablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if gw != nil {
		mux.Handle("/v3/", gw.Handler())
	}
	mux.Handle("/", endpoints)
	return mux
}

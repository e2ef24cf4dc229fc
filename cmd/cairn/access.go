package main

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// accessController is what every client HTTP request passes first, as in
// etcd: the Host check against --host-whitelist (DNS rebinding,
// CVE-2018-5702) and the CORS headers of --cors. "*" or an empty list
// allows all.
type accessController struct {
	cors, hosts []string
	next        http.Handler
	logger      *zap.Logger
}

func newAccessController(cors, hosts []string, next http.Handler, logger *zap.Logger) http.Handler {
	return &accessController{cors: cors, hosts: hosts, next: next, logger: logger}
}

func allowsAll(list []string) bool { return len(list) == 0 || slices.Contains(list, "*") }

func (ac *accessController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// As etcd's, only plain HTTP requests are checked: a DNS rebinding
	// attack cannot present the server's certificate's name.
	if host := hostname(r); r.TLS == nil && !allowsAll(ac.hosts) && !slices.Contains(ac.hosts, host) {
		ac.logger.Warn("rejecting HTTP request to prevent DNS rebinding attacks", zap.String("host", host))
		http.Error(w, fmt.Sprintf(`
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`, host), http.StatusMisdirectedRequest)
		return
	}
	if allowsAll(ac.cors) {
		addCORSHeaders(w, "*")
	} else if origin := r.Header.Get("Origin"); slices.Contains(ac.cors, origin) {
		addCORSHeaders(w, origin)
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	ac.next.ServeHTTP(w, r)
}

func addCORSHeaders(w http.ResponseWriter, origin string) {
	w.Header().Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
	w.Header().Add("Access-Control-Allow-Origin", origin)
	w.Header().Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
}

// hostname is the request's Host without its port.
func hostname(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.Host); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]")
}

// metricsOnly serves, on --listen-metrics-urls, what etcd serves there:
// /metrics and the health checks (/health, /livez, /readyz), without the
// client URL's access control.
func metricsOnly(endpoints http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, path := range []string{"/metrics", "/health", "/livez", "/livez/", "/readyz", "/readyz/"} {
		mux.Handle(path, endpoints)
	}
	return mux
}

package main

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// accessConfig is what the access controller checks.
type accessConfig struct {
	// cors and hosts are --cors and --host-whitelist.
	cors, hosts []string
	// refuseGatewayCN, if set (with --client-cert-auth and the gateway
	// on), says whether auth is enabled: then a gateway request over
	// TLS whose client certificate names a user (a common name) is
	// refused, as etcd refuses it.
	refuseGatewayCN func() bool
	logger          *zap.Logger
}

// accessController is what every client HTTP request passes first, as in
// etcd: /v3beta/ paths renamed /v3/, the Host check against
// --host-whitelist (DNS rebinding, CVE-2018-5702), the gateway's refusal
// of certificates with a common name, and the CORS headers of --cors.
// "*" or an empty list allows all.
type accessController struct {
	accessConfig
	next http.Handler
}

func newAccessController(cfg accessConfig, next http.Handler) http.Handler {
	return &accessController{accessConfig: cfg, next: next}
}

func allowsAll(list []string) bool { return len(list) == 0 || slices.Contains(list, "*") }

// errGatewayCN is etcd's answer to a gateway request whose certificate
// names a user: the gateway's own gRPC call cannot carry it (in etcd,
// the gateway's connection presents the server's certificate), so the
// request would run as someone else, or as no one.
const errGatewayCN = "CommonName of client sending a request against gateway will be ignored and not used as expected"

func (ac *accessController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// etcd's gateway answered at /v3beta/ before 3.4; etcd still does.
	if strings.HasPrefix(r.URL.Path, "/v3beta/") {
		r.URL.Path = strings.Replace(r.URL.Path, "/v3beta/", "/v3/", 1)
	}
	// As etcd's, only plain HTTP requests are checked: a DNS rebinding
	// attack cannot present the server's certificate's name.
	if r.TLS == nil {
		if host := hostname(r); !allowsAll(ac.hosts) && !slices.Contains(ac.hosts, host) {
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
	} else if ac.refuseGatewayCN != nil && strings.HasPrefix(r.URL.Path, "/v3/") && ac.refuseGatewayCN() {
		for _, chain := range r.TLS.VerifiedChains {
			if len(chain) > 0 && chain[0].Subject.CommonName != "" {
				http.Error(w, errGatewayCN, http.StatusBadRequest)
				return
			}
		}
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

package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/internal/tlsutil"
)

// tlsSetup is the TLS the flags ask for: the client port's (also the
// metrics port's, as etcd) and the peer port's.
type tlsSetup struct {
	client, peer tlsutil.Info
	// peerDial is what this member dials its peers with.
	peerDial *tls.Config
}

// errMissingClientTLSForMetrics is etcd's ErrMissingClientTLSInfoForMetricsURL.
var errMissingClientTLSForMetrics = errors.New("client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url")

// secure reports whether a listen URL asks for TLS.
func secure(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && (u.Scheme == "https" || u.Scheme == "unixs")
}

// setupTLS builds the client and peer TLS from the flags, as etcd's
// configureClientListeners and configurePeerListeners do: auto-TLS
// certificates made (or reused) under <data-dir>/fixtures, suites and
// versions applied, https:// URLs without a certificate refused, and the
// same warnings for http:// URLs given certificates.
func setupTLS(c config, logger *zap.Logger) (tlsSetup, error) {
	suites, err := tlsutil.CipherSuites(c.CipherSuites)
	if err != nil {
		return tlsSetup{}, err
	}
	minVersion, err := tlsutil.Version(c.TLSMinVersion)
	if err != nil {
		return tlsSetup{}, err
	}
	maxVersion, err := tlsutil.Version(c.TLSMaxVersion)
	if err != nil {
		return tlsSetup{}, err
	}
	dataDir := firstNonEmpty(c.DataDir, c.Name+".cairn")
	var s tlsSetup
	s.client = tlsutil.Info{
		CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCertFile: c.ClientCertFile, ClientKeyFile: c.ClientKeyFile,
		TrustedCAFile: c.TrustedCAFile, ClientCertAuth: c.ClientCertAuth, CRLFile: c.ClientCRLFile,
		AllowedHostnames: c.ClientCertAllowedHostname, Logger: logger,
	}
	if c.AutoTLS {
		if !s.client.Empty() {
			logger.Warn("ignoring client auto TLS since certs given")
		} else {
			var hosts []string
			for _, u := range append(append([]string(nil), c.ListenClientURLs...), c.ListenClientHTTPURLs...) {
				hosts = append(hosts, urlHost(u))
			}
			// As etcd's, the generated certificate replaces the client
			// TLS settings whole.
			if s.client, err = tlsutil.SelfCert(logger, filepath.Join(dataDir, "fixtures", "client"), hosts, c.SelfSignedCertValidity); err != nil {
				return tlsSetup{}, fmt.Errorf("failed to get client self-signed certs: %w", err)
			}
		}
	}
	s.peer = tlsutil.Info{
		CertFile: c.PeerCertFile, KeyFile: c.PeerKeyFile, ClientCertFile: c.PeerClientCertFile, ClientKeyFile: c.PeerClientKeyFile,
		TrustedCAFile: c.PeerTrustedCAFile, ClientCertAuth: c.PeerClientCertAuth, CRLFile: c.PeerCRLFile,
		AllowedCNs: c.PeerCertAllowedCN, AllowedHostnames: c.PeerCertAllowedHostname,
		SkipClientSANVerify: c.PeerSkipClientSANVerification, Logger: logger,
	}
	if c.PeerAutoTLS {
		if !s.peer.Empty() {
			logger.Warn("ignoring peer auto TLS since certs given")
		} else {
			var hosts []string
			for _, u := range c.ListenPeerURLs {
				hosts = append(hosts, urlHost(u))
			}
			if s.peer, err = tlsutil.SelfCert(logger, filepath.Join(dataDir, "fixtures", "peer"), hosts, c.SelfSignedCertValidity); err != nil {
				return tlsSetup{}, fmt.Errorf("failed to get peer self-signed certs: %w", err)
			}
		}
	}
	for _, info := range []*tlsutil.Info{&s.client, &s.peer} {
		info.CipherSuites, info.MinVersion, info.MaxVersion = suites, minVersion, maxVersion
	}

	for _, u := range append(append([]string(nil), c.ListenClientURLs...), c.ListenClientHTTPURLs...) {
		if !secure(u) {
			if !s.client.Empty() {
				logger.Warn("scheme is http or unix while key and cert files are present; ignoring key and cert files", zap.String("client-url", u))
			}
			if s.client.ClientCertAuth {
				logger.Warn("scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL", zap.String("client-url", u))
			}
		} else if s.client.Empty() {
			return tlsSetup{}, fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", u)
		}
	}
	for _, u := range c.ListenMetricsURLs {
		if secure(u) && s.client.Empty() {
			return tlsSetup{}, errMissingClientTLSForMetrics
		}
	}
	for _, u := range c.ListenPeerURLs {
		if secure(u) {
			continue
		}
		if !s.peer.Empty() {
			logger.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", zap.String("peer-url", u))
		}
		if s.peer.ClientCertAuth {
			logger.Warn("scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL", zap.String("peer-url", u))
		}
	}
	if !s.peer.Empty() {
		logger.Info("starting with peer TLS", zap.String("tls-info", s.peer.String()), zap.Strings("cipher-suites", c.CipherSuites))
	}
	if !s.client.Empty() {
		logger.Info("starting with client TLS", zap.String("tls-info", s.client.String()), zap.Strings("cipher-suites", c.CipherSuites))
	}
	// etcd's peers dial with the peer TLS settings whatever their own
	// URLs: a member on http:// can reach one on https://.
	if s.peerDial, err = s.peer.ClientConfig(); err != nil {
		return tlsSetup{}, err
	}
	return s, nil
}

// urlHost is a URL's host:port, or the URL itself if it does not parse.
func urlHost(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Host
	}
	return rawURL
}

// wrapTLS puts TLS on a listener opened for an https:// or unixs:// URL
// (others are returned as they are). The peer and metrics ports check
// the client's SANs against its address, the client port does not, as in
// etcd; refusals are logged as etcd logs them (EOF, a probe or a client
// that went away, at debug level).
func wrapTLS(l net.Listener, rawURL string, info tlsutil.Info, checkSAN bool, refusedMsg string, logger *zap.Logger) (net.Listener, error) {
	return wrapTLSDivert(l, rawURL, info, checkSAN, refusedMsg, nil, logger)
}

// wrapTLSDivert is wrapTLS whose connections divert says yes to are
// handed out by the listener's Diverted (see tlsutil.ListenerOptions).
func wrapTLSDivert(l net.Listener, rawURL string, info tlsutil.Info, checkSAN bool, refusedMsg string,
	divert func(*tls.ClientHelloInfo) bool, logger *zap.Logger) (net.Listener, error) {
	if !secure(rawURL) {
		return l, nil
	}
	return tlsutil.NewListener(l, info, tlsutil.ListenerOptions{
		CheckSAN: checkSAN,
		Divert:   divert,
		OnRefused: func(conn *tls.Conn, err error) {
			logf := logger.Warn
			if errors.Is(err, io.EOF) {
				logf = logger.Debug
			}
			state := conn.ConnectionState()
			fields := []zap.Field{zap.String("remote-addr", conn.RemoteAddr().String()), zap.String("server-name", state.ServerName)}
			if len(state.PeerCertificates) > 0 {
				cert := state.PeerCertificates[0]
				ips := make([]string, len(cert.IPAddresses))
				for i, ip := range cert.IPAddresses {
					ips[i] = ip.String()
				}
				fields = append(fields, zap.Strings("ip-addresses", ips), zap.Strings("dns-names", cert.DNSNames))
			}
			logf(refusedMsg, append(fields, zap.Error(err))...)
		},
	})
}

// grpcClientHello says whether a TLS client is a gRPC client: one that
// offers HTTP/2 alone by ALPN, as grpc-go's clients do (clientv3, etcdctl,
// the Kubernetes API server). Browsers, curl and Go's net/http offer
// http/1.1 beside it. On an https:// client URL that also serves HTTP,
// the connections of gRPC clients go to the gRPC server whole (h2grpc's,
// --own-grpc-server), the others to the HTTP server (grpcOrHTTP).
func grpcClientHello(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "h2"
}

// grpcOrHTTP serves, on a TLS client listener, gRPC requests with the
// gRPC server and the others with next, as etcd does: over TLS, HTTP/2
// is negotiated by ALPN for gRPC and browsers alike, so the connection's
// first bytes cannot tell them apart; the request's content type can.
// The gRPC server then runs in its http.Handler mode, which gives
// handlers the TLS state (credentials.TLSInfo) from the request.
func grpcOrHTTP(gs *grpc.Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// http2Config is etcd's HTTP/2 setting for the client HTTP servers:
// --max-concurrent-streams, clamped to what net/http takes.
func http2Config(maxStreams uint32) *http.HTTP2Config {
	return &http.HTTP2Config{MaxConcurrentStreams: int(min(maxStreams, math.MaxInt32))}
}

// clientAddr is one address of --listen-client-urls. etcd serves the
// http:// and https:// URLs that name the same address on one listener;
// so does cairn, telling TLS connections by their first byte.
type clientAddr struct {
	// root is the address's listener, without TLS.
	root             net.Listener
	secure, insecure bool
	// demux splits root when it serves plain connections (gRPC and, but
	// with --listen-client-http-urls, HTTP) beside TLS ones, or plain
	// gRPC and HTTP; nil when root serves TLS only, or gRPC only.
	demux *demux
	// tls hands out the TLS connections, handshake done; nil if no
	// https:// URL names the address.
	tls net.Listener
	// grpcTLS, when listenClients was asked to divert gRPC clients and
	// the address serves HTTP too, hands out the TLS connections of gRPC
	// clients (grpcClientHello), which tls then does not.
	grpcTLS net.Listener
}

// listenClients opens one listener per address of urls, with TLS from
// info for the https:// and unixs:// ones. On an error the listeners
// opened so far are closed. With divertGRPC, the TLS connections of gRPC
// clients to an address that serves HTTP too are handed out apart
// (clientAddr.grpcTLS).
func listenClients(lc net.ListenConfig, urls []string, split, divertGRPC bool, info tlsutil.Info, logger *zap.Logger) (addrs []*clientAddr, err error) {
	defer func() {
		if err != nil {
			for _, a := range addrs {
				a.root.Close()
			}
		}
	}()
	byKey := map[string]*clientAddr{}
	for _, u := range urls {
		key := u
		if pu, perr := url.Parse(u); perr == nil {
			key = pu.Host + pu.Path
		}
		a := byKey[key]
		if a == nil {
			l, err := listen(lc, u)
			if err != nil {
				return addrs, fmt.Errorf("listening for clients on %s: %w", u, err)
			}
			a = &clientAddr{root: l}
			byKey[key] = a
			addrs = append(addrs, a)
		}
		if secure(u) {
			a.secure = true
		} else {
			a.insecure = true
		}
	}
	for _, a := range addrs {
		tlsSource := a.root
		switch {
		case a.secure && a.insecure:
			a.demux = newDemux(a.root, !split, true)
			tlsSource = a.demux.tls
		case a.insecure && !split:
			a.demux = newDemux(a.root, true, false)
		}
		if a.secure {
			var divert func(*tls.ClientHelloInfo) bool
			if divertGRPC && !split {
				divert = grpcClientHello
			}
			if a.tls, err = wrapTLSDivert(tlsSource, "https://", info, false, "rejected connection on client endpoint", divert, logger); err != nil {
				return addrs, fmt.Errorf("listening for clients on %s: %w", a.root.Addr(), err)
			}
			if divert != nil {
				a.grpcTLS = a.tls.(*tlsutil.Listener).Diverted()
			}
		}
	}
	return addrs, nil
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/cairn-db/cairn/internal/grpcproxy"
	"github.com/cairn-db/cairn/internal/tlsutil"
)

// grpcProxyFlags are `grpc-proxy start`'s flags, etcd 3.7.3's.
type grpcProxyFlags struct {
	listenAddr, metricsAddr            string
	discoverySRV, discoverySRVName     string
	insecureDiscovery                  bool
	endpoints                          []string
	autoSyncInterval                   time.Duration
	dialKeepAliveTime, dialKeepAliveTO time.Duration
	permitWithoutStream                bool
	advertiseClientURL                 string
	resolverPrefix                     string
	resolverTTL                        int
	namespace                          string
	enablePprof                        bool
	dataDir                            string
	maxSendBytes, maxRecvBytes         int
	keepAliveMinTime                   time.Duration
	keepAliveInterval, keepAliveTO     time.Duration
	// TLS to the cluster.
	cert, key, cacert     string
	insecureSkipTLSVerify bool
	// TLS for the proxy's clients.
	certFile, keyFile, trustedCAFile string
	cipherSuites                     []string
	autoTLS                          bool
	crlFile                          string
	selfSignedCertValidity           uint
	tlsMinVersion, tlsMaxVersion     string
	// Experimental and debugging.
	ordering, grpcLogging bool
	leasingPrefix         string
	debug                 bool
	maxConcurrentStreams  uint32
}

// runGRPCProxy is `cairn grpc-proxy ...` (etcd's `etcd grpc-proxy`):
// `start` serves etcd's gRPC API by forwarding every call to the cluster
// (package grpcproxy) until SIGINT or SIGTERM. It returns the exit
// status: 1 for a bad flag or a refused configuration, as etcd's.
func runGRPCProxy(argv0 string, args []string, stdout, stderr io.Writer) int {
	var f grpcProxyFlags
	status := 0
	start := &cobra.Command{
		Use:   "start",
		Short: "start the grpc proxy",
		Run: func(*cobra.Command, []string) {
			status = startGRPCProxy(f, stdout, stderr)
		},
	}
	fs := start.Flags()
	fs.StringVar(&f.listenAddr, "listen-addr", "127.0.0.1:23790", "listen address")
	fs.StringVar(&f.discoverySRV, "discovery-srv", "", "domain name to query for SRV records describing cluster endpoints")
	fs.StringVar(&f.discoverySRVName, "discovery-srv-name", "", "service name to query when using DNS discovery")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "listen for endpoint /metrics requests on an additional interface")
	fs.BoolVar(&f.insecureDiscovery, "insecure-discovery", false, "accept insecure SRV records")
	fs.StringSliceVar(&f.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "comma separated etcd cluster endpoints")
	fs.DurationVar(&f.autoSyncInterval, "endpoints-auto-sync-interval", 0, "etcd endpoints auto sync interval (disabled by default)")
	fs.DurationVar(&f.dialKeepAliveTime, "dial-keepalive-time", 0, "keepalive time for client(grpc-proxy) connections (default 0, disable).")
	fs.DurationVar(&f.dialKeepAliveTO, "dial-keepalive-timeout", 20*time.Second, "keepalive timeout for client(grpc-proxy) connections (default 20s).")
	fs.BoolVar(&f.permitWithoutStream, "permit-without-stream", false, "Enable client(grpc-proxy) to send keepalive pings even with no active RPCs.")
	fs.StringVar(&f.advertiseClientURL, "advertise-client-url", "127.0.0.1:23790", "advertise address to register (must be reachable by client)")
	fs.StringVar(&f.resolverPrefix, "resolver-prefix", "", "prefix to use for registering proxy (must be shared with other grpc-proxy members)")
	fs.IntVar(&f.resolverTTL, "resolver-ttl", 0, "specify TTL, in seconds, when registering proxy endpoints")
	fs.StringVar(&f.namespace, "namespace", "", "string to prefix to all keys for namespacing requests")
	fs.BoolVar(&f.enablePprof, "enable-pprof", false, `Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"`)
	fs.StringVar(&f.dataDir, "data-dir", "default.proxy", "Data directory for persistent data")
	fs.IntVar(&f.maxSendBytes, "max-send-bytes", 1.5*1024*1024, "message send limits in bytes (default value is 1.5 MiB)")
	fs.IntVar(&f.maxRecvBytes, "max-recv-bytes", math.MaxInt32, "message receive limits in bytes (default value is math.MaxInt32)")
	fs.DurationVar(&f.keepAliveMinTime, "grpc-keepalive-min-time", 5*time.Second, "Minimum interval duration that a client should wait before pinging proxy.")
	fs.DurationVar(&f.keepAliveInterval, "grpc-keepalive-interval", 2*time.Hour, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	fs.DurationVar(&f.keepAliveTO, "grpc-keepalive-timeout", 20*time.Second, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	fs.StringVar(&f.cert, "cert", "", "identify secure connections with etcd servers using this TLS certificate file")
	fs.StringVar(&f.key, "key", "", "identify secure connections with etcd servers using this TLS key file")
	fs.StringVar(&f.cacert, "cacert", "", "verify certificates of TLS-enabled secure etcd servers using this CA bundle")
	fs.BoolVar(&f.insecureSkipTLSVerify, "insecure-skip-tls-verify", false, "skip authentication of etcd server TLS certificates (CAUTION: this option should be enabled only for testing purposes)")
	fs.StringVar(&f.certFile, "cert-file", "", "identify secure connections to the proxy using this TLS certificate file")
	fs.StringVar(&f.keyFile, "key-file", "", "identify secure connections to the proxy using this TLS key file")
	fs.StringVar(&f.trustedCAFile, "trusted-ca-file", "", "verify certificates of TLS-enabled secure proxy using this CA bundle")
	fs.StringSliceVar(&f.cipherSuites, "listen-cipher-suites", nil, "Comma-separated list of supported TLS cipher suites between client/proxy (empty will be auto-populated by Go).")
	fs.BoolVar(&f.autoTLS, "auto-tls", false, "proxy TLS using generated certificates")
	fs.StringVar(&f.crlFile, "client-crl-file", "", "proxy client certificate revocation list file.")
	fs.UintVar(&f.selfSignedCertValidity, "self-signed-cert-validity", 1, "The validity period of the proxy certificates, unit is year")
	fs.StringVar(&f.tlsMinVersion, "tls-min-version", "TLS1.2", "Minimum TLS version supported by grpc proxy. Possible values: TLS1.2, TLS1.3.")
	fs.StringVar(&f.tlsMaxVersion, "tls-max-version", "", "Maximum TLS version supported by grpc proxy. Possible values: TLS1.2, TLS1.3 (empty defers to Go).")
	fs.BoolVar(&f.ordering, "experimental-serializable-ordering", false, "Ensure serializable reads have monotonically increasing store revisions across endpoints.")
	fs.StringVar(&f.leasingPrefix, "experimental-leasing-prefix", "", "leasing metadata prefix for disconnected linearized reads.")
	fs.BoolVar(&f.grpcLogging, "experimental-enable-grpc-logging", false, "logging all grpc requests and responses")
	fs.BoolVar(&f.debug, "debug", false, "Enable debug-level logging for grpc-proxy.")
	fs.Uint32Var(&f.maxConcurrentStreams, "max-concurrent-streams", math.MaxUint32, "Maximum concurrent streams that each client can open at a time.")
	if !runStart(argv0, "grpc-proxy", "grpc-proxy related command", start, args, stdout, stderr) {
		return 1
	}
	return status
}

// check refuses what etcd's proxy refuses, in its words, and what Cairn's
// does not do (README: grpc-proxy).
func (f grpcProxyFlags) check() error {
	switch {
	case f.resolverPrefix != "" && f.resolverTTL < 1:
		return fmt.Errorf("invalid resolver-ttl %d", f.resolverTTL)
	case f.resolverPrefix == "" && f.resolverTTL > 0:
		return fmt.Errorf("invalid resolver-prefix %q", f.resolverPrefix)
	case f.resolverPrefix != "" && f.advertiseClientURL == "":
		return fmt.Errorf("invalid advertise-client-url %q", f.advertiseClientURL)
	case f.autoTLS && f.selfSignedCertValidity == 0:
		return errors.New("selfSignedCertValidity is invalid,it should be greater than 0")
	}
	minV, err := tlsutil.Version(f.tlsMinVersion)
	if err != nil {
		return fmt.Errorf("tls-min-version is invalid: %w", err)
	}
	maxV, err := tlsutil.Version(f.tlsMaxVersion)
	if err != nil {
		return fmt.Errorf("tls-max-version is invalid: %w", err)
	}
	if err := tlsutil.CheckVersions(minV, maxV, len(f.cipherSuites)); err != nil {
		return err
	}
	for _, nb := range []struct {
		set  bool
		flag string
	}{
		{f.discoverySRV != "", "--discovery-srv"},
		{f.namespace != "", "--namespace"},
		{f.leasingPrefix != "", "--experimental-leasing-prefix"},
		{f.ordering, "--experimental-serializable-ordering"},
		{f.grpcLogging, "--experimental-enable-grpc-logging"},
	} {
		if nb.set {
			return fmt.Errorf("%s is not supported by Cairn's grpc-proxy (see the README's grpc-proxy section)", nb.flag)
		}
	}
	return nil
}

// listenTLS is the TLS the proxy serves its clients with (Empty: none).
// As etcd's: any of --cert-file, --key-file and --trusted-ca-file asks
// for TLS with those files (a CA without a certificate is refused, not
// served in the clear), and --auto-tls applies only without them. A
// revocation list without TLS is refused too (etcd ignores it).
func (f grpcProxyFlags) listenTLS(lg *zap.Logger) (tlsutil.Info, error) {
	info := tlsutil.Info{CertFile: f.certFile, KeyFile: f.keyFile, TrustedCAFile: f.trustedCAFile, CRLFile: f.crlFile, Logger: lg}
	switch {
	case f.certFile != "" || f.keyFile != "" || f.trustedCAFile != "":
		if f.certFile == "" || f.keyFile == "" {
			return info, fmt.Errorf("cannot listen on TLS for %s: KeyFile and CertFile are not presented", f.listenAddr)
		}
	case f.autoTLS:
		var err error
		if info, err = tlsutil.SelfCert(lg, filepath.Join(f.dataDir, "fixtures", "proxy"), []string{f.listenAddr}, f.selfSignedCertValidity); err != nil {
			return info, err
		}
		info.CRLFile, info.Logger = f.crlFile, lg
	case f.crlFile != "":
		return info, errors.New("--client-crl-file needs TLS: --cert-file and --key-file, or --auto-tls")
	default:
		return info, nil
	}
	var err error
	if len(f.cipherSuites) > 0 {
		if info.CipherSuites, err = tlsutil.CipherSuites(f.cipherSuites); err != nil {
			return info, err
		}
	}
	info.MinVersion, _ = tlsutil.Version(f.tlsMinVersion) // checked
	info.MaxVersion, _ = tlsutil.Version(f.tlsMaxVersion)
	return info, nil
}

// clusterClient is the client the proxy forwards through. As etcd's, its
// certificate (--cert) must have an empty common name: a member would
// take the name as the user of every forwarded call.
func (f grpcProxyFlags) clusterClient(lg *zap.Logger) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:            f.endpoints,
		DialTimeout:          5 * time.Second,
		MaxCallSendMsgSize:   f.maxSendBytes,
		MaxCallRecvMsgSize:   f.maxRecvBytes,
		DialKeepAliveTime:    f.dialKeepAliveTime,
		DialKeepAliveTimeout: f.dialKeepAliveTO,
		PermitWithoutStream:  f.permitWithoutStream,
		Logger:               lg.Named("client"),
	}
	if f.cacert != "" || f.cert != "" || f.key != "" || f.insecureSkipTLSVerify {
		info := tlsutil.Info{CertFile: f.cert, KeyFile: f.key, TrustedCAFile: f.cacert}
		if f.cert != "" {
			cn, err := tlsutil.CertCommonName(f.cert)
			if err != nil {
				return nil, err
			}
			if cn != "" {
				return nil, fmt.Errorf("cert has non empty Common Name (%s): %s", cn, f.cert)
			}
		}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, err
		}
		tc.InsecureSkipVerify = f.insecureSkipTLSVerify
		if f.insecureSkipTLSVerify {
			lg.Warn("--insecure-skip-tls-verify was given, this grpc proxy process skips authentication of etcd server TLS certificates. This option should be enabled only for testing purposes.")
		}
		cfg.TLS = tc
		lg.Info("gRPC proxy client TLS", zap.String("tls-info", info.String()))
	}
	return clientv3.New(cfg)
}

// startGRPCProxy serves until a signal or a listener fails; its log is
// etcd's default (JSON on stderr), a refused configuration is said on
// stderr, as etcd's proxy says it.
func startGRPCProxy(f grpcProxyFlags, stdout, stderr io.Writer) int {
	if err := f.check(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	level := "info"
	if f.debug {
		level = "debug"
	}
	lg, err := newLogger(logConfig{Logger: "zap", Outputs: []string{"default"}, Level: level, Format: "json"}, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer lg.Sync()
	info, err := f.listenTLS(lg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !info.Empty() {
		lg.Info("gRPC proxy server TLS", zap.String("tls-info", info.String()))
	}
	client, err := f.clusterClient(lg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer client.Close()

	ln, err := net.Listen("tcp", f.listenAddr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !info.Empty() {
		if ln, err = tlsutil.NewListener(ln, info, tlsutil.ListenerOptions{}); err != nil {
			lg.Error("failed to create TLS listener", zap.Error(err))
			return 1
		}
	}
	lg.Info("listening for gRPC proxy client requests", zap.String("address", f.listenAddr))
	d := newDemux(ln, true, false)
	defer d.Close()

	p := grpcproxy.New(grpcproxy.Config{Client: client, AdvertiseClientURL: f.advertiseClientURL,
		ResolverPrefix: f.resolverPrefix, MaxCallSendMsgSize: f.maxSendBytes, MaxCallRecvMsgSize: f.maxRecvBytes, Logger: lg})
	// As etcd's: no bound on a connection's streams (clientv3 sends every
	// call on one connection). --max-concurrent-streams is taken and, as
	// in etcd, bounds only HTTP/2 served by the HTTP server, which here
	// gets no HTTP/2 (the demux hands it to gRPC).
	opts := append(p.ServerOptions(), grpc.MaxConcurrentStreams(math.MaxUint32))
	if f.keepAliveMinTime > 0 {
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: f.keepAliveMinTime}))
	}
	if f.keepAliveInterval > 0 || f.keepAliveTO > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{Time: f.keepAliveInterval, Timeout: f.keepAliveTO}))
	}
	gs := grpc.NewServer(opts...)
	defer gs.Stop()
	if f.resolverPrefix != "" {
		p.Register(f.resolverTTL)
		p.WatchRegistered()
	}
	if f.autoSyncInterval > 0 {
		go syncEndpoints(client, f.autoSyncInterval, lg)
	}

	// The proxy's own client, for /proxy/health: through the proxy.
	var self *clientv3.Client
	if f.advertiseClientURL != "" {
		cfg := clientv3.Config{Endpoints: []string{f.advertiseClientURL}, DialTimeout: 5 * time.Second, Logger: lg.Named("client")}
		if !info.Empty() {
			if cfg.TLS, err = info.ClientConfig(); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
		}
		if self, err = clientv3.New(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer self.Close()
		lg.Info("create proxy client", zap.String("grpcProxyAdvertiseClientURL", f.advertiseClientURL))
	}
	hc, err := f.metricsClient()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	mux := proxyHTTPMux(client, self, hc, f.enablePprof, lg)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	defer hs.Close()

	errc := make(chan error, 4)
	go func() { errc <- gs.Serve(d.grpc) }()
	go func() { errc <- hs.Serve(d.http) }()
	go func() { errc <- d.serve() }()
	if f.metricsAddr != "" {
		ml, err := metricsListener(f.metricsAddr, info)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		lg.Info("gRPC proxy listening for metrics", zap.String("address", f.metricsAddr))
		ms := &http.Server{Handler: proxyHTTPMux(client, self, hc, false, lg), ReadHeaderTimeout: 10 * time.Second}
		defer ms.Close()
		go func() { errc <- ms.Serve(ml) }()
	}
	lg.Info("started gRPC proxy", zap.String("address", f.listenAddr))

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)
	select {
	case sig := <-sigc:
		lg.Info("received signal; shutting down", zap.String("signal", sig.String()))
		return 0
	case err := <-errc:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

// proxyHTTPMux is what the proxy serves over HTTP: /health (the
// cluster's), /proxy/health (its own), /metrics (the cluster's first
// endpoint's), /proxy/metrics (its own), and pprof if asked.
func proxyHTTPMux(c, self *clientv3.Client, hc *http.Client, enablePprof bool, lg *zap.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", http.NotFound)
	grpcproxy.HandleMetrics(mux, hc, c)
	grpcproxy.HandleHealth(mux, c, lg)
	mux.Handle("/proxy/metrics", promhttp.Handler())
	grpcproxy.HandleProxyHealth(mux, self, lg)
	if enablePprof {
		addPprof(mux)
		lg.Info("gRPC proxy enabled pprof", zap.String("path", "/debug/pprof"))
	}
	return mux
}

// metricsClient fetches the cluster's /metrics: with the cluster's TLS
// when --cert, --key and --cacert are all set, as etcd's proxy does.
func (f grpcProxyFlags) metricsClient() (*http.Client, error) {
	tr := &http.Transport{}
	switch {
	case f.cacert != "" && f.cert != "" && f.key != "":
		tc, err := tlsutil.Info{CertFile: f.cert, KeyFile: f.key, TrustedCAFile: f.cacert}.ClientConfig()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	case f.insecureSkipTLSVerify:
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// metricsListener listens on --metrics-addr, a URL: https:// serves with
// the proxy's own TLS.
func metricsListener(raw string, info tlsutil.Info) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("cannot parse %q", raw)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return l, nil
	}
	return tlsutil.NewListener(l, info, tlsutil.ListenerOptions{})
}

// syncEndpoints points the client at the cluster's members' client URLs
// every interval, as clientv3's AutoSyncInterval does, and says so when
// they change (etcd's proxy shows them in gRPC's log).
func syncEndpoints(c *clientv3.Client, every time.Duration, lg *zap.Logger) {
	for {
		select {
		case <-c.Ctx().Done():
			return
		case <-time.After(every):
		}
		ctx, cancel := context.WithTimeout(c.Ctx(), 5*time.Second)
		resp, err := c.MemberList(ctx)
		cancel()
		if err != nil {
			if c.Ctx().Err() == nil {
				lg.Info("Auto sync endpoints failed.", zap.Error(err))
			}
			continue
		}
		var eps []string
		for _, m := range resp.Members {
			if m.Name != "" && !m.IsLearner {
				eps = append(eps, m.ClientURLs...)
			}
		}
		if len(eps) == 0 || slices.Equal(eps, c.Endpoints()) {
			continue
		}
		c.SetEndpoints(eps...)
		lg.Info("set etcd endpoints by autoSync", zap.Strings("endpoints", eps))
	}
}

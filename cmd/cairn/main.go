// Command cairn runs a Cairn member: etcd's flags, etcd's API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/internal/discovery"
	"github.com/cairn-db/cairn/internal/gateway"
	"github.com/cairn-db/cairn/internal/gctune"
	"github.com/cairn-db/cairn/internal/h2grpc"
	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/server/v3rpc"
	"github.com/cairn-db/cairn/internal/tlsutil"
)

func main() {
	// The process's GOGC follows its live heap (see gctune), unless the
	// operator set one. main owns the tuner: os.Exit ends it.
	if gctune.Wanted(os.Environ()) {
		gctune.Start(gctune.DefaultHeadroomBytes, gcTuneEvery)
	}
	os.Exit(run(os.Args[0], os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// gcTuneEvery is how often the GC tuner looks at the live heap: a
// collection every few hundred milliseconds is what it prevents.
const gcTuneEvery = 250 * time.Millisecond

// run is cairn invoked as argv0 (whose base name "etcd" makes it speak as
// etcd) with args; it returns the exit status: 0, 1 for a configuration
// refused or a failed start, 2 for a usage error.
func run(argv0 string, args []string, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "gateway" {
		return runGateway(argv0, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "grpc-proxy" {
		return runGRPCProxy(argv0, args[1:], stdout, stderr)
	}
	c, err := parseConfig(programName(filepath.Base(argv0)), args, environ, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usage usageError
	if errors.As(err, &usage) {
		return 2 // the flag package has printed the error and the usage
	}
	if err == nil && c.version {
		fmt.Fprint(stdout, versionText())
		return 0
	}
	lc := logConfig{
		Logger:             c.Logger,
		Outputs:            c.LogOutputs,
		Level:              c.LogLevel,
		Format:             c.LogFormat,
		EnableRotation:     c.EnableLogRotation,
		RotationConfigJSON: c.LogRotationConfigJSON,
	}
	if err != nil {
		// As etcd: the configuration is refused in etcd's default logger
		// (JSON on stderr), after the warnings parsing gathered.
		lc = logConfig{Logger: "zap", Outputs: []string{"default"}, Level: "info", Format: "json"}
	}
	logger, lerr := newLogger(lc, stdout, stderr)
	if lerr != nil {
		// Logging flags that cannot be honoured are refused as any
		// other configuration: in etcd's default logger.
		logger, _ = newLogger(logConfig{Logger: "zap", Outputs: []string{"default"}, Level: "info", Format: "json"}, stdout, stderr)
		err = lerr
	}
	defer logger.Sync()
	for _, n := range c.notes {
		logger.Log(n.level, n.msg, n.fields...)
	}
	logger.Info("Running: ", zap.Strings("args", append([]string{argv0}, args...)))
	if err != nil {
		logger.Warn("failed to verify flags", zap.String("error", err.Error()))
		if errors.Is(err, errUnsetAdvertiseClientURLs) {
			logger.Warn("advertise client URLs are not set", zap.String("error", err.Error()))
		}
		return 1
	}
	setGRPCLogger(logger)
	if err := applyEffects(&c, logger); err != nil {
		reportExit(logger, stderr, err)
		return 1
	}
	if err := serve(c, logger); err != nil {
		reportExit(logger, stderr, err)
		return 1
	}
	return 0
}

// reportExit says, in one line on stderr, why cairn exits: a log line
// like every other once the logger runs, or a plain one if --log-level
// hides errors. The error goes in as a string: zap.Error would add an
// "errorVerbose" field, with a stack trace, for errors that format one
// (pebble's).
func reportExit(logger *zap.Logger, stderr io.Writer, err error) {
	if logger.Core().Enabled(zapcore.ErrorLevel) {
		logger.Error("cairn stopped", zap.String("error", err.Error()))
		return
	}
	fmt.Fprintf(stderr, "cairn: %v\n", err)
}

func serve(c config, logger *zap.Logger) error {
	retention, keepRevs, err := parseRetention(c.AutoCompactionMode, c.AutoCompactionRetention)
	if err != nil {
		return err
	}
	var compactionInterval time.Duration
	if c.AutoCompactionInterval != "" {
		compactionInterval, _ = time.ParseDuration(c.AutoCompactionInterval) // checked by validate
	}
	dcfg := discoveryConfig(c, logger)
	if c.InitialCluster == "" || dcfg != nil {
		// With discovery, as etcd: the member starts from its own entries
		// alone, and the discovery token serves as the cluster token, for
		// the member and cluster IDs.
		c.InitialCluster = defaultInitialCluster(c.Name, c.InitialAdvertisePeerURLs)
	}
	if dcfg != nil {
		c.InitialClusterToken = c.DiscoveryToken
	}
	if c.MemoryMlock {
		if err := mlockAll(); err != nil {
			return fmt.Errorf("--memory-mlock: %w", err)
		}
		logger.Info("locked the process's memory in RAM (--memory-mlock)")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tlsSet, err := setupTLS(c, logger)
	if err != nil {
		return err
	}
	scfg := serverConfig(c, retention, keepRevs, compactionInterval, logger, reg)
	scfg.PeerTLS = tlsSet.peerDial
	scfg.Discovery = dcfg
	scfg.PeerLocalAddr = peerLocalAddr(c, logger)
	logStarting(logger, scfg, c.ListenPeerURLs, c.ListenClientURLs, c.ListenMetricsURLs)
	// Listen before opening the member, as etcd: a port in use fails the
	// start before a first start registers with a discovery service, or
	// writes its WAL (connections wait in the listeners' backlogs).
	lc := listenConfig(c.SocketReusePort, c.SocketReuseAddress)
	var all []net.Listener
	closeAll := func() {
		for _, l := range all {
			l.Close()
		}
	}
	// listenAll listens on urls, https:// and unixs:// ones with TLS
	// from info.
	listenAll := func(what string, urls []string, info tlsutil.Info, checkSAN bool, refusedMsg string) ([]net.Listener, error) {
		var ls []net.Listener
		for _, u := range urls {
			l, err := listen(lc, u)
			if err == nil {
				l, err = wrapTLS(l, u, info, checkSAN, refusedMsg, logger)
			}
			if err != nil {
				return nil, fmt.Errorf("listening for %s on %s: %w", what, u, err)
			}
			ls = append(ls, l)
			all = append(all, l)
		}
		return ls, nil
	}
	peerLns, err := listenAll("peers", c.ListenPeerURLs, tlsSet.peer, true, "rejected connection on peer endpoint")
	var clientAddrs []*clientAddr
	var httpLns, metricsLns []net.Listener
	split := len(c.ListenClientHTTPURLs) > 0
	if err == nil {
		clientAddrs, err = listenClients(lc, c.ListenClientURLs, split, c.OwnGRPCServer, tlsSet.client, logger)
		for _, ca := range clientAddrs {
			all = append(all, ca.root)
		}
	}
	if err == nil {
		httpLns, err = listenAll("HTTP clients", c.ListenClientHTTPURLs, tlsSet.client, false, "rejected connection on client endpoint")
	}
	if err == nil {
		// As etcd's, an https:// metrics URL uses the client TLS and
		// checks the client's SANs.
		metricsLns, err = listenAll("metrics", c.ListenMetricsURLs, tlsSet.client, true, "rejected connection on client endpoint")
	}
	var gw *gateway.Gateway
	if err == nil && c.EnableGRPCGateway {
		gw, err = gateway.New(logger)
	}
	if err != nil {
		closeAll()
		return err
	}
	if gw != nil {
		defer gw.Close() // after clientGRPC.Stop
	}
	srv, err := server.New(scfg)
	if err != nil {
		closeAll()
		return err
	}
	if err := srv.Start(); err != nil {
		closeAll()
		srv.Stop() // closes the storage New opened
		return err
	}
	// The TLS listeners hand over connections whose handshake is done;
	// these credentials pass them (and plain ones) through, telling
	// handlers the TLS state.
	peerGRPC := grpc.NewServer(append(server.PeerServerOptions(), grpc.Creds(tlsutil.ServerCredentials()))...)
	srv.RegisterPeerService(peerGRPC)
	clientAPI := v3rpc.New(srv)
	clientGRPC := grpc.NewServer(append(clientAPI.ServerOptions(), grpc.Creds(tlsutil.ServerCredentials()))...)
	clientAPI.Register(clientGRPC)
	// connGRPC serves gRPC on whole connections: the cleartext client
	// URLs', the https:// ones' when they serve gRPC alone
	// (--listen-client-http-urls), and those of gRPC clients on the
	// https:// ones that serve HTTP too (clientAddr.grpcTLS). grpc-go's,
	// or by default (--own-grpc-server) h2grpc's.
	connGRPC := grpcServer(clientGRPC)
	if c.OwnGRPCServer {
		opts := clientAPI.OwnServerOptions()
		opts.Creds = tlsutil.ServerCredentials()
		own := h2grpc.NewServer(opts)
		clientAPI.Register(own)
		connGRPC = own
	}
	endpoints := v3rpc.HTTPHandler(srv, reg)
	dashboard := gw != nil && c.dashboardOn()
	handler := clientHTTPMux(endpoints, gw, c.EnablePprof, dashboard)
	access := accessConfig{cors: c.CORS, hosts: c.HostWhitelist, logger: logger}
	if gw != nil && c.ClientCertAuth {
		access.refuseGatewayCN = func() bool { return srv.Auth().Enabled() }
	}
	httpSrv := &http.Server{
		Handler:           newAccessController(access, handler),
		ReadHeaderTimeout: 10 * time.Second,
		HTTP2:             http2Config(c.MaxConcurrentStreams),
	}
	// tlsSrv serves the https:// client URLs, gRPC and HTTP alike (but
	// the connections of gRPC clients, with --own-grpc-server).
	tlsSrv := &http.Server{
		Handler:           newAccessController(access, grpcOrHTTP(clientGRPC, handler)),
		ReadHeaderTimeout: 10 * time.Second,
		HTTP2:             http2Config(c.MaxConcurrentStreams),
	}
	metricsSrv := &http.Server{Handler: metricsOnly(endpoints), ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	goServe := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	if gw != nil {
		// The gateway's in-memory connection; clientGRPC.Stop closes it.
		goServe(func() { clientGRPC.Serve(gw.Listener()) })
	}
	for _, l := range peerLns {
		goServe(func() { srv.ServePeers(l, peerGRPC) })
		logger.Info("serving peer traffic", zap.String("address", l.Addr().String()))
	}
	var demuxes []*demux
	for _, ca := range clientAddrs {
		if ca.demux != nil {
			d := ca.demux
			demuxes = append(demuxes, d)
			goServe(func() { d.serve() })
			goServe(func() { connGRPC.Serve(d.grpc) })
			if d.http != nil {
				goServe(func() { httpSrv.Serve(d.http) })
			}
		} else if ca.insecure && split {
			// --listen-client-http-urls takes HTTP off the client URLs.
			goServe(func() { connGRPC.Serve(ca.root) })
		}
		if ca.tls != nil {
			if split {
				goServe(func() { connGRPC.Serve(ca.tls) })
			} else {
				goServe(func() { tlsSrv.Serve(ca.tls) })
			}
		}
		if ca.grpcTLS != nil {
			goServe(func() { connGRPC.Serve(ca.grpcTLS) })
		}
		traffic := "grpc+http"
		if split {
			traffic = "grpc"
		}
		if ca.insecure {
			logServingClients(logger, false, traffic, ca.root)
		}
		if ca.tls != nil {
			logServingClients(logger, true, traffic, ca.root)
		}
	}
	for i, l := range httpLns {
		goServe(func() { httpSrv.Serve(l) })
		logServingClients(logger, secure(c.ListenClientHTTPURLs[i]), "http", l)
	}
	for _, l := range metricsLns {
		goServe(func() { metricsSrv.Serve(l) })
		logger.Info("serving metrics", zap.String("address", l.Addr().String()))
	}
	logNowServing(logger, srv, c.ListenPeerURLs, c.ListenClientURLs, c.ListenMetricsURLs)
	// etcd says it once per client listener (gRPC and HTTP ones alike).
	goServe(func() { logWhenReady(logger, srv, len(clientAddrs)+len(httpLns)) })

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)
	select {
	case sig := <-sigc:
		logger.Info("received signal; shutting down", zap.Stringer("signal", sig))
	case <-srv.Stopping():
	}
	logger.Info("closing etcd server", stopFields(srv.Config())...)
	defer logger.Info("closed etcd server", stopFields(srv.Config())...)
	clientGRPC.Stop()
	stopGRPC(connGRPC, srv.Config().RequestTimeout)
	clientAPI.Close()
	httpSrv.Close()
	tlsSrv.Close()
	metricsSrv.Close()
	for _, d := range demuxes {
		d.Close()
	}
	// As etcd's: the member stops (a leader hands its leadership over
	// first, which needs the peers' answers) before peer traffic does.
	srv.Stop()
	for _, l := range peerLns {
		logger.Info("stopping serving peer traffic", zap.String("address", l.Addr().String()))
	}
	closeAll()
	peerGRPC.Stop()
	for _, l := range peerLns {
		logger.Info("stopped serving peer traffic", zap.String("address", l.Addr().String()))
	}
	wg.Wait()
	if err := srv.Err(); !errors.Is(err, server.ErrMemberRemoved) {
		return err
	}
	// A member removed from its cluster exits 0, as etcd's: it did what
	// the cluster asked.
	return nil
}

// serverConfig maps the flags onto the server's configuration.
func serverConfig(c config, retention time.Duration, keepRevs int64, compactionInterval time.Duration,
	logger *zap.Logger, reg prometheus.Registerer) server.Config {
	return server.Config{
		Name:                              c.Name,
		DataDir:                           c.DataDir,
		AdvertiseClientURLs:               c.AdvertiseClientURLs,
		AdvertisePeerURLs:                 c.InitialAdvertisePeerURLs,
		InitialCluster:                    c.InitialCluster,
		InitialClusterState:               c.InitialClusterState,
		InitialClusterToken:               c.InitialClusterToken,
		HeartbeatInterval:                 time.Duration(c.HeartbeatIntervalMs) * time.Millisecond,
		ElectionTimeout:                   time.Duration(c.ElectionTimeoutMs) * time.Millisecond,
		SnapshotCount:                     c.SnapshotCount,
		SnapshotCatchUpEntries:            c.SnapshotCatchUpEntries,
		QuotaBackendBytes:                 c.QuotaBackendBytes,
		BootstrapDefragThresholdMegabytes: c.BootstrapDefragThresholdMegabytes,
		MaxRequestBytes:                   int(c.MaxRequestBytes),
		MaxTxnOps:                         int(c.MaxTxnOps),
		AuthToken:                         c.AuthToken,
		AuthTokenTTL:                      int64(c.AuthTokenTTL),
		BcryptCost:                        int(c.BcryptCost),
		ClientCertAuth:                    c.ClientCertAuth,
		AutoCompactionMode:                c.AutoCompactionMode,
		AutoCompactionRetention:           retention,
		AutoCompactionRetentionRevs:       keepRevs,
		AutoCompactionIntervalOverride:    compactionInterval,
		WatchProgressNotifyInterval:       c.WatchProgressNotifyInterval,
		LeaseCheckpointInterval:           c.LeaseCheckpointInterval,
		WALDir:                            c.WALDir,
		MaxSnapshots:                      int(c.MaxSnapshots),
		MaxWALs:                           int(c.MaxWALs),
		UnsafeNoFsync:                     c.UnsafeNoFsync,
		ForceNewCluster:                   c.ForceNewCluster,
		DisablePreVote:                    !c.PreVote,
		DisableInitialElectionTickAdvance: !c.InitialElectionTickAdvance,
		StrictReconfigCheck:               c.StrictReconfigCheck,
		MaxLearners:                       maxLearners(c.MaxLearners),
		MaxConcurrentStreams:              c.MaxConcurrentStreams,
		GRPCKeepAliveMinTime:              c.GRPCKeepAliveMinTime,
		GRPCKeepAliveInterval:             c.GRPCKeepAliveInterval,
		GRPCKeepAliveTimeout:              c.GRPCKeepAliveTimeout,
		Metrics:                           c.Metrics,
		WarningApplyDuration:              c.WarningApplyDuration,
		WarningUnaryRequestDuration:       c.WarningUnaryRequestDuration,
		InitialCorruptCheck:               gateOn(c, "InitialCorruptCheck"),
		CorruptCheckTime:                  c.CorruptCheckTime,
		CompactHashCheck:                  gateOn(c, "CompactHashCheck"),
		CompactHashCheckTime:              c.CompactHashCheckTime,
		Logger:                            logger,
		Registry:                          reg,
	}
}

// gateOn reports whether feature gate name is on.
func gateOn(c config, name string) bool {
	on, _ := c.FeatureGates.enabled(gateNamed(name))
	return on
}

// maxLearners maps --max-learners onto server.Config.MaxLearners, whose
// zero is the default: --max-learners=0 allows no learner.
func maxLearners(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// peerLocalAddr is the source address of the member's connections to its
// peers: with --feature-gates=SetMemberLocalAddr=true, as etcd, the host
// of the first --initial-advertise-peer-urls that is an IP address, not a
// loopback or unspecified one; nil (the kernel's choice) otherwise.
func peerLocalAddr(c config, logger *zap.Logger) net.IP {
	if !gateOn(c, "SetMemberLocalAddr") {
		return nil
	}
	logger.Info("searching for a suitable member local address in AdvertisePeerURLs",
		zap.Strings("advertise-peer-urls", c.InitialAdvertisePeerURLs))
	for _, raw := range c.InitialAdvertisePeerURLs {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(u.Hostname()); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			logger.Info("setting member local address", zap.String("LocalAddr", ip.String()))
			return ip
		}
	}
	logger.Warn("unable to set a member local address due to lack of suitable local addresses",
		zap.Strings("advertise-peer-urls", c.InitialAdvertisePeerURLs))
	return nil
}

// discoveryConfig is the v3 discovery service the --discovery-* flags
// (and discovery-config's keys in a config file) name; nil without
// --discovery-endpoints. --discovery-user may carry the password too, as
// "user:password", as its help says. The certificate files are read only
// if the member asks the service (a first start).
func discoveryConfig(c config, logger *zap.Logger) *discovery.Config {
	if len(c.DiscoveryEndpoints) == 0 {
		return nil
	}
	user, password := c.DiscoveryUser, c.DiscoveryPassword
	if password == "" {
		user, password, _ = strings.Cut(user, ":")
	}
	spec := clientv3.ConfigSpec{
		Endpoints:          c.DiscoveryEndpoints,
		DialTimeout:        c.DiscoveryDialTimeout,
		KeepAliveTime:      c.DiscoveryKeepAliveTime,
		KeepAliveTimeout:   c.DiscoveryKeepAliveTimeout,
		MaxCallSendMsgSize: c.DiscoveryFile.MaxRequestBytes,
		MaxCallRecvMsgSize: c.DiscoveryFile.MaxRecvBytes,
		Secure: &clientv3.SecureConfig{Cert: c.DiscoveryCert, Key: c.DiscoveryKey, Cacert: c.DiscoveryCACert,
			ServerName: c.DiscoveryFile.ServerName, InsecureTransport: c.DiscoveryInsecureTransport,
			InsecureSkipVerify: c.DiscoveryInsecureSkipTLSVerify},
		Auth: &clientv3.AuthConfig{Username: user, Password: password, Token: c.DiscoveryFile.Token},
	}
	return &discovery.Config{Token: c.DiscoveryToken, Client: spec, RequestTimeout: c.DiscoveryRequestTimeout, Logger: logger}
}

// defaultInitialCluster is etcd's: name=URL for each advertised peer URL.
func defaultInitialCluster(name string, peerURLs []string) string {
	var parts []string
	for _, u := range peerURLs {
		parts = append(parts, name+"="+u)
	}
	return strings.Join(parts, ",")
}

// grpcServer serves gRPC on a listener: grpc-go's server or h2grpc's.
type grpcServer interface {
	Serve(net.Listener) error
	Stop()
}

// stopGRPC stops s at shutdown. h2grpc's server first lets the unary
// calls in flight answer, for up to timeout (etcd's shutdown waits as
// long, its request timeout, in grpc.Server.GracefulStop), so that a
// write or a read under way when the member is told to stop gets its
// answer rather than a closed connection; streams (watches, lease
// keep-alives) end at once, where etcd's wait for them too. grpc-go's
// server (--own-grpc-server=false) stops at once, as before.
func stopGRPC(s grpcServer, timeout time.Duration) {
	if h, ok := s.(*h2grpc.Server); ok {
		h.GracefulStop(timeout)
		return
	}
	s.Stop()
}

// Command cairn runs a Cairn member: etcd's flags, etcd's API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/server/v3rpc"
)

// version is Cairn's own version; the etcd API version it implements is
// v3rpc.APIVersion.
const version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args []string, environ []string, stdout, stderr io.Writer) int {
	c, err := parseConfig(args, environ, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usage usageError
	if errors.As(err, &usage) {
		return 2 // the flag package has printed the error and the usage
	}
	if err != nil {
		fmt.Fprintf(stderr, "cairn: %v\n", err)
		return 1
	}
	if c.version {
		fmt.Fprintf(stdout, "cairn Version: %s\netcd API Version: %s\nGo Version: %s\nGo OS/Arch: %s/%s\n",
			version, v3rpc.APIVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	}
	logger, err := newLogger(logConfig{Logger: "zap", Outputs: []string{"default"}, Level: c.LogLevel, Format: "json"}, stdout, stderr)
	if err != nil {
		// As etcd: said by a default logger, since the configured one
		// cannot be built.
		lg, _ := newLogger(logConfig{Logger: "zap", Level: "info"}, stdout, stderr)
		logArgs(lg, args)
		lg.Warn("failed to verify flags", zap.Error(err))
		return 1
	}
	defer logger.Sync()
	setGRPCLogger(logger)
	logArgs(logger, args)
	logStartWarnings(logger, c.Name)
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
		if compactionInterval, err = time.ParseDuration(c.AutoCompactionInterval); err != nil || compactionInterval <= 0 {
			return fmt.Errorf("invalid --auto-compaction-interval %q", c.AutoCompactionInterval)
		}
	}
	progressInterval, err := c.watchProgressNotifyInterval()
	if err != nil {
		return err
	}
	if c.InitialCluster == "" {
		c.InitialCluster = defaultInitialCluster(c.Name, c.InitialAdvertisePeerURLs)
	}
	clientURLs, peerURLs := splitURLs(c.ListenClientURLs), splitURLs(c.ListenPeerURLs)
	if len(clientURLs) == 0 || len(peerURLs) == 0 {
		return errors.New("--listen-client-urls and --listen-peer-urls must not be empty")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	scfg := server.Config{
		Name:                           c.Name,
		DataDir:                        c.DataDir,
		AdvertiseClientURLs:            splitURLs(c.AdvertiseClientURLs),
		AdvertisePeerURLs:              splitURLs(c.InitialAdvertisePeerURLs),
		InitialCluster:                 c.InitialCluster,
		InitialClusterState:            c.InitialClusterState,
		InitialClusterToken:            c.InitialClusterToken,
		HeartbeatInterval:              time.Duration(c.HeartbeatIntervalMs) * time.Millisecond,
		ElectionTimeout:                time.Duration(c.ElectionTimeoutMs) * time.Millisecond,
		SnapshotCount:                  c.SnapshotCount,
		SnapshotCatchUpEntries:         c.SnapshotCatchUpEntries,
		QuotaBackendBytes:              c.QuotaBackendBytes,
		MaxRequestBytes:                int(c.MaxRequestBytes),
		MaxTxnOps:                      int(c.MaxTxnOps),
		AutoCompactionMode:             c.AutoCompactionMode,
		AutoCompactionRetention:        retention,
		AutoCompactionRetentionRevs:    keepRevs,
		AutoCompactionIntervalOverride: compactionInterval,
		WatchProgressNotifyInterval:    progressInterval,
		LeaseCheckpointInterval:        c.LeaseCheckpointInterval,
		Logger:                         logger,
		Registry:                       reg,
	}
	logStarting(logger, scfg, peerURLs, clientURLs)
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	// Listen before starting, so that a port in use fails the start.
	var peerLns, clientLns []net.Listener
	closeAll := func() {
		for _, l := range append(peerLns, clientLns...) {
			l.Close()
		}
	}
	for _, u := range peerURLs {
		l, err := listen(u)
		if err != nil {
			closeAll()
			srv.Stop()
			return fmt.Errorf("listening for peers on %s: %w", u, err)
		}
		peerLns = append(peerLns, l)
	}
	for _, u := range clientURLs {
		l, err := listen(u)
		if err != nil {
			closeAll()
			srv.Stop()
			return fmt.Errorf("listening for clients on %s: %w", u, err)
		}
		clientLns = append(clientLns, l)
	}
	if err := srv.Start(); err != nil {
		closeAll()
		srv.Stop() // closes the storage New opened
		return err
	}
	peerGRPC := grpc.NewServer(server.PeerServerOptions()...)
	srv.RegisterPeerService(peerGRPC)
	clientAPI := v3rpc.New(srv)
	clientGRPC := grpc.NewServer(clientAPI.ServerOptions()...)
	clientAPI.Register(clientGRPC)
	handler := v3rpc.HTTPHandler(srv, reg)
	if c.EnablePprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/", handler)
		handler = mux
	}
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	goServe := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	for _, l := range peerLns {
		goServe(func() { peerGRPC.Serve(l) })
		logger.Info("serving peer traffic", zap.String("address", l.Addr().String()))
	}
	var demuxes []*demux
	for _, l := range clientLns {
		d := newDemux(l)
		demuxes = append(demuxes, d)
		goServe(func() { d.serve() })
		goServe(func() { clientGRPC.Serve(d.grpc) })
		goServe(func() { httpSrv.Serve(d.http) })
		logger.Info("serving client traffic insecurely; this is strongly discouraged!",
			zap.String("traffic", "grpc+http"), zap.String("address", l.Addr().String()))
	}
	logNowServing(logger, srv, peerURLs, clientURLs)
	goServe(func() { logWhenReady(logger, srv, len(clientLns)) })

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
	clientAPI.Close()
	httpSrv.Close()
	for _, d := range demuxes {
		d.Close()
	}
	for _, l := range peerLns {
		logger.Info("stopping serving peer traffic", zap.String("address", l.Addr().String()))
	}
	peerGRPC.Stop()
	for _, l := range peerLns {
		logger.Info("stopped serving peer traffic", zap.String("address", l.Addr().String()))
	}
	srv.Stop()
	wg.Wait()
	return srv.Err()
}

func defaultInitialCluster(name, peerURLs string) string {
	var s string
	for i, u := range splitURLs(peerURLs) {
		if i > 0 {
			s += ","
		}
		s += name + "=" + u
	}
	return s
}

func listen(rawURL string) (net.Listener, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http":
	case "https", "unixs":
		return nil, fmt.Errorf("TLS (%s) is not supported yet", u.Scheme)
	case "unix":
		return net.Listen("unix", u.Host+u.Path)
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q", u.Scheme)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("URL %s has no port", rawURL)
	}
	return net.Listen("tcp", u.Host)
}

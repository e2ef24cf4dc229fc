package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/tcpproxy"
)

// gatewayFlags are `gateway start`'s flags, etcd's.
type gatewayFlags struct {
	listenAddr       string
	endpoints        []string
	discoverySRV     string
	discoverySRVName string
	insecureDisc     bool
	trustedCA        string
	retryDelay       time.Duration
}

// runGateway is `cairn gateway ...` (etcd's `etcd gateway`): `start` runs
// the TCP proxy (package tcpproxy) until SIGINT or SIGTERM. It returns the
// exit status: as etcd's, 1 for a bad flag (after cobra's error and usage)
// or a refused configuration.
func runGateway(argv0 string, args []string, stdout, stderr io.Writer) int {
	var f gatewayFlags
	status := 0
	start := &cobra.Command{
		Use:   "start",
		Short: "start the gateway",
		Run: func(*cobra.Command, []string) {
			status = startGateway(f, append([]string{argv0, "gateway"}, args...), stdout, stderr)
		},
	}
	fs := start.Flags()
	fs.StringVar(&f.listenAddr, "listen-addr", "127.0.0.1:23790", "listen address")
	fs.StringVar(&f.discoverySRV, "discovery-srv", "", "DNS domain used to bootstrap initial cluster")
	fs.StringVar(&f.discoverySRVName, "discovery-srv-name", "", "service name to query when using DNS discovery")
	fs.BoolVar(&f.insecureDisc, "insecure-discovery", false, "accept insecure SRV records")
	fs.StringVar(&f.trustedCA, "trusted-ca-file", "", "path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided.")
	fs.StringSliceVar(&f.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "comma separated etcd cluster endpoints")
	fs.DurationVar(&f.retryDelay, "retry-delay", time.Minute, "duration of delay before retrying failed endpoints")
	if !runStart(argv0, "gateway", "gateway related command", start, args, stdout, stderr) {
		return 1
	}
	return status
}

// runStart runs `<prog> name start ...` (etcd's gateway and grpc-proxy
// commands) with cobra, as etcd does: it reports false after a bad flag
// or subcommand, said on stderr with the usage.
func runStart(argv0, name, short string, start *cobra.Command, args []string, stdout, stderr io.Writer) bool {
	prog := programName(filepath.Base(argv0))
	root := &cobra.Command{Use: prog, Short: prog + " server"}
	sub := &cobra.Command{Use: name + " <subcommand>", Short: short}
	sub.AddCommand(start)
	root.AddCommand(sub)
	root.SetArgs(append([]string{name}, args...))
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprint(stderr, err)
		return false
	}
	return true
}

// startGateway checks f, listens and proxies; its log is etcd's default
// (JSON on stderr), and a refused configuration is said on stdout, as
// etcd's gateway says it.
func startGateway(f gatewayFlags, argv []string, stdout, stderr io.Writer) int {
	logger, err := newLogger(logConfig{Logger: "zap", Outputs: []string{"default"}, Level: "info", Format: "json"}, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer logger.Sync()
	logger.Info("Running: ", zap.Strings("args", argv))
	if f.discoverySRV != "" {
		logger.Error("cairn gateway stopped", zap.String("error", "--discovery-srv: "+srvMissing))
		return 1
	}
	endpoints, err := gatewayEndpoints(f.endpoints, f.listenAddr)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	if f.retryDelay == 0 {
		f.retryDelay = 5 * time.Minute // etcd's proxy's default for 0
	}
	ln, err := net.Listen("tcp", f.listenAddr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	p := &tcpproxy.Proxy{Endpoints: endpoints, RetryDelay: f.retryDelay, Logger: logger}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)
	select {
	case sig := <-sigc:
		logger.Info("received signal; shutting down", zap.String("signal", sig.String()))
		p.Close()
		<-served
		return 0
	case err := <-served:
		p.Close()
		if !errors.Is(err, tcpproxy.ErrClosed) {
			logger.Error("cairn gateway stopped", zap.String("error", err.Error()))
			return 1
		}
		return 0
	}
}

// gatewayEndpoints are --endpoints as host:port (a URL's scheme dropped:
// the gateway proxies TCP), refused, as etcd refuses them, when one does
// not parse, does not resolve, or resolves to the gateway's own listen
// address.
func gatewayEndpoints(raw []string, listenAddr string) ([]string, error) {
	lhost, lport, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return nil, fmt.Errorf("failed to validate listen address: %s", listenAddr)
	}
	laddrs, err := net.LookupHost(lhost)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve listen host: %s", lhost)
	}
	var eps []string
	for _, ep := range raw {
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			ep = u.Host
		}
		h, p, err := net.SplitHostPort(ep)
		if _, perr := strconv.ParseUint(p, 10, 16); err != nil || perr != nil {
			return nil, fmt.Errorf("error parsing endpoint %q", ep)
		}
		addrs, err := net.LookupHost(h)
		if err != nil {
			return nil, fmt.Errorf("failed to resolve endpoint host: %s", h)
		}
		if p == lport {
			for _, a := range addrs {
				if slices.Contains(laddrs, a) {
					return nil, fmt.Errorf("SRV or endpoint (%s:%s->%s:%s) should not resolve to the gateway listen addr (%s)", h, p, a, p, listenAddr)
				}
			}
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil, errors.New("no endpoints found")
	}
	return eps, nil
}

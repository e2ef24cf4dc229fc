package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/srv"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/internal/tool"
)

// globals are the flags every command shares, etcdctl's, and the streams.
type globals struct {
	// name is what the tool calls itself: etcdctl or cairnctl.
	name string

	endpoints        []string
	dialTimeout      time.Duration
	commandTimeout   time.Duration
	keepaliveTime    time.Duration
	keepaliveTimeout time.Duration
	user, password   string
	jwtToken         string
	cacert, cert     string
	key              string
	insecure         bool
	skipVerify       bool
	hex              bool
	writeOut         string
	debug            bool
	discoverySRV     string
	discoveryName    string
	discoveryInsec   bool
	discovered       bool // the DNS SRV lookup, if any, is done
	// quietRetries keeps the client's warnings about failed calls off
	// stderr, for commands that expect some calls to fail (get --ver's
	// reads of compacted revisions).
	quietRetries    bool
	maxRequestBytes int
	maxRecvBytes    int

	stdin          io.Reader
	stdout, stderr io.Writer
	// env is the process's environment, by name.
	env map[string]string
	// lines reads stdin a line at a time, for passwords.
	lines *bufio.Reader

	// capture, if set, takes the operation put, get or del would run:
	// txn parses its requests with those commands.
	capture func(clientv3.Op) error
}

func (g *globals) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&g.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "gRPC endpoints")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", 2*time.Second, "dial timeout for client connections")
	fs.DurationVar(&g.commandTimeout, "command-timeout", 5*time.Second, "timeout for short running command (excluding dial timeout)")
	fs.DurationVar(&g.keepaliveTime, "keepalive-time", 2*time.Second, "keepalive time for client connections")
	fs.DurationVar(&g.keepaliveTimeout, "keepalive-timeout", 6*time.Second, "keepalive timeout for client connections")
	fs.StringVar(&g.jwtToken, "auth-jwt-token", "", "JWT token used for authentication (if this option is used, --user and --password should not be set)")
	fs.StringVar(&g.user, "user", "", "username[:password] for authentication (prompt if password is not supplied)")
	fs.StringVar(&g.password, "password", "", "password for authentication (if this option is used, --user option shouldn't include password)")
	fs.StringVar(&g.cacert, "cacert", "", "verify certificates of TLS-enabled secure servers using this CA bundle")
	fs.StringVar(&g.cert, "cert", "", "identify secure client using this TLS certificate file")
	fs.StringVar(&g.key, "key", "", "identify secure client using this TLS key file")
	fs.BoolVar(&g.insecure, "insecure-transport", true, "disable transport security for client connections")
	fs.BoolVar(&g.skipVerify, "insecure-skip-tls-verify", false, "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)")
	fs.BoolVar(&g.hex, "hex", false, "print byte strings as hex encoded strings")
	fs.StringVarP(&g.writeOut, "write-out", "w", "simple", "set the output format (fields, json, protobuf, simple, table)")
	fs.StringVar(&g.writeOut, "output", "simple", "the same as --write-out (Cairn)")
	g.extension(fs, "output")
	fs.BoolVar(&g.debug, "debug", false, "enable client-side debug logging")
	fs.StringVarP(&g.discoverySRV, "discovery-srv", "d", "", "domain name to query for SRV records describing cluster endpoints")
	fs.StringVar(&g.discoveryName, "discovery-srv-name", "", "service name to query when using DNS discovery")
	fs.BoolVar(&g.discoveryInsec, "insecure-discovery", true, "accept insecure SRV records describing cluster endpoints")
	fs.IntVar(&g.maxRequestBytes, "max-request-bytes", 0, "client-side request send limit in bytes (if 0, it defaults to 2.0 MiB (2 * 1024 * 1024).)")
	fs.IntVar(&g.maxRecvBytes, "max-recv-bytes", 0, "client-side response receive limit in bytes (if 0, it defaults to \"math.MaxInt32\")")
}

// getenv is ETCDCTL_<name>, or CAIRNCTL_<name> when that is set.
func (g *globals) getenv(name string) string {
	value := ""
	for _, prefix := range envPrefixes {
		if v, ok := g.env[prefix+name]; ok {
			value = v
		}
	}
	return value
}

// extension marks flags of fs as Cairn's own: they work under either
// name, but are left out of the help text (and of the options command's
// list) under the name etcdctl, so that its help is etcdctl's, and no
// ETCDCTL_ variable sets them.
func (g *globals) extension(fs *pflag.FlagSet, names ...string) {
	for _, name := range names {
		if err := fs.SetAnnotation(name, extensionAnnotation, []string{"true"}); err != nil {
			panic(err) // a flag name misspelt here
		}
		if g.name == "etcdctl" {
			fs.Lookup(name).Hidden = true
		}
	}
}

// extensionAnnotation marks a flag as Cairn's own (see extension).
const extensionAnnotation = "cairn-extension"

// isExtension says whether f is one of Cairn's own flags.
func isExtension(f *pflag.Flag) bool {
	_, ok := f.Annotations[extensionAnnotation]
	return ok
}

// errLogged is an error already reported (as a log line): nothing more is
// printed for it.
var errLogged = errors.New("logged")

// envPrefixes: etcdctl's variables, then Cairn's names for the same.
var envPrefixes = []string{"ETCDCTL_", "CAIRNCTL_"}

// fromEnvironment sets flags not given on the command line from
// ETCDCTL_<FLAG> (or CAIRNCTL_<FLAG>); as etcdctl, a variable naming a
// flag also given on the command line is an error.
func (g *globals) fromEnvironment(cmd *cobra.Command) error {
	var err error
	// Variables read elsewhere, or by other etcd tools.
	used := map[string]bool{"ETCDCTL_API": true, "ETCDCTL_WATCH_KEY": true, "ETCDCTL_WATCH_RANGE_END": true,
		"CAIRNCTL_WATCH_KEY": true, "CAIRNCTL_WATCH_RANGE_END": true}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		for _, prefix := range envPrefixes {
			if isExtension(f) && prefix == "ETCDCTL_" {
				// Cairn's own flags are not etcdctl's variables.
				continue
			}
			name := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
			value, ok := g.env[name]
			if !ok {
				continue
			}
			used[name] = true
			if f.Changed {
				// etcdctl logs this, fatally, as a JSON line.
				g.logger().Error("conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))",
					zap.String("environment-variable", name))
				err = tool.ExitErr{Code: tool.ExitError, Err: errLogged}
				return
			}
			if serr := f.Value.Set(value); serr != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", value, name, serr)
				return
			}
			f.Changed = true
		}
	})
	if err != nil {
		return err
	}
	// As etcdctl, a variable naming no flag is reported, not fatal.
	var unknown []string
	for name, value := range g.env {
		if !used[name] && (strings.HasPrefix(name, "ETCDCTL_") || strings.HasPrefix(name, "CAIRNCTL_")) {
			unknown = append(unknown, name+"="+value)
		}
	}
	slices.Sort(unknown)
	for _, v := range unknown {
		g.logger().Warn("unrecognized environment variable", zap.String("environment-variable", v))
	}
	return nil
}

// client connects to the endpoints.
func (g *globals) client() (*clientv3.Client, error) {
	if err := g.discover(); err != nil {
		return nil, err
	}
	return g.clientTo(g.endpoints)
}

// clientTo connects to some of the endpoints (after discover), with every
// other setting of the command line.
func (g *globals) clientTo(endpoints []string) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          g.dialTimeout,
		DialKeepAliveTime:    g.keepaliveTime,
		DialKeepAliveTimeout: g.keepaliveTimeout,
		MaxCallSendMsgSize:   g.maxRequestBytes,
		MaxCallRecvMsgSize:   g.maxRecvBytes,
		Logger:               g.logger(),
	}
	if g.jwtToken != "" {
		// As etcdctl: a token is used instead of --user and --password.
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithPerRPCCredentials(jwtCredentials(g.jwtToken)))
	} else if g.user != "" {
		user, password, hasPassword := strings.Cut(g.user, ":")
		switch {
		case g.password != "":
			// As etcdctl: --password makes --user all name.
			user, password = g.user, g.password
		case !hasPassword:
			// As etcdctl, which asks with speakeasy: the prompt and,
			// once answered, a newline on stdout.
			fmt.Fprint(g.stdout, "Password: ")
			password = g.readSecret()
			fmt.Fprintln(g.stdout)
		}
		cfg.Username, cfg.Password = user, password
	}
	if g.cacert != "" || g.cert != "" || g.key != "" || g.skipVerify || !g.insecure {
		tlsCfg, err := g.tlsConfig()
		if err != nil {
			return nil, tool.ExitErr{Code: tool.ExitBadArgs, Err: err}
		}
		cfg.TLS = tlsCfg
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, tool.ExitErr{Code: tool.ExitBadConnection, Err: err}
	}
	return cli, nil
}

// jwtCredentials sends --auth-jwt-token with every request, where etcd's
// client sends the token it gets for a user and password.
type jwtCredentials string

func (c jwtCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{rpctypes.TokenFieldNameGRPC: string(c)}, nil
}

// RequireTransportSecurity is false: etcd accepts tokens over plain
// connections, as it does passwords.
func (jwtCredentials) RequireTransportSecurity() bool { return false }

// discover replaces --endpoints with what DNS SRV records under
// --discovery-srv name (_etcd-client-ssl._tcp.<domain> and
// _etcd-client._tcp.<domain>, with -<name> after "client" when
// --discovery-srv-name is set); plain-http ones are dropped, with a line
// on stderr, when --insecure-discovery=false.
//
// It runs once, when a command first needs the endpoints: commands that
// connect to nothing (version, completion) work without DNS, as in
// etcdctl.
func (g *globals) discover() error {
	if g.discoverySRV == "" || g.discovered {
		return nil
	}
	g.discovered = true
	found, err := srv.GetClient("etcd-client", g.discoverySRV, g.discoveryName)
	if err != nil {
		return err
	}
	var endpoints []string
	for _, ep := range found.Endpoints {
		if !g.discoveryInsec && strings.HasPrefix(ep, "http://") {
			fmt.Fprintf(g.stderr, "ignoring discovered insecure endpoint %q\n", ep)
			continue
		}
		endpoints = append(endpoints, ep)
	}
	if len(endpoints) > 0 {
		g.endpoints = endpoints
	}
	return nil
}

func (g *globals) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: g.skipVerify} //nolint:gosec // the user asked for it
	if g.discoverySRV != "" && !g.discoveryInsec {
		// With only secure discovery, the endpoints found are checked
		// against the domain's name (etcdctl's rule).
		c.ServerName = g.discoverySRV
	}
	if g.cacert != "" {
		pem, err := os.ReadFile(g.cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", g.cacert)
		}
		c.RootCAs = pool
	}
	if g.cert != "" || g.key != "" {
		pair, err := tls.LoadX509KeyPair(g.cert, g.key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// logger is the client's: its warnings go to stderr as etcdctl's do (JSON
// lines, in the etcd client's encoding: ISO 8601 UTC timestamps), and
// debug output with --debug.
func (g *globals) logger() *zap.Logger {
	cfg := logutil.DefaultZapLoggerConfig
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	if g.quietRetries {
		cfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	}
	if g.debug {
		cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	cfg.Sampling = nil
	lg, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg.Named("etcd-client")
}

// commandCtx bounds one request by --command-timeout.
func (g *globals) commandCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.commandTimeout)
}

// request runs fn with a client and a context bounded by
// --command-timeout.
func (g *globals) request(fn func(cli *clientv3.Client, ctx context.Context) error) error {
	return g.withClient(func(cli *clientv3.Client) error {
		ctx, cancel := g.commandCtx()
		defer cancel()
		return fn(cli, ctx)
	})
}

// withClient runs fn with a client, closed after.
func (g *globals) withClient(fn func(cli *clientv3.Client) error) error {
	cli, err := g.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	return fn(cli)
}

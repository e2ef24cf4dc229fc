package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"

	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/tlsutil"
)

// defaultConfig is etcd 3.7.3's defaults (embed.NewConfig), but for the
// data directory: "" stands for <name>.cairn.
func defaultConfig() config {
	return config{
		Name:                          "default",
		SnapshotCount:                 server.DefaultSnapshotCount,
		HeartbeatIntervalMs:           100,
		ElectionTimeoutMs:             1000,
		InitialElectionTickAdvance:    true,
		ListenPeerURLs:                []string{"http://localhost:2380"},
		ListenClientURLs:              []string{"http://localhost:2379"},
		MaxSnapshots:                  5,
		MaxWALs:                       5,
		MaxTxnOps:                     server.DefaultMaxTxnOps,
		MaxRequestBytes:               server.DefaultMaxRequestBytes,
		MaxConcurrentStreams:          math.MaxUint32,
		GRPCKeepAliveMinTime:          5 * time.Second,
		GRPCKeepAliveInterval:         2 * time.Hour,
		GRPCKeepAliveTimeout:          20 * time.Second,
		EnableGRPCGateway:             true,
		Dashboard:                     "auto",
		OwnGRPCServer:                 true,
		RaftReadTimeout:               5 * time.Second,
		RaftWriteTimeout:              5 * time.Second,
		InitialAdvertisePeerURLs:      []string{"http://localhost:2380"},
		InitialClusterState:           "new",
		InitialClusterToken:           "etcd-cluster",
		AdvertiseClientURLs:           []string{"http://localhost:2379"},
		DiscoveryDialTimeout:          2 * time.Second,
		DiscoveryRequestTimeout:       5 * time.Second,
		DiscoveryKeepAliveTime:        2 * time.Second,
		DiscoveryKeepAliveTimeout:     6 * time.Second,
		DiscoveryInsecureTransport:    true,
		DiscoveryFallback:             "exit",
		StrictReconfigCheck:           true,
		PreVote:                       true,
		AutoCompactionRetention:       "0",
		AutoCompactionMode:            "periodic",
		V2Deprecation:                 "write-only",
		SelfSignedCertValidity:        1,
		CORS:                          []string{"*"},
		HostWhitelist:                 []string{"*"},
		TLSMinVersion:                 "TLS1.2",
		AuthToken:                     "simple",
		BcryptCost:                    10,
		AuthTokenTTL:                  300,
		Metrics:                       "basic",
		Logger:                        "zap",
		LogOutputs:                    []string{"default"},
		LogLevel:                      "info",
		LogFormat:                     "json",
		LogRotationConfigJSON:         `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`,
		WarningUnaryRequestDuration:   300 * time.Millisecond,
		DistributedTracingAddress:     "localhost:4317",
		DistributedTracingServiceName: "etcd",
		CompactHashCheckTime:          time.Minute,
		CompactionBatchLimit:          1000,
		WatchProgressNotifyInterval:   server.DefaultWatchProgressNotifyInterval,
		WarningApplyDuration:          100 * time.Millisecond,
		MaxLearners:                   1,
		DowngradeCheckTime:            5 * time.Second,
		SnapshotCatchUpEntries:        raftnode.DefaultLimits.SnapshotCatchUpEntries,
		LeaseCheckpointInterval:       server.DefaultLeaseCheckpointInterval,
		given:                         map[string]bool{},
	}
}

// note is a log line owed from parsing, logged once the logger exists:
// parsing runs before it does, and every line after start must be a log
// line (a --log-format json reader takes stderr line by line).
type note struct {
	level  zapcore.Level
	msg    string
	fields []zap.Field
}

// ignoredEnv are ETCD_ variables etcd reads that are not flags.
var ignoredEnv = []string{"ETCD_VERIFY", "ETCD_UNSUPPORTED_ARCH"}

// envPrefixes are the environment variable prefixes read for flags,
// first match wins: Cairn's own, then etcd's, so that deployments written
// for etcd keep working.
var envPrefixes = []string{"CAIRN_", "ETCD_"}

func envName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet is the flag set over c's fields, and the table behind it.
func newFlagSet(c *config) (*flag.FlagSet, []flagDef) {
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	defs := c.flagDefs()
	for _, d := range defs {
		fs.Var(d.value, d.name, d.usage)
	}
	fs.StringVar(&c.configFile, "config-file", "", "Path to the server configuration file (YAML, etcd's keys).")
	fs.BoolVar(&c.version, "version", false, "Print the version and exit.")
	return fs, defs
}

// parseConfig reads the command line, then (as etcd) either the config
// file (--config-file, or CAIRN_CONFIG_FILE/ETCD_CONFIG_FILE), or the
// CAIRN_*/ETCD_* variables for flags not on the command line. A variable
// that shadows a flag given on the command line is an error; an unknown
// one is a warning (a note). --help prints etcd's help layout: the
// usage to stderr, the flags to stdout, and returns flag.ErrHelp. Errors
// wrapped in usageError exit 2, others 1.
func parseConfig(prog string, args, environ []string, stdout, stderr io.Writer) (config, error) {
	c := defaultConfig()
	fs, defs := newFlagSet(&c)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText(prog)) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, flagsText(defs))
			return c, err
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%q is not a valid flag", fs.Arg(0))
	}
	if c.version {
		return c, nil
	}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if c.configFile == "" {
		c.configFile = firstNonEmpty(env["CAIRN_CONFIG_FILE"], env["ETCD_CONFIG_FILE"])
	}
	if c.configFile != "" {
		path := c.configFile
		c = defaultConfig()
		_, defs = newFlagSet(&c)
		c.configFile = path
		if err := c.loadFile(path, defs); err != nil {
			return c, err
		}
		c.notes = append(c.notes, note{zapcore.InfoLevel,
			"loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
			[]zap.Field{zap.String("path", path)}})
	} else if err := c.loadEnv(fs, environ, env); err != nil {
		return c, err
	}
	for _, d := range defs {
		if c.given[d.name] && d.deprecated != "" {
			c.notes = append(c.notes, note{zapcore.WarnLevel, d.deprecated, nil})
		}
		if _, ok := d.value.(ignoredValue); ok && c.given[d.name] {
			c.notes = append(c.notes, note{zapcore.WarnLevel, "flag is no longer supported - ignoring",
				[]zap.Field{zap.String("flag-name", d.name)}})
		}
	}
	if c.given["max-snapshots"] {
		c.notes = append(c.notes, note{zapcore.WarnLevel, "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.", nil})
	}
	c.legacy()
	if err := c.validate(); err != nil {
		return c, err
	}
	// etcd's own warnings about the configuration (embed.Config.Validate).
	if len(c.ListenClientHTTPURLs) == 0 {
		c.notes = append(c.notes, note{zapcore.WarnLevel, "Running http and grpc server on single port. This is not recommended for production.", nil})
	}
	if c.Name == "default" {
		c.notes = append(c.notes, note{zapcore.WarnLevel, "it isn't recommended to use default name, please set a value for --name. " +
			"Note that etcd might run into issue when multiple members have the same default name", []zap.Field{zap.String("name", c.Name)}})
	}
	return c, nil
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// loadEnv sets, from CAIRN_<FLAG> or else ETCD_<FLAG>, the flags the
// command line left alone.
func (c *config) loadEnv(fs *flag.FlagSet, environ []string, env map[string]string) error {
	onCommandLine := maps.Clone(c.given)
	known := map[string]string{} // variable -> flag
	used := map[string]bool{}    // variables read
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		for _, p := range envPrefixes {
			known[envName(p, f.Name)] = f.Name
		}
		// version and config-file are read on their own.
		if err != nil || f.Name == "version" || f.Name == "config-file" || onCommandLine[f.Name] {
			return
		}
		for _, p := range envPrefixes {
			key := envName(p, f.Name)
			val := env[key]
			if val == "" {
				continue
			}
			used[key] = true
			if serr := fs.Set(f.Name, val); serr != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", val, key, serr)
				return
			}
			c.given[f.Name] = true
			c.notes = append(c.notes, note{zapcore.InfoLevel, "recognized and used environment variable",
				[]zap.Field{zap.String("variable-name", key), zap.String("variable-value", val)}})
			return // CAIRN_ first
		}
	})
	if err != nil {
		return err
	}
	for _, kv := range environ {
		key, val, _ := strings.Cut(kv, "=")
		if used[key] || !strings.HasPrefix(key, "CAIRN_") && !strings.HasPrefix(key, "ETCD_") || slices.Contains(ignoredEnv, key) {
			continue
		}
		name, ok := known[key]
		switch {
		case !ok:
			c.notes = append(c.notes, note{zapcore.WarnLevel, "unrecognized environment variable",
				[]zap.Field{zap.String("environment-variable", kv)}})
		case name == "version" && val != "":
			c.notes = append(c.notes, note{zapcore.WarnLevel, "cannot set special environment variable",
				[]zap.Field{zap.String("key", key), zap.String("value", val)}})
		case onCommandLine[name]:
			return fmt.Errorf("conflicting environment variable %s is shadowed by the command-line flag --%s "+
				"(unset the variable or drop the flag)", key, name)
		}
	}
	return nil
}

// loadFile reads etcd's YAML config file: etcd's keys (the flag names,
// with TLS under client-transport-security and peer-transport-security,
// discovery under discovery-config, socket options under socket-options),
// durations as integer nanoseconds, lists as YAML lists or comma strings.
// Unknown keys are ignored, as etcd ignores them.
func (c *config) loadFile(path string, defs []flagDef) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read config file: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for _, d := range defs {
		key := d.fileKey
		switch key {
		case "-":
			continue
		case "":
			key = d.name
		}
		v, ok := lookupPath(doc, key)
		if !ok || v == nil {
			continue
		}
		s, err := fileValue(d.value, v)
		if err == nil {
			err = d.value.Set(s)
		}
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
		c.given[d.name] = true
	}
	return c.DiscoveryFile.load(doc, path)
}

// discoveryFileKeys are the discovery client's settings that etcd's config
// file has, under discovery-config.client, and its flags have not.
type discoveryFileKeys struct {
	ServerName                    string // secure.server-name: the name checked in the service's certificate
	Token                         string // auth.token: a token to sign requests with instead of a user
	MaxRequestBytes, MaxRecvBytes int    // max-request-bytes, max-recv-bytes: the client's message limits
}

func (k *discoveryFileKeys) load(doc map[string]any, path string) error {
	const client = "discovery-config.client."
	for key, dst := range map[string]*string{"secure.server-name": &k.ServerName, "auth.token": &k.Token} {
		if v, ok := lookupPath(doc, client+key); ok && v != nil {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("config file %s: %s: not a string", path, client+key)
			}
			*dst = s
		}
	}
	for key, dst := range map[string]*int{"max-request-bytes": &k.MaxRequestBytes, "max-recv-bytes": &k.MaxRecvBytes} {
		if v, ok := lookupPath(doc, client+key); ok && v != nil {
			n, ok := v.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil || i < 0 || i > math.MaxInt32 {
				return fmt.Errorf("config file %s: %s: not a byte count: %v", path, client+key, v)
			}
			*dst = int(i)
		}
	}
	return nil
}

// lookupPath finds a dotted key ("a.b.c") in nested maps.
func lookupPath(doc map[string]any, key string) (any, bool) {
	var cur any = doc
	for part := range strings.SplitSeq(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// fileValue turns a config-file value into the string the flag's Set
// takes, checking its YAML type as etcd's (typed) unmarshalling does.
func fileValue(fv flag.Value, v any) (string, error) {
	switch fv.(type) {
	case boolValue:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
		return "", fmt.Errorf("want true or false, not %v", v)
	case durationValue:
		n, ok := v.(json.Number)
		if !ok {
			return "", fmt.Errorf("want a duration in integer nanoseconds, not %q", fmt.Sprint(v))
		}
		ns, err := n.Int64()
		if err != nil {
			return "", fmt.Errorf("want a duration in integer nanoseconds, not %v", v)
		}
		return time.Duration(ns).String(), nil
	case uintValue[uint], uintValue[uint32], uintValue[uint64], intValue[int], intValue[int64]:
		n, ok := v.(json.Number)
		if !ok {
			return "", fmt.Errorf("want a number, not %q", fmt.Sprint(v))
		}
		return n.String(), nil
	case listValue, urlsValue, endpointsValue:
		if list, ok := v.([]any); ok {
			var ss []string
			for _, e := range list {
				s, ok := e.(string)
				if !ok {
					return "", fmt.Errorf("want a list of strings, not %v", v)
				}
				ss = append(ss, s)
			}
			return strings.Join(ss, ","), nil
		}
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, not %v", v)
	}
	return s, nil
}

// legacy folds etcd 3.5/3.6 flags into their 3.7 forms: the old name
// counts only when the new one is left at its default, as in etcd 3.6.
func (c *config) legacy() {
	if c.ExperimentalWatchProgressNotifyInterval != 0 && !c.given["watch-progress-notify-interval"] {
		c.WatchProgressNotifyInterval = c.ExperimentalWatchProgressNotifyInterval
	}
	if c.ExperimentalInitialCorruptCheck {
		if _, ok := c.FeatureGates.explicit["InitialCorruptCheck"]; !ok {
			c.FeatureGates.Set("InitialCorruptCheck=true")
		}
	}
	if c.ExperimentalCorruptCheckTime != 0 && !c.given["corrupt-check-time"] {
		c.CorruptCheckTime = c.ExperimentalCorruptCheckTime
	}
	if c.ExperimentalCompactHashCheckEnabled {
		if _, ok := c.FeatureGates.explicit["CompactHashCheck"]; !ok {
			c.FeatureGates.Set("CompactHashCheck=true")
		}
	}
	if c.ExperimentalCompactHashCheckTime != 0 && !c.given["compact-hash-check-time"] {
		c.CompactHashCheckTime = c.ExperimentalCompactHashCheckTime
	}
}

// errUnsetAdvertiseClientURLs is etcd's ErrUnsetAdvertiseClientURLsFlag.
var errUnsetAdvertiseClientURLs = errors.New("--advertise-client-urls is required when --listen-client-urls is set explicitly")

// validate checks what etcd's Validate checks before anything starts
// (errors exit 1).
func (c *config) validate() error {
	if c.given["listen-client-urls"] && !c.given["advertise-client-urls"] && c.configFile == "" {
		return errUnsetAdvertiseClientURLs
	}
	if len(c.ListenClientURLs) == 0 || len(c.ListenPeerURLs) == 0 {
		return errors.New("--listen-client-urls and --listen-peer-urls must not be empty")
	}
	if c.Dashboard != "auto" && c.Dashboard != "on" && c.Dashboard != "off" {
		return fmt.Errorf("--dashboard must be 'auto', 'on' or 'off', not %q", c.Dashboard)
	}
	if c.DiscoveryFallback == "proxy" {
		return errors.New(`v2 proxy is deprecated, and --discovery-fallback can't be configured as "proxy"`)
	}
	bootstraps := 0
	for _, set := range []bool{c.InitialCluster != "" && c.given["initial-cluster"], c.DiscoverySRV != "", len(c.DiscoveryEndpoints) > 0} {
		if set {
			bootstraps++
		}
	}
	if bootstraps > 1 {
		return errors.New(`multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery-endpoints" or "discovery-srv"`)
	}
	if (c.DiscoveryToken != "") != (len(c.DiscoveryEndpoints) > 0) {
		return errors.New("both --discovery-token and --discovery-endpoints must be set")
	}
	if slices.Contains(c.DiscoveryEndpoints, "") {
		return errors.New("--discovery-endpoints must not contain empty endpoints")
	}
	if c.HeartbeatIntervalMs == 0 {
		return fmt.Errorf("--heartbeat-interval must be >0 (set to %dms)", c.HeartbeatIntervalMs)
	}
	if c.ElectionTimeoutMs == 0 {
		return fmt.Errorf("--election-timeout must be >0 (set to %dms)", c.ElectionTimeoutMs)
	}
	if 5*c.HeartbeatIntervalMs > c.ElectionTimeoutMs {
		return fmt.Errorf("--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]", c.ElectionTimeoutMs, c.HeartbeatIntervalMs)
	}
	if c.ElectionTimeoutMs > 50000 {
		return fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than 50000ms", c.ElectionTimeoutMs)
	}
	if c.CompactHashCheckTime <= 0 {
		return fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", c.CompactHashCheckTime)
	}
	if on, _ := c.FeatureGates.enabled(gateNamed("LeaseCheckpointPersist")); on {
		if on, _ := c.FeatureGates.enabled(gateNamed("LeaseCheckpoint")); !on {
			return errors.New("enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint")
		}
	}
	switch c.AutoCompactionMode {
	case "periodic", "revision":
	case "":
		return errors.New("undefined auto-compaction-mode")
	default:
		return fmt.Errorf("unknown auto-compaction-mode %q", c.AutoCompactionMode)
	}
	minV, err := tlsutil.Version(c.TLSMinVersion)
	if err != nil {
		return err
	}
	maxV, err := tlsutil.Version(c.TLSMaxVersion)
	if err != nil {
		return err
	}
	if err := tlsutil.CheckVersions(minV, maxV, len(c.CipherSuites)); err != nil {
		return err
	}
	if c.EnableDistributedTracing && (c.DistributedTracingSamplingRate < 0 || c.DistributedTracingSamplingRate > 1000000) {
		return errors.New("distributed tracing configurition is not valid: (tracing sampling rate must be between 0 and 1000000)")
	}
	if c.WatchProgressNotifyInterval <= 0 {
		return fmt.Errorf("--watch-progress-notify-interval must be positive, not %v", c.WatchProgressNotifyInterval)
	}
	if c.AutoCompactionInterval != "" {
		if d, err := time.ParseDuration(c.AutoCompactionInterval); err != nil || d <= 0 {
			return fmt.Errorf("invalid --auto-compaction-interval %q", c.AutoCompactionInterval)
		}
	}
	if _, _, err := parseRetention(c.AutoCompactionMode, c.AutoCompactionRetention); err != nil {
		return err
	}
	return nil
}

// usageError is a command-line error (exit status 2, as etcd).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseRetention reads --auto-compaction-retention as etcd does: in
// periodic mode a duration ("1h", "30m") or a bare number of hours; in
// revision mode a revision count.
func parseRetention(mode, s string) (time.Duration, int64, error) {
	if s == "" {
		s = "0"
	}
	if mode == "revision" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("invalid auto-compaction-retention %q for revision mode", s)
		}
		return 0, n, nil
	}
	if h, err := strconv.ParseInt(s, 10, 64); err == nil {
		if h < 0 {
			return 0, 0, fmt.Errorf("invalid auto-compaction-retention %q", s)
		}
		return time.Duration(h) * time.Hour, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, 0, fmt.Errorf("invalid auto-compaction-retention %q", s)
	}
	return d, 0, nil
}

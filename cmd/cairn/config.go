package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/server"
)

// config holds every flag, under etcd's names and defaults.
type config struct {
	Name                     string `json:"name"`
	DataDir                  string `json:"data-dir"`
	ListenClientURLs         string `json:"listen-client-urls"`
	AdvertiseClientURLs      string `json:"advertise-client-urls"`
	ListenPeerURLs           string `json:"listen-peer-urls"`
	InitialAdvertisePeerURLs string `json:"initial-advertise-peer-urls"`
	InitialCluster           string `json:"initial-cluster"`
	InitialClusterState      string `json:"initial-cluster-state"`
	InitialClusterToken      string `json:"initial-cluster-token"`
	HeartbeatIntervalMs      uint   `json:"heartbeat-interval"`
	ElectionTimeoutMs        uint   `json:"election-timeout"`
	SnapshotCount            uint64 `json:"snapshot-count"`
	SnapshotCatchUpEntries   uint64 `json:"snapshot-catchup-entries"`
	QuotaBackendBytes        int64  `json:"quota-backend-bytes"`
	MaxRequestBytes          uint   `json:"max-request-bytes"`
	MaxTxnOps                uint   `json:"max-txn-ops"`
	AutoCompactionMode       string `json:"auto-compaction-mode"`
	AutoCompactionRetention  string `json:"auto-compaction-retention"`
	AutoCompactionInterval   string `json:"auto-compaction-interval"`
	LogLevel                 string `json:"log-level"`
	EnablePprof              bool   `json:"enable-pprof"`
	// In the config file, as in etcd's, durations are nanoseconds.
	WatchProgressNotifyInterval             time.Duration `json:"watch-progress-notify-interval"`
	ExperimentalWatchProgressNotifyInterval time.Duration `json:"experimental-watch-progress-notify-interval"`
	LeaseCheckpointInterval                 time.Duration `json:"lease-checkpoint-interval"`
	// Accepted for etcd's sake and ignored: Cairn always checkpoints
	// leases, persisted.
	ExperimentalEnableLeaseCheckpoint        bool `json:"experimental-enable-lease-checkpoint"`
	ExperimentalEnableLeaseCheckpointPersist bool `json:"experimental-enable-lease-checkpoint-persist"`

	configFile string
	version    bool
}

func defaultConfig() config {
	return config{
		Name:                        "default",
		ListenClientURLs:            "http://localhost:2379",
		AdvertiseClientURLs:         "http://localhost:2379",
		ListenPeerURLs:              "http://localhost:2380",
		InitialAdvertisePeerURLs:    "http://localhost:2380",
		InitialClusterState:         "new",
		InitialClusterToken:         "etcd-cluster",
		HeartbeatIntervalMs:         100,
		ElectionTimeoutMs:           1000,
		SnapshotCount:               server.DefaultSnapshotCount,
		SnapshotCatchUpEntries:      raftnode.DefaultLimits.SnapshotCatchUpEntries,
		MaxRequestBytes:             server.DefaultMaxRequestBytes,
		MaxTxnOps:                   server.DefaultMaxTxnOps,
		WatchProgressNotifyInterval: defaultWatchProgressNotifyInterval,
		LeaseCheckpointInterval:     5 * time.Minute,
		AutoCompactionMode:          "periodic",
		AutoCompactionRetention:     "0",
		LogLevel:                    "info",
	}
}

func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: cairn [flags]\n\nStart a Cairn member (etcd's flags and defaults).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Name, "name", c.Name, "Human-readable name for this member.")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "Path to the data directory (default \"${name}.cairn\").")
	fs.StringVar(&c.ListenClientURLs, "listen-client-urls", c.ListenClientURLs, "List of URLs to listen on for client traffic.")
	fs.StringVar(&c.AdvertiseClientURLs, "advertise-client-urls", c.AdvertiseClientURLs, "List of this member's client URLs to advertise to the public.")
	fs.StringVar(&c.ListenPeerURLs, "listen-peer-urls", c.ListenPeerURLs, "List of URLs to listen on for peer traffic.")
	fs.StringVar(&c.InitialAdvertisePeerURLs, "initial-advertise-peer-urls", c.InitialAdvertisePeerURLs, "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.StringVar(&c.InitialCluster, "initial-cluster", c.InitialCluster, "Initial cluster configuration for bootstrapping (default \"${name}=${initial-advertise-peer-urls}\").")
	fs.StringVar(&c.InitialClusterState, "initial-cluster-state", c.InitialClusterState, "Initial cluster state ('new' or 'existing').")
	fs.StringVar(&c.InitialClusterToken, "initial-cluster-token", c.InitialClusterToken, "Initial cluster token for the cluster during bootstrap.")
	fs.UintVar(&c.HeartbeatIntervalMs, "heartbeat-interval", c.HeartbeatIntervalMs, "Time (in milliseconds) of a heartbeat interval.")
	fs.UintVar(&c.ElectionTimeoutMs, "election-timeout", c.ElectionTimeoutMs, "Time (in milliseconds) for an election to timeout.")
	fs.Uint64Var(&c.SnapshotCount, "snapshot-count", c.SnapshotCount, "Number of committed transactions to trigger a snapshot to disk.")
	fs.Uint64Var(&c.SnapshotCatchUpEntries, "snapshot-catchup-entries", c.SnapshotCatchUpEntries, "Number of entries for a slow follower to catch-up after compacting the raft storage entries.")
	fs.Int64Var(&c.QuotaBackendBytes, "quota-backend-bytes", c.QuotaBackendBytes, "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).")
	fs.UintVar(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.UintVar(&c.MaxTxnOps, "max-txn-ops", c.MaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.StringVar(&c.AutoCompactionMode, "auto-compaction-mode", c.AutoCompactionMode, "Interpret 'auto-compaction-retention' one of: 'periodic', 'revision'.")
	fs.StringVar(&c.AutoCompactionRetention, "auto-compaction-retention", c.AutoCompactionRetention, "Auto compaction retention for mvcc key value store. 0 means disable auto compaction.")
	fs.StringVar(&c.AutoCompactionInterval, "auto-compaction-interval", "", "Cairn only: how often auto-compaction samples (periodic) or compacts (revision), e.g. '10s'. Default: etcd's (retention/10 up to 6m; 5m).")
	fs.DurationVar(&c.WatchProgressNotifyInterval, "watch-progress-notify-interval", c.WatchProgressNotifyInterval, "Duration of periodical watch progress notification.")
	fs.DurationVar(&c.ExperimentalWatchProgressNotifyInterval, "experimental-watch-progress-notify-interval", 0, "Duration of periodical watch progress notification. Deprecated in etcd v3.6; use '--watch-progress-notify-interval' instead.")
	fs.DurationVar(&c.LeaseCheckpointInterval, "lease-checkpoint-interval", c.LeaseCheckpointInterval, "Cairn only: how often the leader records leases' remaining TTLs through raft, so that leader changes do not renew them.")
	fs.BoolVar(&c.ExperimentalEnableLeaseCheckpoint, "experimental-enable-lease-checkpoint", false, "Accepted for etcd's sake; Cairn always checkpoints lease TTLs.")
	fs.BoolVar(&c.ExperimentalEnableLeaseCheckpointPersist, "experimental-enable-lease-checkpoint-persist", false, "Accepted for etcd's sake; Cairn always persists lease checkpoints.")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
	fs.BoolVar(&c.EnablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	fs.StringVar(&c.configFile, "config-file", "", "Path to the server configuration file (YAML, etcd's keys). Other flags and environment variables are then ignored.")
	fs.BoolVar(&c.version, "version", false, "Print the version and exit.")
	return fs
}

// envPrefixes are the environment variable prefixes read for flags,
// first match wins: Cairn's own, then etcd's, so that deployments written
// for etcd keep working.
var envPrefixes = []string{"CAIRN_", "ETCD_"}

// parseConfig reads flags, then CAIRN_* (or ETCD_*) environment variables
// for flags not given on the command line, as etcd does: a variable that
// shadows a flag given on the command line is an error, and an unknown
// variable is a warning. With --config-file (or CAIRN_CONFIG_FILE), only
// the file is read. Errors wrapped in usageError exit 2, others 1.
func parseConfig(args []string, environ []string, out io.Writer) (config, error) {
	c := defaultConfig()
	fs := newFlagSet(&c, out)
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%q is not a valid flag", fs.Arg(0))
	}
	if c.version {
		return c, nil
	}
	if c.configFile != "" {
		return loadConfigFile(c.configFile)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	byEnv := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "version" {
			return
		}
		for _, prefix := range envPrefixes {
			byEnv[prefix+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = f
		}
	})
	fromEnv := map[string]bool{}
	for _, prefix := range envPrefixes {
		for _, kv := range environ {
			name, value, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			f, ok := byEnv[name]
			switch {
			case !ok:
				fmt.Fprintf(out, "cairn: warning: unrecognized environment variable %s\n", kv)
			case set[f.Name]:
				return c, fmt.Errorf("conflicting environment variable %s is shadowed by the command-line flag --%s "+
					"(unset the variable or drop the flag)", name, f.Name)
			case value == "" || fromEnv[f.Name]:
				// Empty, or already set by a CAIRN_ variable.
			default:
				if err := fs.Set(f.Name, value); err != nil {
					return c, fmt.Errorf("invalid value %q for %s: %v", value, name, err)
				}
				fromEnv[f.Name] = true
			}
		}
	}
	if c.configFile != "" {
		return loadConfigFile(c.configFile)
	}
	return c, nil
}

const defaultWatchProgressNotifyInterval = 10 * time.Minute

// watchProgressNotifyInterval is the interval asked for: the deprecated
// flag counts only when the new one is left at its default, as in etcd.
func (c config) watchProgressNotifyInterval() (time.Duration, error) {
	d := c.WatchProgressNotifyInterval
	if c.ExperimentalWatchProgressNotifyInterval != 0 && d == defaultWatchProgressNotifyInterval {
		d = c.ExperimentalWatchProgressNotifyInterval
	}
	if d <= 0 {
		return 0, fmt.Errorf("--watch-progress-notify-interval must be positive, not %v", d)
	}
	return d, nil
}

// usageError is a command-line error (exit status 2, as etcd).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func loadConfigFile(path string) (config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config{}, fmt.Errorf("cannot read config file: %w", err)
	}
	c := defaultConfig()
	if err := yaml.Unmarshal(data, &c); err != nil {
		return config{}, fmt.Errorf("config file %s: %w", path, err)
	}
	c.configFile = path
	return c, nil
}

// splitURLs splits a comma-separated URL list.
func splitURLs(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

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

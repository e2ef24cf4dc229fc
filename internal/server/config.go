package server

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/discovery"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raftnode"
)

// Config is a member's configuration, with etcd's meanings.
type Config struct {
	Name    string
	DataDir string
	// AdvertiseClientURLs and AdvertisePeerURLs are what other members
	// and clients are told.
	AdvertiseClientURLs []string
	AdvertisePeerURLs   []string
	InitialCluster      string
	// InitialClusterState is "new" or "existing".
	InitialClusterState string
	InitialClusterToken string

	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// RequestTimeout bounds how long a proposal waits to be applied
	// before it is answered "request timed out". Default: 5 s and two
	// election timeouts, etcd's (no flag sets it there either).
	RequestTimeout time.Duration
	// SnapshotCount is how many applied entries trigger a snapshot.
	SnapshotCount uint64
	// SnapshotCatchUpEntries is how many entries before a snapshot stay
	// in memory for slow followers (default 5000, etcd's).
	SnapshotCatchUpEntries uint64

	QuotaBackendBytes int64
	// BootstrapDefragThresholdMegabytes, if set, defragments the backend
	// at start when that would give back at least this many MiB (its
	// size less its size in use), as etcd.
	BootstrapDefragThresholdMegabytes uint
	MaxRequestBytes                   int
	MaxTxnOps                         int

	// AuthToken is --auth-token ("simple", or "jwt,..."; see package
	// auth), AuthTokenTTL --auth-token-ttl in seconds, BcryptCost
	// --bcrypt-cost (0: 10).
	AuthToken    string
	AuthTokenTTL int64
	BcryptCost   int
	// ClientCertAuth is --client-cert-auth: a request with no token is
	// made by the user its verified client certificate's common name
	// names.
	ClientCertAuth bool

	// AutoCompactionMode is "periodic" or "revision"; AutoCompactionRetention
	// is a duration (periodic) or a revision count (revision); zero is off.
	AutoCompactionMode             string
	AutoCompactionRetention        time.Duration
	AutoCompactionRetentionRevs    int64
	AutoCompactionIntervalOverride time.Duration

	// WatchProgressNotifyInterval is how often idle watchers that asked
	// for progress notifications get one (default 10m, etcd's).
	WatchProgressNotifyInterval time.Duration
	// LeaseCheckpointInterval is how often the leader records leases'
	// remaining TTLs through raft (default 5m, etcd's).
	LeaseCheckpointInterval time.Duration

	// WALDir, when set, holds the WAL instead of <data-dir>/member/wal
	// (etcd's --wal-dir).
	WALDir string
	// MaxSnapshots and MaxWALs bound the snapshot and WAL files kept on
	// disk; 0 keeps all (etcd's --max-snapshots, --max-wals; the flags
	// default to 5).
	MaxSnapshots int
	MaxWALs      int
	// WALSegmentBytes is the size WAL segments are preallocated to and
	// cut at; 0 is the WAL's default, 64 MiB (etcd's, not a flag). Tests
	// make it small.
	WALSegmentBytes int64
	// UnsafeNoFsync skips every fsync (WAL, snapshots, backend): a power
	// failure then loses acknowledged writes. For tests (etcd's
	// --unsafe-no-fsync).
	UnsafeNoFsync bool
	// ForceNewCluster restarts a member with existing data as the only
	// voter of a one-member cluster, keeping its keys (etcd's
	// --force-new-cluster).
	ForceNewCluster bool
	// DisablePreVote turns raft's pre-vote off (etcd's --pre-vote=false).
	DisablePreVote bool
	// DisableInitialElectionTickAdvance keeps a starting member from
	// fast-forwarding its election ticks (etcd's
	// --initial-election-tick-advance=false).
	DisableInitialElectionTickAdvance bool
	// StrictReconfigCheck rejects membership changes that would lose
	// quorum (etcd's --strict-reconfig-check, default true in etcd; false
	// here if unset): see mayChange.
	StrictReconfigCheck bool
	// MaxLearners is how many learners the cluster may have (etcd's
	// --max-learners); 0 takes etcd's default, 1, and -1 allows none.
	MaxLearners int

	// The client gRPC server (etcd's --max-concurrent-streams,
	// --grpc-keepalive-*); zero takes etcd's defaults (no stream limit,
	// 5s, 2h, 20s).
	MaxConcurrentStreams  uint32
	GRPCKeepAliveMinTime  time.Duration
	GRPCKeepAliveInterval time.Duration
	GRPCKeepAliveTimeout  time.Duration

	// InitialCorruptCheck makes a restarting member compare its HashKV
	// with its peers' before it serves, and refuse to start on a mismatch
	// (etcd's feature gate InitialCorruptCheck).
	InitialCorruptCheck bool
	// CorruptCheckTime is how often the leader compares its HashKV with
	// its peers' (etcd's --corrupt-check-time); 0 is never.
	CorruptCheckTime time.Duration
	// CompactHashCheck makes the leader compare the hashes its
	// compactions stored with its peers', every CompactHashCheckTime
	// (etcd's feature gate CompactHashCheck and --compact-hash-check-time,
	// default 1m).
	CompactHashCheck     bool
	CompactHashCheckTime time.Duration

	// Metrics is "basic" or "extensive" (etcd's --metrics: extensive adds
	// the gRPC handling-time histograms).
	Metrics string
	// WarningApplyDuration and WarningUnaryRequestDuration are how long an
	// apply or a unary request may take before a warning is logged
	// (etcd's --warning-apply-duration, 100ms, and
	// --warning-unary-request-duration, 300ms); zero takes the default.
	WarningApplyDuration        time.Duration
	WarningUnaryRequestDuration time.Duration

	Logger   *zap.Logger
	Registry prometheus.Registerer

	// PeerTLS is what this member dials https:// peer URLs with (peer
	// CA, peer client certificate); nil if it has no peer TLS.
	PeerTLS *tls.Config
	// PeerLocalAddr, if set, is the source address of this member's
	// connections to peers (etcd's --feature-gates=SetMemberLocalAddr=true).
	PeerLocalAddr net.IP
	// Discovery, if set, is the discovery service a new cluster's first
	// start learns its founding members from (etcd's --discovery-token
	// and --discovery-endpoints); InitialCluster then names only this
	// member, and InitialClusterToken is the discovery token.
	Discovery *discovery.Config
}

// snapshotBytes makes a snapshot due once the entries applied since the
// last hold 1 GiB of data, whatever --snapshot-count says (etcd has no
// such bound): with the catch-up entries kept after it (at most 512 MiB,
// raftnode.Limits), the raft log a member holds in memory stays under
// about 1.5 GiB however large the values.
const snapshotBytes = 1 << 30

// Defaults as etcd's.
const (
	DefaultSnapshotCount     = 10000
	DefaultMaxRequestBytes   = 1536 * 1024
	DefaultMaxTxnOps         = 128
	DefaultQuotaBackendBytes = 2 << 30
	// MaxQuotaBackendBytes is where etcd warns; pebble has no such limit,
	// so Cairn only refuses what it cannot represent.
	DefaultHeartbeat = 100 * time.Millisecond
	DefaultElection  = 1000 * time.Millisecond

	DefaultWatchProgressNotifyInterval = 10 * time.Minute
	DefaultLeaseCheckpointInterval     = 5 * time.Minute
	DefaultCompactHashCheckTime        = time.Minute

	DefaultMaxConcurrentStreams  = math.MaxUint32
	DefaultMaxLearners           = 1
	DefaultGRPCKeepAliveMinTime  = 5 * time.Second
	DefaultGRPCKeepAliveInterval = 2 * time.Hour
	DefaultGRPCKeepAliveTimeout  = 20 * time.Second

	DefaultWarningApplyDuration        = 100 * time.Millisecond
	DefaultWarningUnaryRequestDuration = 300 * time.Millisecond
)

// MinLeaseTTL is the shortest lease TTL granted, in seconds: 1.5 election
// timeouts, rounded up to whole seconds, as etcd computes it (from the
// election timeout in heartbeat ticks).
func (c *Config) MinLeaseTTL() int64 {
	ticks := int64(c.ElectionTimeout / c.HeartbeatInterval)
	minTTL := time.Duration(3*ticks/2) * c.HeartbeatInterval
	return int64(math.Ceil(minTTL.Seconds()))
}

func (c *Config) memberDir() string { return filepath.Join(c.DataDir, "member") }
func (c *Config) walDir() string {
	if c.WALDir != "" {
		return c.WALDir
	}
	return filepath.Join(c.memberDir(), "wal")
}
func (c *Config) dbDir() string { return filepath.Join(c.memberDir(), "db") }

// validate checks what the server depends on and fills defaults.
func (c *Config) validate() error {
	if c.Name == "" {
		return fmt.Errorf("--name must not be empty")
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".cairn"
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeat
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = DefaultElection
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5*time.Second + 2*c.ElectionTimeout
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return fmt.Errorf("--election-timeout[%v] should be at least as 5 times as --heartbeat-interval[%v]",
			c.ElectionTimeout.Milliseconds(), c.HeartbeatInterval.Milliseconds())
	}
	if c.ElectionTimeout > 50*time.Second {
		return fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than 50000ms", c.ElectionTimeout.Milliseconds())
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = DefaultSnapshotCount
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if err := raftnode.DefaultLimits.Check(c.MaxRequestBytes); err != nil {
		return err
	}
	if c.CompactHashCheckTime <= 0 {
		c.CompactHashCheckTime = DefaultCompactHashCheckTime
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.QuotaBackendBytes == 0 {
		// As etcd: 0 is the default, a negative quota none.
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	switch {
	case c.MaxLearners == 0:
		c.MaxLearners = DefaultMaxLearners
	case c.MaxLearners < 0:
		c.MaxLearners = 0
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = "etcd-cluster"
	}
	switch c.InitialClusterState {
	case "":
		c.InitialClusterState = "new"
	case "new", "existing":
	default:
		return fmt.Errorf("--initial-cluster-state must be new or existing, not %q", c.InitialClusterState)
	}
	for _, u := range append(append([]string(nil), c.AdvertiseClientURLs...), c.AdvertisePeerURLs...) {
		if err := membership.CheckURL(u); err != nil {
			return err
		}
	}
	if len(c.AdvertisePeerURLs) == 0 {
		return fmt.Errorf("--initial-advertise-peer-urls must not be empty")
	}
	switch c.AutoCompactionMode {
	case "", "periodic", "revision":
	default:
		return fmt.Errorf("unknown auto-compaction-mode %q", c.AutoCompactionMode)
	}
	if c.WatchProgressNotifyInterval <= 0 {
		c.WatchProgressNotifyInterval = DefaultWatchProgressNotifyInterval
	}
	if c.LeaseCheckpointInterval <= 0 {
		c.LeaseCheckpointInterval = DefaultLeaseCheckpointInterval
	}
	if c.MaxSnapshots < 0 || c.MaxWALs < 0 {
		return fmt.Errorf("--max-snapshots (%d) and --max-wals (%d) must not be negative", c.MaxSnapshots, c.MaxWALs)
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.GRPCKeepAliveMinTime <= 0 {
		c.GRPCKeepAliveMinTime = DefaultGRPCKeepAliveMinTime
	}
	if c.GRPCKeepAliveInterval <= 0 {
		c.GRPCKeepAliveInterval = DefaultGRPCKeepAliveInterval
	}
	if c.GRPCKeepAliveTimeout <= 0 {
		c.GRPCKeepAliveTimeout = DefaultGRPCKeepAliveTimeout
	}
	if c.WarningApplyDuration <= 0 {
		c.WarningApplyDuration = DefaultWarningApplyDuration
	}
	if c.WarningUnaryRequestDuration <= 0 {
		c.WarningUnaryRequestDuration = DefaultWarningUnaryRequestDuration
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return nil
}

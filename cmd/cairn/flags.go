package main

import (
	"flag"
	"time"
)

// flagDef is one of cairn's flags: etcd 3.7.3's name and help text, the
// config field it sets, and what Cairn does with it. The one table
// (flagDefs) drives the flag set, the ETCD_*/CAIRN_* variables, the
// config file's keys and --help's layout.
type flagDef struct {
	name string
	// group is the --help section; hidden flags (accepted for older
	// etcds' sake) have none.
	group group
	// shown is the default as --help prints it, quoted as etcd's help
	// quotes it.
	shown string
	usage string
	value flag.Value
	// effect is what Cairn does with the flag; why says why for
	// noEffect, or names the missing feature for notBuilt.
	effect effect
	why    string
	// deprecated, when set, is logged (once, as a warning) when the flag
	// is given.
	deprecated string
	// fileKey is the flag's key in --config-file when it is not the
	// flag's name: a dotted path into etcd's nested sections
	// ("client-transport-security.cert-file"), or "-" when etcd's config
	// file has no such key.
	fileKey string
}

// effect is what Cairn does with a flag that differs from etcd's
// meaning. Only a value other than the default counts: defaults never log
// nor fail.
type effect uint8

const (
	// works: Cairn does what etcd does.
	works effect = iota
	// noEffect: accepted and validated; the mechanism does not exist in
	// Cairn (bbolt tuning, rafthttp timeouts), so a value given is logged
	// once, as a warning, and changes nothing.
	noEffect
	// notBuilt: the feature (auth, discovery, tracing) is not built yet;
	// asking for it fails the start (exit 1) with an error naming the
	// flag and the feature, rather than running without what was asked.
	notBuilt
)

type group string

const (
	member     group = "Member"
	clustering group = "Clustering"
	security   group = "Security"
	auth       group = "Auth"
	monitoring group = "Profiling and Monitoring"
	logging    group = "Logging"
	tracing    group = "Distributed tracing"
	features   group = "Features"
	cairnOnly  group = "Cairn only"
	unsafe     group = "Unsafe feature"
	hidden     group = ""
)

// groups are --help's sections, in its order.
var groups = []group{member, clustering, security, auth, monitoring, logging, tracing, features, cairnOnly, unsafe}

// Missing features, as notBuilt flags name them.
const (
	srvMissing     = "DNS SRV discovery is not built yet; bootstrap with --initial-cluster or --discovery-endpoints"
	tracingMissing = "distributed tracing is not built yet"
)

// flagDefs binds every flag to c's fields. The order is --help's.
func (c *config) flagDefs() []flagDef {
	defs := []flagDef{

		// Member
		{name: "name", group: member, shown: "'default'", value: stringValue{&c.Name}, usage: "Human-readable name for this member."},
		{name: "data-dir", group: member, shown: "'${name}.cairn'", value: stringValue{&c.DataDir}, usage: "Path to the data directory."},
		{name: "wal-dir", group: member, shown: "''", value: stringValue{&c.WALDir}, usage: "Path to the dedicated wal directory."},
		{name: "snapshot-count", group: member, shown: "'10000'", value: uintValue[uint64]{&c.SnapshotCount}, usage: "Number of committed transactions to trigger a snapshot."},
		{name: "heartbeat-interval", group: member, shown: "'100'", value: uintValue[uint]{&c.HeartbeatIntervalMs}, usage: "Time (in milliseconds) of a heartbeat interval."},
		{name: "election-timeout", group: member, shown: "'1000'", value: uintValue[uint]{&c.ElectionTimeoutMs}, usage: "Time (in milliseconds) for an election to timeout. See tuning documentation for details."},
		{name: "initial-election-tick-advance", group: member, shown: "'true'", value: boolValue{&c.InitialElectionTickAdvance}, usage: "Whether to fast-forward initial election ticks on boot for faster election."},
		{name: "listen-peer-urls", group: member, shown: "'http://localhost:2380'", value: urlsValue{p: &c.ListenPeerURLs}, usage: "List of URLs to listen on for peer traffic."},
		{name: "listen-client-urls", group: member, shown: "'http://localhost:2379'", value: urlsValue{p: &c.ListenClientURLs}, usage: "List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls is not specified."},
		{name: "listen-client-http-urls", group: member, shown: "''", value: urlsValue{p: &c.ListenClientHTTPURLs}, usage: "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls."},
		{name: "max-snapshots", group: member, shown: "'5'", value: uintValue[uint]{&c.MaxSnapshots}, usage: "Maximum number of snapshot files to retain (0 is unlimited). Deprecated in v3.6 and will be decommissioned in v3.8."},
		{name: "max-wals", group: member, shown: "'5'", value: uintValue[uint]{&c.MaxWALs}, usage: "Maximum number of wal files to retain (0 is unlimited)."},
		{name: "memory-mlock", group: member, shown: "", value: boolValue{&c.MemoryMlock}, usage: "Enable to enforce etcd pages (in particular bbolt) to stay in RAM."},
		{name: "quota-backend-bytes", group: member, shown: "'0'", value: intValue[int64]{&c.QuotaBackendBytes}, usage: "Sets the maximum size (in bytes) that the etcd backend database may consume. Exceeding this triggers an alarm and puts etcd in read-only mode. Set to 0 to use the default 2GiB limit."},
		{name: "backend-bbolt-freelist-type", group: member, shown: "'map'", value: stringValue{&c.BackendFreelistType}, effect: noEffect, why: "Cairn's backend is pebble, which has no bbolt freelist", usage: "BackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types)."},
		{name: "backend-batch-interval", group: member, shown: "''", value: durationValue{&c.BackendBatchInterval}, effect: noEffect, why: "Cairn's pebble backend commits each applied batch of raft entries at once; there is no batch transaction to time", usage: "BackendBatchInterval is the maximum time before commit the backend transaction."},
		{name: "backend-batch-limit", group: member, shown: "'0'", value: intValue[int]{&c.BackendBatchLimit}, effect: noEffect, why: "Cairn's pebble backend commits each applied batch of raft entries at once; there is no batch transaction to bound", usage: "BackendBatchLimit is the maximum operations before commit the backend transaction."},
		{name: "max-txn-ops", group: member, shown: "'128'", value: uintValue[uint]{&c.MaxTxnOps}, usage: "Maximum number of operations permitted in a transaction."},
		{name: "max-request-bytes", group: member, shown: "'1572864'", value: uintValue[uint]{&c.MaxRequestBytes}, usage: "Maximum client request size in bytes the server will accept."},
		{name: "max-concurrent-streams", group: member, shown: "'math.MaxUint32'", value: uintValue[uint32]{&c.MaxConcurrentStreams}, usage: "Maximum concurrent streams that each client can open at a time."},
		{name: "grpc-keepalive-min-time", group: member, shown: "'5s'", value: durationValue{&c.GRPCKeepAliveMinTime}, usage: "Minimum duration interval that a client should wait before pinging server."},
		{name: "grpc-keepalive-interval", group: member, shown: "'2h'", value: durationValue{&c.GRPCKeepAliveInterval}, usage: "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."},
		{name: "grpc-keepalive-timeout", group: member, shown: "'20s'", value: durationValue{&c.GRPCKeepAliveTimeout}, usage: "Additional duration of wait before closing a non-responsive connection (0 to disable)."},
		{name: "socket-reuse-port", group: member, shown: "'false'", value: boolValue{&c.SocketReusePort}, fileKey: "socket-options.reuse-port", usage: "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use."},
		{name: "socket-reuse-address", group: member, shown: "'false'", value: boolValue{&c.SocketReuseAddress}, fileKey: "socket-options.reuse-address", usage: "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state."},
		{name: "enable-grpc-gateway", group: member, shown: "", value: boolValue{&c.EnableGRPCGateway}, usage: "Enable GRPC gateway."},
		{name: "raft-read-timeout", group: member, shown: "'5s'", value: durationValue{&c.RaftReadTimeout}, effect: noEffect, why: "Cairn's peers talk gRPC, not etcd's rafthttp", fileKey: "-", usage: "Read timeout set on each rafthttp connection"},
		{name: "raft-write-timeout", group: member, shown: "'5s'", value: durationValue{&c.RaftWriteTimeout}, effect: noEffect, why: "Cairn's peers talk gRPC, not etcd's rafthttp", fileKey: "-", usage: "Write timeout set on each rafthttp connection"},
		{name: "feature-gates", group: member, shown: "''", value: &c.FeatureGates, usage: "A set of key=value pairs that describe server level feature gates for alpha/experimental features. Options are:\n" + gatesHelp()},

		// Clustering
		{name: "initial-advertise-peer-urls", group: clustering, shown: "'http://localhost:2380'", value: urlsValue{p: &c.InitialAdvertisePeerURLs}, usage: "List of this member's peer URLs to advertise to the rest of the cluster."},
		{name: "initial-cluster", group: clustering, shown: "'default=http://localhost:2380'", value: stringValue{&c.InitialCluster}, usage: "Initial cluster configuration for bootstrapping."},
		{name: "initial-cluster-state", group: clustering, shown: "'new'", value: choiceValue{&c.InitialClusterState, []string{"new", "existing"}}, usage: "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster).\nAfter successful initialization (bootstrapping or adding), flag is ignored on restarts"},
		{name: "initial-cluster-token", group: clustering, shown: "'etcd-cluster'", value: stringValue{&c.InitialClusterToken}, usage: "Initial cluster token for the etcd cluster during bootstrap.\nSpecifying this can protect you from unintended cross-cluster interaction when running multiple clusters."},
		{name: "advertise-client-urls", group: clustering, shown: "'http://localhost:2379'", value: urlsValue{p: &c.AdvertiseClientURLs}, usage: "List of this member's client URLs to advertise to the public.\nThe client URLs advertised should be accessible to machines that talk to etcd cluster. etcd client libraries parse these URLs to connect to the cluster."},
		{name: "discovery", group: clustering, shown: "''", value: removedValue{"v2 discovery is removed in etcd 3.7 (the flag is listed in etcd 3.7.3's help, which refuses it too); use --discovery-endpoints"}, fileKey: "-", usage: "Discovery URL used to bootstrap the cluster for v2 discovery. Will be deprecated in v3.7, and be decommissioned in v3.8."},
		{name: "discovery-token", group: clustering, shown: "''", value: stringValue{&c.DiscoveryToken}, fileKey: "discovery-config.token", usage: "V3 discovery: discovery token for the etcd cluster to be bootstrapped."},
		{name: "discovery-endpoints", group: clustering, shown: "''", value: endpointsValue{&c.DiscoveryEndpoints}, fileKey: "discovery-config.client.endpoints", usage: "V3 discovery: List of gRPC endpoints of the discovery service."},
		{name: "discovery-dial-timeout", group: clustering, shown: "'2s'", value: durationValue{&c.DiscoveryDialTimeout}, fileKey: "discovery-config.client.dial-timeout", usage: "V3 discovery: dial timeout for client connections."},
		{name: "discovery-request-timeout", group: clustering, shown: "'5s'", value: durationValue{&c.DiscoveryRequestTimeout}, fileKey: "discovery-config.client.request-timeout", usage: "V3 discovery: timeout for discovery requests (excluding dial timeout)."},
		{name: "discovery-keepalive-time", group: clustering, shown: "'2s'", value: durationValue{&c.DiscoveryKeepAliveTime}, fileKey: "discovery-config.client.keepalive-time", usage: "V3 discovery: keepalive time for client connections."},
		{name: "discovery-keepalive-timeout", group: clustering, shown: "'6s'", value: durationValue{&c.DiscoveryKeepAliveTimeout}, fileKey: "discovery-config.client.keepalive-timeout", usage: "V3 discovery: keepalive timeout for client connections."},
		{name: "discovery-insecure-transport", group: clustering, shown: "'true'", value: boolValue{&c.DiscoveryInsecureTransport}, fileKey: "discovery-config.client.secure.insecure-transport", usage: "V3 discovery: disable transport security for client connections."},
		{name: "discovery-insecure-skip-tls-verify", group: clustering, shown: "'false'", value: boolValue{&c.DiscoveryInsecureSkipTLSVerify}, fileKey: "discovery-config.client.secure.insecure-skip-tls-verify", usage: "V3 discovery: skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)."},
		{name: "discovery-cert", group: clustering, shown: "''", value: stringValue{&c.DiscoveryCert}, fileKey: "discovery-config.client.secure.cert", usage: "V3 discovery: identify secure client using this TLS certificate file."},
		{name: "discovery-key", group: clustering, shown: "''", value: stringValue{&c.DiscoveryKey}, fileKey: "discovery-config.client.secure.key", usage: "V3 discovery: identify secure client using this TLS key file."},
		{name: "discovery-cacert", group: clustering, shown: "''", value: stringValue{&c.DiscoveryCACert}, fileKey: "discovery-config.client.secure.cacert", usage: "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle."},
		{name: "discovery-user", group: clustering, shown: "''", value: stringValue{&c.DiscoveryUser}, fileKey: "discovery-config.client.auth.username", usage: "V3 discovery: username[:password] for authentication (prompt if password is not supplied)."},
		{name: "discovery-password", group: clustering, shown: "''", value: stringValue{&c.DiscoveryPassword}, fileKey: "discovery-config.client.auth.password", usage: "V3 discovery: password for authentication (if this option is used, --user option shouldn't include password)."},
		{name: "discovery-fallback", group: clustering, shown: "'exit'", value: choiceValue{&c.DiscoveryFallback, []string{"exit", "proxy"}}, fileKey: "-", usage: "Expected behavior ('exit') when discovery services fails. Note that v2 proxy is removed."},
		{name: "discovery-proxy", group: clustering, shown: "''", value: removedValue{"v2 discovery is removed in etcd 3.7 (the flag is listed in etcd 3.7.3's help, which refuses it too)"}, fileKey: "-", usage: "HTTP proxy to use for traffic to discovery service. Will be deprecated in v3.7, and be decommissioned in v3.8."},
		{name: "discovery-srv", group: clustering, shown: "''", value: stringValue{&c.DiscoverySRV}, effect: notBuilt, why: srvMissing, usage: "DNS srv domain used to bootstrap the cluster."},
		{name: "discovery-srv-name", group: clustering, shown: "''", value: stringValue{&c.DiscoverySRVName}, effect: notBuilt, why: srvMissing, usage: "Suffix to the dns srv name queried when bootstrapping."},
		{name: "strict-reconfig-check", group: clustering, shown: "'true'", value: boolValue{&c.StrictReconfigCheck}, usage: "Reject reconfiguration requests that would cause quorum loss."},
		{name: "pre-vote", group: clustering, shown: "'true'", value: boolValue{&c.PreVote}, usage: "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster."},
		{name: "auto-compaction-retention", group: clustering, shown: "'0'", value: stringValue{&c.AutoCompactionRetention}, usage: "Auto compaction retention length. 0 means disable auto compaction."},
		{name: "auto-compaction-mode", group: clustering, shown: "'periodic'", value: stringValue{&c.AutoCompactionMode}, usage: "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention."},
		{name: "v2-deprecation", group: clustering, shown: "'write-only'", value: choiceValue{&c.V2Deprecation, []string{"write-only", "write-only-skip-check", "write-only-drop-data", "gone"}}, deprecated: "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.", usage: "Phase of v2store deprecation. Deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.\nSupported values:\n  'not-yet'                // Issues a warning if v2store have meaningful content (default in v3.5)\n  'write-only'             // Custom v2 state is not allowed (default in v3.6)\n  'write-only-skip-check'  // Custom v2 state is not allowed similar to 'write-only', but bypass the v2 content check.\n  'write-only-drop-data'   // Custom v2 state will get DELETED ! (planned default in v3.7)\n  'gone'                   // v2store is not maintained any longer. (planned to cleanup anything related to v2store in v3.8)"},

		// Security
		{name: "cert-file", group: security, shown: "''", value: stringValue{&c.CertFile}, fileKey: "client-transport-security.cert-file", usage: "Path to the client server TLS cert file."},
		{name: "key-file", group: security, shown: "''", value: stringValue{&c.KeyFile}, fileKey: "client-transport-security.key-file", usage: "Path to the client server TLS key file."},
		{name: "client-cert-auth", group: security, shown: "'false'", value: boolValue{&c.ClientCertAuth}, fileKey: "client-transport-security.client-cert-auth", usage: "Enable client cert authentication."},
		{name: "client-cert-file", group: security, shown: "''", value: stringValue{&c.ClientCertFile}, fileKey: "client-transport-security.client-cert-file", usage: "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required."},
		{name: "client-key-file", group: security, shown: "''", value: stringValue{&c.ClientKeyFile}, fileKey: "client-transport-security.client-key-file", usage: "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required."},
		{name: "client-crl-file", group: security, shown: "''", value: stringValue{&c.ClientCRLFile}, fileKey: "-", usage: "Path to the client certificate revocation list file."},
		{name: "client-cert-allowed-hostname", group: security, shown: "''", value: listValue{&c.ClientCertAllowedHostname}, fileKey: "client-transport-security.allowed-hostname", usage: "Comma-separated list of SAN hostnames for client cert authentication."},
		{name: "trusted-ca-file", group: security, shown: "''", value: stringValue{&c.TrustedCAFile}, fileKey: "client-transport-security.trusted-ca-file", usage: "Path to the client server TLS trusted CA cert file."},
		{name: "auto-tls", group: security, shown: "'false'", value: boolValue{&c.AutoTLS}, fileKey: "client-transport-security.auto-tls", usage: "Client TLS using generated certificates."},
		{name: "peer-cert-file", group: security, shown: "''", value: stringValue{&c.PeerCertFile}, fileKey: "peer-transport-security.cert-file", usage: "Path to the peer server TLS cert file."},
		{name: "peer-key-file", group: security, shown: "''", value: stringValue{&c.PeerKeyFile}, fileKey: "peer-transport-security.key-file", usage: "Path to the peer server TLS key file."},
		{name: "peer-client-cert-auth", group: security, shown: "'false'", value: boolValue{&c.PeerClientCertAuth}, fileKey: "peer-transport-security.client-cert-auth", usage: "Enable peer client cert authentication."},
		{name: "peer-client-cert-file", group: security, shown: "''", value: stringValue{&c.PeerClientCertFile}, fileKey: "peer-transport-security.client-cert-file", usage: "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required."},
		{name: "peer-client-key-file", group: security, shown: "''", value: stringValue{&c.PeerClientKeyFile}, fileKey: "peer-transport-security.client-key-file", usage: "Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required."},
		{name: "peer-trusted-ca-file", group: security, shown: "''", value: stringValue{&c.PeerTrustedCAFile}, fileKey: "peer-transport-security.trusted-ca-file", usage: "Path to the peer server TLS trusted CA file."},
		{name: "peer-cert-allowed-cn", group: security, shown: "''", value: listValue{&c.PeerCertAllowedCN}, fileKey: "peer-transport-security.allowed-cn", usage: "Comma-separated list of allowed CNs for inter-peer TLS authentication."},
		{name: "peer-cert-allowed-hostname", group: security, shown: "''", value: listValue{&c.PeerCertAllowedHostname}, fileKey: "peer-transport-security.allowed-hostname", usage: "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication."},
		{name: "peer-auto-tls", group: security, shown: "'false'", value: boolValue{&c.PeerAutoTLS}, fileKey: "peer-transport-security.auto-tls", usage: "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided."},
		{name: "self-signed-cert-validity", group: security, shown: "'1'", value: uintValue[uint]{&c.SelfSignedCertValidity}, usage: "The validity period of the client and peer certificates that are automatically generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, and the default is 1."},
		{name: "peer-crl-file", group: security, shown: "''", value: stringValue{&c.PeerCRLFile}, fileKey: "-", usage: "Path to the peer certificate revocation list file."},
		{name: "cipher-suites", group: security, shown: "''", value: listValue{&c.CipherSuites}, usage: "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go)."},
		{name: "cors", group: security, shown: "'*'", value: urlsValue{p: &c.CORS, exceptions: []string{"*"}}, usage: "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all)."},
		{name: "host-whitelist", group: security, shown: "'*'", value: listValue{&c.HostWhitelist}, usage: "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all)."},
		{name: "tls-min-version", group: security, shown: "'TLS1.2'", value: stringValue{&c.TLSMinVersion}, usage: "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3."},
		{name: "tls-max-version", group: security, shown: "''", value: stringValue{&c.TLSMaxVersion}, usage: "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty will be auto-populated by Go)."},

		// Auth
		{name: "auth-token", group: auth, shown: "'simple'", value: stringValue{&c.AuthToken}, usage: "Specify a v3 authentication token type and its options ('simple' or 'jwt')."},
		{name: "bcrypt-cost", group: auth, shown: "10", value: uintValue[uint]{&c.BcryptCost}, usage: "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31."},
		{name: "auth-token-ttl", group: auth, shown: "300", value: uintValue[uint]{&c.AuthTokenTTL}, usage: "Time (in seconds) of the auth-token-ttl."},

		// Profiling and Monitoring
		{name: "enable-pprof", group: monitoring, shown: "'false'", value: boolValue{&c.EnablePprof}, usage: "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\""},
		{name: "metrics", group: monitoring, shown: "'basic'", value: stringValue{&c.Metrics}, usage: "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics."},
		{name: "listen-metrics-urls", group: monitoring, shown: "''", value: urlsValue{p: &c.ListenMetricsURLs}, usage: "List of URLs to listen on for the /metrics and /health endpoints. For https, the client URL TLS info is used."},

		// Logging
		{name: "logger", group: logging, shown: "'zap'", value: stringValue{&c.Logger}, usage: "Currently only supports 'zap' for structured logging."},
		{name: "log-outputs", group: logging, shown: "'default'", value: listValue{&c.LogOutputs}, usage: "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets."},
		{name: "log-level", group: logging, shown: "'info'", value: stringValue{&c.LogLevel}, usage: "Configures log level. Only supports debug, info, warn, error, panic, or fatal."},
		{name: "log-format", group: logging, shown: "'json'", value: stringValue{&c.LogFormat}, usage: "Configures log format. Only supports json, console."},
		{name: "enable-log-rotation", group: logging, shown: "'false'", value: boolValue{&c.EnableLogRotation}, usage: "Enable log rotation of a single log-outputs file target."},
		{name: "log-rotation-config-json", group: logging, shown: "'{\"maxsize\": 100, \"maxage\": 0, \"maxbackups\": 0, \"localtime\": false, \"compress\": false}'", value: stringValue{&c.LogRotationConfigJSON}, usage: "Configures log rotation if enabled with a JSON logger config. MaxSize(MB), MaxAge(days,0=no limit), MaxBackups(0=no limit), LocalTime(use computers local time), Compress(gzip)\"."},
		{name: "warning-unary-request-duration", group: logging, shown: "'300ms'", value: durationValue{&c.WarningUnaryRequestDuration}, usage: "Set time duration after which a warning is logged if a unary request takes more than this duration."},

		// Distributed tracing
		{name: "enable-distributed-tracing", group: tracing, shown: "'false'", value: boolValue{&c.EnableDistributedTracing}, effect: notBuilt, why: tracingMissing, usage: "Enable distributed tracing."},
		{name: "distributed-tracing-address", group: tracing, shown: "'localhost:4317'", value: stringValue{&c.DistributedTracingAddress}, effect: notBuilt, why: tracingMissing, usage: "Distributed tracing collector address."},
		{name: "distributed-tracing-service-name", group: tracing, shown: "'etcd'", value: stringValue{&c.DistributedTracingServiceName}, effect: notBuilt, why: tracingMissing, usage: "Distributed tracing service name, must be same across all etcd instances."},
		{name: "distributed-tracing-instance-id", group: tracing, shown: "''", value: stringValue{&c.DistributedTracingInstanceID}, effect: notBuilt, why: tracingMissing, usage: "Distributed tracing instance ID, must be unique per each etcd instance."},
		{name: "distributed-tracing-sampling-rate", group: tracing, shown: "'0'", value: intValue[int]{&c.DistributedTracingSamplingRate}, effect: notBuilt, why: tracingMissing, usage: "Number of samples to collect per million spans for distributed tracing."},

		// Features
		{name: "corrupt-check-time", group: features, shown: "'0s'", value: durationValue{&c.CorruptCheckTime}, usage: "Duration of time between cluster corruption check passes."},
		{name: "compact-hash-check-time", group: features, shown: "'1m'", value: durationValue{&c.CompactHashCheckTime}, usage: "Duration of time between leader checks followers compaction hashes."},
		{name: "compaction-batch-limit", group: features, shown: "1000", value: intValue[int]{&c.CompactionBatchLimit}, effect: noEffect, why: "Cairn removes compacted revisions in fixed batches of 1000", usage: "CompactionBatchLimit sets the maximum revisions deleted in each compaction batch."},
		{name: "peer-skip-client-san-verification", group: features, shown: "'false'", value: boolValue{&c.PeerSkipClientSANVerification}, fileKey: "peer-transport-security.skip-client-san-verification", usage: "Skip verification of SAN field in client certificate for peer connections."},
		{name: "watch-progress-notify-interval", group: features, shown: "'10m'", value: durationValue{&c.WatchProgressNotifyInterval}, usage: "Duration of periodical watch progress notification."},
		{name: "warning-apply-duration", group: features, shown: "'100ms'", value: durationValue{&c.WarningApplyDuration}, usage: "Warning is generated if requests take more than this duration."},
		{name: "bootstrap-defrag-threshold-megabytes", group: features, shown: "", value: uintValue[uint]{&c.BootstrapDefragThresholdMegabytes}, usage: "Enable the defrag during etcd server bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect."},
		{name: "max-learners", group: features, shown: "'1'", value: intValue[int]{&c.MaxLearners}, usage: "Set the max number of learner members allowed in the cluster membership."},
		{name: "compaction-sleep-interval", group: features, shown: "", value: durationValue{&c.CompactionSleepInterval}, effect: noEffect, why: "Cairn removes compacted revisions in the background without pausing between batches", usage: "Sets the sleep interval between each compaction batch."},
		{name: "downgrade-check-time", group: features, shown: "", value: durationValue{&c.DowngradeCheckTime}, effect: noEffect, why: "a Cairn cluster refuses downgrades (no etcd binary can run on its data)", usage: "Duration of time between two downgrade status checks."},
		{name: "snapshot-catchup-entries", group: features, shown: "", value: uintValue[uint64]{&c.SnapshotCatchUpEntries}, usage: "Number of entries for a slow follower to catch up after compacting the raft storage entries."},

		// Unsafe feature
		{name: "force-new-cluster", group: unsafe, shown: "'false'", value: boolValue{&c.ForceNewCluster}, usage: "Force to create a new one-member cluster."},
		{name: "unsafe-no-fsync", group: unsafe, shown: "'false'", value: boolValue{&c.UnsafeNoFsync}, usage: "Disables fsync, unsafe, will cause data loss."},

		// Cairn only
		{name: "lease-checkpoint-interval", group: cairnOnly, shown: "'5m'", value: durationValue{&c.LeaseCheckpointInterval},
			usage: "How often the leader records leases' remaining TTLs through raft, so that a leader change does not renew them (etcd: fixed 5m, with feature gate LeaseCheckpoint)."},
		{name: "auto-compaction-interval", group: cairnOnly, shown: "''", value: stringValue{&c.AutoCompactionInterval},
			usage: "How often auto-compaction samples (periodic) or compacts (revision), e.g. '10s'. Empty: etcd's (periodic: retention/10, at most 6m; revision: 5m)."},
		{name: "dashboard", group: cairnOnly, shown: "'auto'", value: stringValue{&c.Dashboard},
			usage: "Serve the web dashboard at client URL + \"/ui/\": 'auto' (when every client URL serving HTTP listens on a loopback address), 'on' or 'off'. Needs the gRPC gateway."},
		{name: "own-grpc-server", group: cairnOnly, shown: "'true'", value: boolValue{&c.OwnGRPCServer},
			usage: "Serve gRPC on http:// client URLs, and gRPC clients (offering only h2 by ALPN) on https:// ones, with Cairn's own HTTP/2 server; false: grpc-go's, over TLS through the HTTP server as etcd does."},

		// Hidden: etcd 3.5/3.6 names, which etcd 3.7 refuses; Cairn keeps
		// taking them so that older manifests start.
		{name: "experimental-watch-progress-notify-interval", group: hidden, value: durationValue{&c.ExperimentalWatchProgressNotifyInterval},
			deprecated: "--experimental-watch-progress-notify-interval is deprecated in etcd 3.6 and refused by etcd 3.7; use --watch-progress-notify-interval"},
		{name: "experimental-enable-lease-checkpoint", group: hidden, value: boolValue{&c.ExperimentalEnableLeaseCheckpoint},
			deprecated: "--experimental-enable-lease-checkpoint is deprecated in etcd 3.6 and refused by etcd 3.7; Cairn always checkpoints leases"},
		{name: "experimental-enable-lease-checkpoint-persist", group: hidden, value: boolValue{&c.ExperimentalEnableLeaseCheckpointPersist},
			deprecated: "--experimental-enable-lease-checkpoint-persist is deprecated in etcd 3.6 and refused by etcd 3.7; Cairn always persists lease checkpoints"},
		{name: "experimental-initial-corrupt-check", group: hidden, value: boolValue{&c.ExperimentalInitialCorruptCheck},
			deprecated: "--experimental-initial-corrupt-check is deprecated in etcd 3.6 and refused by etcd 3.7; use --feature-gates=InitialCorruptCheck=true"},
		{name: "experimental-corrupt-check-time", group: hidden, value: durationValue{&c.ExperimentalCorruptCheckTime},
			deprecated: "--experimental-corrupt-check-time is deprecated in etcd 3.6 and refused by etcd 3.7; use --corrupt-check-time"},
		{name: "experimental-compact-hash-check-enabled", group: hidden, value: boolValue{&c.ExperimentalCompactHashCheckEnabled},
			deprecated: "--experimental-compact-hash-check-enabled is deprecated in etcd 3.6 and refused by etcd 3.7; use --feature-gates=CompactHashCheck=true"},
		{name: "experimental-compact-hash-check-time", group: hidden, value: durationValue{&c.ExperimentalCompactHashCheckTime},
			deprecated: "--experimental-compact-hash-check-time is deprecated in etcd 3.6 and refused by etcd 3.7; use --compact-hash-check-time"},
	}
	for _, name := range ignoredFlags {
		defs = append(defs, flagDef{name: name, group: hidden, value: ignoredValue{}, fileKey: "-"})
	}
	return defs
}

// ignoredFlags are etcd 2 flags that etcd 3.7 still accepts and ignores
// (etcdmain's "ignored" list); Cairn takes them too, and logs that it
// ignores them.
var ignoredFlags = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force", "max-result-buffer",
	"max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout", "retry-interval", "snapshot", "v", "vv",
}

// config holds every flag's value, under etcd's names and with etcd's
// defaults (defaultConfig).
type config struct {
	// Member
	Name                       string
	DataDir                    string
	WALDir                     string
	SnapshotCount              uint64
	HeartbeatIntervalMs        uint
	ElectionTimeoutMs          uint
	InitialElectionTickAdvance bool
	ListenPeerURLs             []string
	ListenClientURLs           []string
	ListenClientHTTPURLs       []string
	MaxSnapshots               uint
	MaxWALs                    uint
	MemoryMlock                bool
	QuotaBackendBytes          int64
	BackendFreelistType        string
	BackendBatchInterval       time.Duration
	BackendBatchLimit          int
	MaxTxnOps                  uint
	MaxRequestBytes            uint
	MaxConcurrentStreams       uint32
	GRPCKeepAliveMinTime       time.Duration
	GRPCKeepAliveInterval      time.Duration
	GRPCKeepAliveTimeout       time.Duration
	SocketReusePort            bool
	SocketReuseAddress         bool
	EnableGRPCGateway          bool
	RaftReadTimeout            time.Duration
	RaftWriteTimeout           time.Duration
	FeatureGates               featureGates

	// Clustering
	InitialAdvertisePeerURLs       []string
	InitialCluster                 string
	InitialClusterState            string
	InitialClusterToken            string
	AdvertiseClientURLs            []string
	DiscoveryToken                 string
	DiscoveryEndpoints             []string
	DiscoveryDialTimeout           time.Duration
	DiscoveryRequestTimeout        time.Duration
	DiscoveryKeepAliveTime         time.Duration
	DiscoveryKeepAliveTimeout      time.Duration
	DiscoveryInsecureTransport     bool
	DiscoveryInsecureSkipTLSVerify bool
	DiscoveryCert                  string
	DiscoveryKey                   string
	DiscoveryCACert                string
	DiscoveryUser                  string
	DiscoveryPassword              string
	DiscoveryFallback              string
	DiscoverySRV                   string
	DiscoverySRVName               string
	DiscoveryFile                  discoveryFileKeys
	StrictReconfigCheck            bool
	PreVote                        bool
	AutoCompactionRetention        string
	AutoCompactionMode             string
	V2Deprecation                  string

	// Security
	CertFile                      string
	KeyFile                       string
	ClientCertAuth                bool
	ClientCertFile                string
	ClientKeyFile                 string
	ClientCRLFile                 string
	ClientCertAllowedHostname     []string
	TrustedCAFile                 string
	AutoTLS                       bool
	PeerCertFile                  string
	PeerKeyFile                   string
	PeerClientCertAuth            bool
	PeerClientCertFile            string
	PeerClientKeyFile             string
	PeerTrustedCAFile             string
	PeerCertAllowedCN             []string
	PeerCertAllowedHostname       []string
	PeerAutoTLS                   bool
	SelfSignedCertValidity        uint
	PeerCRLFile                   string
	CipherSuites                  []string
	CORS                          []string
	HostWhitelist                 []string
	TLSMinVersion                 string
	TLSMaxVersion                 string
	PeerSkipClientSANVerification bool

	// Auth
	AuthToken    string
	BcryptCost   uint
	AuthTokenTTL uint

	// Profiling, monitoring, logging
	EnablePprof                 bool
	Metrics                     string
	ListenMetricsURLs           []string
	Logger                      string
	LogOutputs                  []string
	LogLevel                    string
	LogFormat                   string
	EnableLogRotation           bool
	LogRotationConfigJSON       string
	WarningUnaryRequestDuration time.Duration

	// Distributed tracing
	EnableDistributedTracing       bool
	DistributedTracingAddress      string
	DistributedTracingServiceName  string
	DistributedTracingInstanceID   string
	DistributedTracingSamplingRate int

	// Features
	CorruptCheckTime                  time.Duration
	CompactHashCheckTime              time.Duration
	CompactionBatchLimit              int
	WatchProgressNotifyInterval       time.Duration
	WarningApplyDuration              time.Duration
	BootstrapDefragThresholdMegabytes uint
	MaxLearners                       int
	CompactionSleepInterval           time.Duration
	DowngradeCheckTime                time.Duration
	SnapshotCatchUpEntries            uint64

	// Unsafe
	ForceNewCluster bool
	UnsafeNoFsync   bool

	// Cairn only
	LeaseCheckpointInterval time.Duration
	AutoCompactionInterval  string
	Dashboard               string
	// OwnGRPCServer serves gRPC on cleartext client URLs, and gRPC
	// clients on TLS ones, with internal/h2grpc.
	OwnGRPCServer bool

	// Hidden (etcd 3.5/3.6 names)
	ExperimentalWatchProgressNotifyInterval  time.Duration
	ExperimentalEnableLeaseCheckpoint        bool
	ExperimentalEnableLeaseCheckpointPersist bool
	ExperimentalInitialCorruptCheck          bool
	ExperimentalCorruptCheckTime             time.Duration
	ExperimentalCompactHashCheckEnabled      bool
	ExperimentalCompactHashCheckTime         time.Duration

	configFile string
	version    bool
	// given are the flags set explicitly: on the command line, by an
	// environment variable or in the config file.
	given map[string]bool
	// notes are log lines owed from parsing (unknown environment
	// variables, deprecated flags), logged once the logger exists.
	notes []note
}

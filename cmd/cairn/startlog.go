package main

import (
	"net"
	"os"
	"path/filepath"
	"runtime"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapgrpc"
	"google.golang.org/grpc/grpclog"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/version"
)

// The member's log lines at start and stop are etcd 3.7's, word for word,
// with the fields tools read: operators, scripts and etcd's own test
// framework (which waits for "ready to serve client requests" before it
// uses a member) grep for them. README.md lists them.

// setGRPCLogger sends gRPC's own log lines into the member's log, so that
// everything on stderr is a log line in the chosen format: all of them at
// --log-level debug (as etcd), else warnings and errors (etcd prints
// those as gRPC's plain text). grpclog's logger is process-wide: set
// it once, before any gRPC server or connection exists.
func setGRPCLogger(logger *zap.Logger) {
	lg := logger.Named("grpc")
	if !logger.Core().Enabled(zapcore.DebugLevel) && logger.Core().Enabled(zapcore.InfoLevel) {
		lg = lg.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	}
	grpclog.SetLoggerV2(zapgrpc.NewLogger(lg))
}

// logStarting says which data directory the member starts on and with
// what configuration, before its storage is opened ("starting an etcd
// server", with etcd's fields for what Cairn has).
func logStarting(logger *zap.Logger, cfg server.Config, listenPeerURLs, listenClientURLs, listenMetricsURLs []string) {
	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = cfg.Name + ".cairn" // as server.Config fills it
		logger.Warn("'data-dir' was empty; using default", zap.String("data-dir", dataDir))
	}
	memberDir := filepath.Join(dataDir, "member")
	_, err := os.Stat(memberDir)
	initialized := err == nil
	if initialized {
		logger.Info("server has already been initialized", zap.String("data-dir", dataDir), zap.String("dir-type", "member"))
	} else {
		logger.Info("Initialize and start etcd server", zap.String("data-dir", dataDir), zap.String("dir-type", "empty"))
	}
	quota := cfg.QuotaBackendBytes
	if quota <= 0 {
		quota = server.DefaultQuotaBackendBytes
	}
	logger.Info("starting an etcd server",
		zap.String("etcd-version", version.Etcd),
		zap.String("cairn-version", version.Cairn),
		zap.String("go-version", runtime.Version()),
		zap.String("go-os", runtime.GOOS),
		zap.String("go-arch", runtime.GOARCH),
		zap.Int("max-cpu-set", runtime.GOMAXPROCS(0)),
		zap.Int("max-cpu-available", runtime.NumCPU()),
		zap.Bool("member-initialized", initialized),
		zap.String("name", cfg.Name),
		zap.String("data-dir", dataDir),
		zap.String("member-dir", memberDir),
		zap.String("heartbeat-interval", cfg.HeartbeatInterval.String()),
		zap.String("election-timeout", cfg.ElectionTimeout.String()),
		zap.Uint64("snapshot-count", cfg.SnapshotCount),
		zap.Uint64("snapshot-catchup-entries", cfg.SnapshotCatchUpEntries),
		zap.Strings("initial-advertise-peer-urls", cfg.AdvertisePeerURLs),
		zap.Strings("listen-peer-urls", listenPeerURLs),
		zap.Strings("advertise-client-urls", cfg.AdvertiseClientURLs),
		zap.Strings("listen-client-urls", listenClientURLs),
		zap.Strings("listen-metrics-urls", nonNil(listenMetricsURLs)),
		zap.String("initial-cluster", cfg.InitialCluster),
		zap.String("initial-cluster-state", cfg.InitialClusterState),
		zap.String("initial-cluster-token", cfg.InitialClusterToken),
		zap.Int64("quota-backend-bytes", quota),
		zap.Int("max-request-bytes", cfg.MaxRequestBytes),
		zap.Bool("pre-vote", !cfg.DisablePreVote),
		zap.Bool("initial-corrupt-check", cfg.InitialCorruptCheck),
		zap.String("corrupt-check-time-interval", cfg.CorruptCheckTime.String()),
		zap.Duration("compact-check-time-interval", cfg.CompactHashCheckTime),
		zap.String("auto-compaction-mode", cfg.AutoCompactionMode),
		zap.Duration("auto-compaction-retention", cfg.AutoCompactionRetention),
		// etcd 3.7 enforces v2-deprecation's default whatever the flag
		// says, and logs the level in force (its TestV2DeprecationEnforce
		// DefaultValue waits for this field).
		zap.String("v2-deprecation", "write-only"),
	)
}

// logNowServing says the member's listeners are all served.
func logNowServing(logger *zap.Logger, srv *server.Server, listenPeerURLs, listenClientURLs, listenMetricsURLs []string) {
	cfg := srv.Config()
	logger.Info("now serving peer/client/metrics",
		zap.String("local-member-id", membership.IDString(srv.ID())),
		zap.Strings("initial-advertise-peer-urls", cfg.AdvertisePeerURLs),
		zap.Strings("listen-peer-urls", listenPeerURLs),
		zap.Strings("advertise-client-urls", cfg.AdvertiseClientURLs),
		zap.Strings("listen-client-urls", listenClientURLs),
		zap.Strings("listen-metrics-urls", nonNil(listenMetricsURLs)),
	)
}

// nonNil is urls, or an empty list: etcd prints none as [], not null.
func nonNil(urls []string) []string {
	if urls == nil {
		return []string{}
	}
	return urls
}

// logServingClients says a client listener is served, and what traffic
// it takes ("grpc+http", or "grpc" and "http" apart with
// --listen-client-http-urls), in etcd's words for plain-text listeners.
func logServingClients(logger *zap.Logger, secure bool, traffic string, l net.Listener) {
	msg := "serving client traffic insecurely; this is strongly discouraged!"
	if secure {
		msg = "serving client traffic securely"
	}
	logger.Info(msg, zap.String("traffic", traffic), zap.String("address", l.Addr().String()))
}

// logWhenReady logs "ready to serve client requests", once per client
// listener as etcd does, when the member is ready (server.ReadyNotify);
// it returns then, or when the member stops first.
func logWhenReady(logger *zap.Logger, srv *server.Server, clientListeners int) {
	select {
	case <-srv.ReadyNotify():
		for range clientListeners {
			logger.Info("ready to serve client requests")
		}
	case <-srv.Stopping():
	}
}

// stopFields are the fields of "closing etcd server" and "closed etcd
// server".
func stopFields(cfg server.Config) []zap.Field {
	return []zap.Field{
		zap.String("name", cfg.Name),
		zap.String("data-dir", cfg.DataDir),
		zap.Strings("advertise-peer-urls", cfg.AdvertisePeerURLs),
		zap.Strings("advertise-client-urls", cfg.AdvertiseClientURLs),
	}
}

package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/etcdsnap"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/tool"
)

func newSnapshotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot <subcommand>", Short: "Manages etcd node snapshots"}
	cmd.AddCommand(newSnapshotRestoreCommand(g), newSnapshotStatusCommand(g))
	return cmd
}

func newSnapshotStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status <filename>",
		Short: "Gets backend snapshot status of a given file",
		Long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("snapshot status requires exactly one argument")
			}
			if _, err := os.Stat(args[0]); err != nil {
				return err
			}
			st, err := etcdsnap.ReadStatus(args[0])
			if err != nil {
				return err
			}
			// etcdutl's snapshot.Status, as JSON.
			v := struct {
				Hash      uint32 `json:"hash"`
				Revision  int64  `json:"revision"`
				TotalKey  int    `json:"totalKey"`
				TotalSize int64  `json:"totalSize"`
				Version   string `json:"version"`
			}{st.Hash, st.Revision, st.TotalKey, st.TotalSize, st.Version}
			row := []string{fmt.Sprintf("%x", st.Hash), fmt.Sprint(st.Revision), fmt.Sprint(st.TotalKey),
				tool.HumanBytes(st.TotalSize), st.Version}
			return g.print(v, []string{"hash", "revision", "total keys", "total size", "version"}, row, [][2]string{
				{"Hash", fmt.Sprint(st.Hash)}, {"Revision", fmt.Sprint(st.Revision)}, {"Keys", fmt.Sprint(st.TotalKey)},
				{"Size", fmt.Sprint(st.TotalSize)}, {"Version", st.Version}})
		},
	}
}

// restoreOptions are etcdutl's snapshot restore flags.
type restoreOptions struct {
	dataDir, walDir, initialCluster, token, peerURLs, name string
	skipHashCheck, markCompacted                           bool
	mmapSize, bumpRevision                                 uint64
}

func newSnapshotRestoreCommand(g *globals) *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore <filename> --data-dir {output dir} [options]",
		Short: "Restores an etcd member snapshot to an etcd directory",
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("snapshot restore requires exactly one argument")
			}
			if (o.bumpRevision == 0) == o.markCompacted {
				return tool.BadArgs("--mark-compacted required if --revision-bump > 0")
			}
			return restore(g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "Path to the output data directory")
	f.StringVar(&o.walDir, "wal-dir", "", "Path to the WAL directory (use --data-dir if none given)")
	f.StringVar(&o.initialCluster, "initial-cluster", "default=http://localhost:2380", "Initial cluster configuration for restore bootstrap")
	f.StringVar(&o.token, "initial-cluster-token", "etcd-cluster", "Initial cluster token for the etcd cluster during restore bootstrap")
	f.StringVar(&o.peerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster")
	f.StringVar(&o.name, "name", "default", "Human-readable name for this member")
	f.BoolVar(&o.skipHashCheck, "skip-hash-check", false, "Ignore snapshot integrity hash value (required if copied from data directory)")
	f.Uint64Var(&o.mmapSize, "initial-memory-map-size", 10*1024*1024*1024, "Initial memory map size of the database in bytes. It uses the default value if not defined or defined to 0")
	f.Uint64Var(&o.bumpRevision, "bump-revision", 0, "How much to increase the latest revision after restore")
	f.BoolVar(&o.markCompacted, "mark-compacted", false, "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)")
	return cmd
}

// restore makes a new member's data directory from the snapshot: the
// member is bootstrapped first (its WAL and an empty backend: the flags
// are checked before any data is copied), then the snapshot's history and
// leases are imported into its backend. On failure what it made is
// removed.
func restore(g *globals, path string, o restoreOptions) (err error) {
	lg := g.logger()
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = o.name + ".cairn"
	}
	if !emptyOrMissing(dataDir) {
		return fmt.Errorf("data-dir %q not empty or could not be read", dataDir)
	}
	if o.walDir != "" {
		if _, err := os.Stat(o.walDir); err == nil {
			return fmt.Errorf("wal-dir %q exists", o.walDir)
		}
	}
	r, err := etcdsnap.Open(path, !o.skipHashCheck)
	if err != nil {
		return err
	}
	defer r.Close()
	memberDir := filepath.Join(dataDir, "member")
	lg.Info("restoring snapshot", zap.String("path", path), zap.String("wal-dir", walDirOf(memberDir, o.walDir)),
		zap.String("data-dir", dataDir))
	defer func() {
		if err != nil {
			os.RemoveAll(dataDir)
			if o.walDir != "" {
				os.RemoveAll(o.walDir)
			}
		}
	}()
	st, err := member.Open(member.Config{
		Name: o.name, Dir: memberDir, InitialCluster: o.initialCluster, InitialClusterToken: o.token,
		InitialClusterState: "new", AdvertisePeerURLs: splitURLs(o.peerURLs), MinLeaseTTL: 1,
		DedicatedWALDir: o.walDir, Backend: backend.Options{}, Logger: lg,
	})
	if err != nil {
		return err
	}
	clusterID := st.ClusterID
	if err := st.Close(); err != nil {
		return err
	}
	// etcd's lines for the new cluster's members (etcd's test framework
	// waits for them).
	members, err := membership.ParseInitialCluster(o.initialCluster, o.token)
	if err != nil {
		return err
	}
	slices.SortFunc(members, func(a, b membership.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range members {
		lg.Info("added member", zap.String("cluster-id", membership.IDString(clusterID)), zap.String("local-member-id", "0"),
			zap.String("added-peer-id", membership.IDString(m.ID)), zap.Strings("added-peer-peer-urls", m.PeerURLs),
			zap.Bool("added-peer-is-learner", false))
	}
	src := &snapshotSource{r: r, bump: int64(o.bumpRevision), lg: lg}
	stats, err := apply.Import(filepath.Join(memberDir, "db"), backend.Options{}, src)
	if err != nil {
		return err
	}
	lg.Info("restored snapshot", zap.String("path", path), zap.String("data-dir", dataDir),
		zap.Int64("revisions", stats.Revisions), zap.Int64("leases", stats.Leases), zap.Int64("revision", stats.Revision))
	return nil
}

func walDirOf(memberDir, walDir string) string {
	if walDir != "" {
		return walDir
	}
	return filepath.Join(memberDir, "wal")
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func emptyOrMissing(dir string) bool {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && len(entries) == 0
}

// snapshotSource reads an etcd snapshot for apply.Import. etcdutl's
// --bump-revision is a compaction mark past the last revision (the
// store's revision starts there), as etcd's restore makes it; the
// revision key etcdutl writes for it (with an empty value) in a file it
// bumped is skipped for the same reason.
type snapshotSource struct {
	r      *etcdsnap.Reader
	bump   int64
	latest int64
	lg     *zap.Logger
}

func (s *snapshotSource) Revisions(fn func(mvcc.Revision, bool, []byte) error) error {
	return s.r.Revisions(func(rev etcdsnap.Revision, kv []byte) error {
		s.latest = max(s.latest, rev.Main)
		if len(kv) == 0 {
			return nil
		}
		return fn(mvcc.Revision{Main: rev.Main, Sub: rev.Sub}, rev.Tombstone, kv)
	})
}

func (s *snapshotSource) Leases(fn func(lease.Record) error) error {
	return s.r.Leases(func(l etcdsnap.Lease) error {
		return fn(lease.Record{ID: l.ID, TTL: l.TTL, RemainingTTL: l.RemainingTTL})
	})
}

func (s *snapshotSource) Auth() (auth.State, error) {
	a, err := s.r.Auth()
	return auth.State{Enabled: a.Enabled, Revision: a.Revision, Users: a.Users, Roles: a.Roles}, err
}

func (s *snapshotSource) Alarms(fn func(uint64, pb.AlarmType) error) error {
	alarms, err := s.r.Alarms()
	if err != nil {
		return err
	}
	for _, a := range alarms {
		s.lg.Warn("restoring an alarm: writes are refused until it is cleared (etcdctl alarm disarm)",
			zap.String("member-id", membership.IDString(a.MemberID)), zap.String("alarm", a.Alarm.String()))
		if err := fn(a.MemberID, a.Alarm); err != nil {
			return err
		}
	}
	return nil
}

func (s *snapshotSource) Compaction() (scheduled, finished int64, err error) {
	m, err := s.r.Meta()
	if err != nil {
		return 0, 0, err
	}
	scheduled, finished = m.ScheduledCompact, m.FinishedCompact
	if s.bump > 0 {
		latest := max(s.latest, scheduled) + s.bump
		s.lg.Info("bumping latest revision", zap.Int64("latest-revision", s.latest), zap.Int64("bump-amount", s.bump),
			zap.Int64("new-latest-revision", latest))
		s.lg.Info("marking revision compacted", zap.Int64("revision", latest))
		scheduled = latest
	}
	return scheduled, finished, nil
}

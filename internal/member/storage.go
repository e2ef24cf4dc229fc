package member

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

// Config locates a member's storage and says how to create it on a first
// start.
type Config struct {
	// Name is the member's name in InitialCluster.
	Name string
	// Dir is the member directory (<data-dir>/member): wal/, snap/ and db/
	// are in it.
	Dir                 string
	InitialCluster      string
	InitialClusterToken string
	// InitialClusterState is "new" or "existing".
	InitialClusterState string
	// Join, for InitialClusterState "existing", asks the cluster's
	// members who this member is (see JoinInfo). It is called on a first
	// start, and on a restart whose WAL holds nothing yet.
	Join func() (JoinInfo, error)
	// Discover, if set, learns the founding members of a new cluster from
	// a discovery service (package discovery), given this member's ID and
	// its own --initial-cluster entries; it answers the whole
	// --initial-cluster, which replaces InitialCluster (then only this
	// member's entries). It is called on a first start, and on a restart
	// whose first start stopped before its founding write.
	Discover          func(memberID uint64, self string) (string, error)
	AdvertisePeerURLs []string
	// MinLeaseTTL is the shortest lease TTL granted, in seconds.
	MinLeaseTTL int64
	// FS holds the WAL and the snapshots; nil is the real disk.
	FS vfs.FS
	// WALSegmentBytes is the size WAL segments are preallocated to; 0 is
	// the WAL's default (64 MiB). The simulator's are small: a simulated
	// power cut copies whole files.
	WALSegmentBytes int64
	// DedicatedWALDir, when set, holds the WAL instead of Dir/wal (etcd's
	// --wal-dir).
	DedicatedWALDir string
	// MaxWALs is etcd's --max-wals: 0 keeps every WAL segment file.
	// Otherwise only the segments recovery may need are kept (see
	// walOptions), fewer than etcd's 5. Files go when a snapshot is taken.
	MaxWALs int
	// UnsafeNoFsync makes every fsync a no-op: the WAL's, the snapshots'
	// and the backend's (etcd's --unsafe-no-fsync). A power failure can
	// then lose acknowledged writes. For tests.
	UnsafeNoFsync bool
	// ForceNewCluster makes a member with existing data the only voter of
	// a one-member cluster (etcd's --force-new-cluster): see
	// forceNewCluster. It does nothing on a first start.
	ForceNewCluster bool
	// Backend configures the backend (its file system included).
	Backend backend.Options
	// Clock is what the lessor reads the time from; nil is time.Now.
	Clock  func() time.Time
	Logger *zap.Logger
	// Metrics are what the storage counts into; nil fields are metrics
	// of their own, not registered.
	Metrics Metrics
}

// Metrics are the storage's metrics: the store's and the lessor's, the
// WAL's and the snapshotter's.
type Metrics struct {
	Apply apply.Metrics
	WAL   *wal.Metrics
	Snap  *snap.Metrics
}

// WALDir, SnapDir and DBDir are where the WAL, the snapshots and the
// backend live.
func (c *Config) WALDir() string {
	if c.DedicatedWALDir != "" {
		return c.DedicatedWALDir
	}
	return filepath.Join(c.Dir, "wal")
}
func (c *Config) SnapDir() string { return filepath.Join(c.Dir, "snap") }
func (c *Config) DBDir() string   { return filepath.Join(c.Dir, "db") }

// Storage is what Open hands the member: everything opened, nothing
// started.
type Storage struct {
	MemberID  uint64
	ClusterID uint64
	WAL       *wal.WAL
	Snap      *snap.Snapshotter
	Raft      *raft.MemoryStorage
	Applier   *apply.Applier
	// Peers are the members known before anything is applied (the
	// founding ones on a first start).
	Peers []membership.Member
	// SnapIndex is the index of the snapshot recovered from (0 if none).
	SnapIndex uint64
	// ConfState is the configuration raft starts with: the latest in its
	// log, committed or not (see package raft), which the backend may not
	// have applied yet.
	ConfState raftpb.ConfState
}

// JoinInfo is what a member joining a running cluster learns from it:
// the cluster's ID, its own ID (given by `member add`) and the members.
type JoinInfo struct {
	ClusterID uint64
	MemberID  uint64
	Members   []membership.Member
}

// Close closes the WAL and the backend.
func (st *Storage) Close() error {
	var err error
	if st.WAL != nil {
		err = st.WAL.Close()
	}
	if st.Applier != nil {
		err = errors.Join(err, st.Applier.Close())
	}
	return err
}

// walOptions keep the segments recovery may need: those from the newest
// snapshot on, and one released segment, so that a damaged newest
// snapshot file can fall back to the one before it (see package wal).
// etcd keeps --max-wals segments (5: 320 MiB) whether anything needs them
// or not; Cairn keeps no more than that maximum and no more than it needs
// (#21: on 1M keys of 256 bytes, five segments were 80% of a member's
// data directory). --max-wals=0 keeps every segment, as etcd.
func walOptions(cfg Config) wal.Options {
	keep := 0
	if cfg.MaxWALs <= 0 {
		keep = math.MaxInt
	}
	return wal.Options{KeepReleased: 1, KeepSegments: keep, SegmentBytes: cfg.WALSegmentBytes, Logger: cfg.Logger, Metrics: cfg.Metrics.WAL}
}

// Open opens the member's storage, creating it on a first start. On an
// error it closes whatever it opened (the backend's lock, the WAL's
// files) before returning, so it can be called again.
func Open(cfg Config) (_ *Storage, err error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.FS == nil {
		cfg.FS = vfs.OS()
	}
	if cfg.UnsafeNoFsync {
		cfg.FS = vfs.NoSync(cfg.FS)
		// The backend's, and the applier's image files.
		cfg.Backend.FS = backend.NoSyncFS(cfg.Backend.FS)
	}
	fs := cfg.FS
	if err := vfs.MkdirAllDurable(fs, cfg.Dir); err != nil {
		return nil, fmt.Errorf("cannot access data directory: %w", err)
	}
	if err := checkWritable(fs, cfg.Dir); err != nil {
		return nil, fmt.Errorf("cannot access data directory: %w", err)
	}
	exists, err := wal.Exists(fs, cfg.WALDir())
	if err != nil {
		return nil, err
	}
	if !exists && cfg.DedicatedWALDir != "" {
		// etcd would start a new member over the old one's database;
		// the WAL was most likely left behind by mistake.
		def := filepath.Join(cfg.Dir, "wal")
		if other, err := wal.Exists(fs, def); err == nil && other {
			return nil, fmt.Errorf("--wal-dir=%s holds no WAL, but %s does: move the WAL to --wal-dir, "+
				"or start without --wal-dir", cfg.DedicatedWALDir, def)
		}
	}
	// st is not the named result: a "return nil, err" must not hide from
	// the cleanup what is open.
	st := &Storage{}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	if st.Snap, err = snap.New(fs, cfg.SnapDir(), cfg.Logger, cfg.Metrics.Snap); err != nil {
		return nil, err
	}
	if st.Applier, err = apply.Open(cfg.DBDir(), cfg.Backend, cfg.MinLeaseTTL, cfg.Metrics.Apply, cfg.Logger); err != nil {
		return nil, err
	}
	if cfg.Clock != nil {
		st.Applier.Lessor().SetClock(cfg.Clock)
	}
	st.Raft = raft.NewMemoryStorage()
	if exists {
		err = restart(cfg, fs, st)
	} else {
		err = bootstrapNew(cfg, fs, st)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

func checkWritable(fs vfs.FS, dir string) error {
	name := filepath.Join(dir, ".touch")
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	f.Close()
	return fs.Remove(name)
}

// bootstrapNew starts a member of a new cluster: its WAL begins with one
// committed AddVoter entry per founding member, carrying the member.
func bootstrapNew(cfg Config, fs vfs.FS, st *Storage) error {
	if ci := st.Applier.ConsistentIndex(); ci != 0 {
		return fmt.Errorf("the data directory %s has a database (consistent index %d) but no WAL: "+
			"refusing to start a new member over it", cfg.Dir, ci)
	}
	if cfg.InitialClusterState == "existing" {
		if cfg.Discover != nil {
			return errDiscoverExisting
		}
		return joinExisting(cfg, fs, st)
	}
	if err := discover(&cfg); err != nil {
		return err
	}
	members, self, err := foundingMembers(cfg)
	if err != nil {
		return err
	}
	st.MemberID = self.ID
	st.ClusterID = membership.ComputeClusterID(memberIDs(members))
	// The WAL is created first and empty; writeFounding fills it. A
	// crash in between leaves an empty WAL, which restart fills.
	w, err := wal.Create(fs, cfg.WALDir(), wal.Metadata{MemberID: st.MemberID, ClusterID: st.ClusterID}, walOptions(cfg))
	if err != nil {
		return err
	}
	st.WAL = w
	if err := writeFounding(cfg, st); err != nil {
		return err
	}
	// etcd's message and fields.
	cfg.Logger.Info("starting local member", zap.String("name", cfg.Name),
		zap.String("local-member-id", membership.IDString(st.MemberID)),
		zap.String("cluster-id", membership.IDString(st.ClusterID)))
	return nil
}

// joinExisting starts a member added to a running cluster: its WAL holds
// only the IDs the cluster gave it, and raft starts with no log and no
// configuration; the leader sends it the log, or a snapshot and its image.
func joinExisting(cfg Config, fs vfs.FS, st *Storage) error {
	if cfg.Join == nil {
		return errors.New("--initial-cluster-state=existing: no way to ask the cluster's members")
	}
	info, err := cfg.Join()
	if err != nil {
		return err
	}
	w, err := wal.Create(fs, cfg.WALDir(), wal.Metadata{MemberID: info.MemberID, ClusterID: info.ClusterID}, walOptions(cfg))
	if err != nil {
		return err
	}
	st.WAL = w
	st.MemberID, st.ClusterID = info.MemberID, info.ClusterID
	st.Peers = peersOf(info.Members, info.MemberID)
	cfg.Logger.Info("starting local member", zap.String("name", cfg.Name),
		zap.String("local-member-id", membership.IDString(st.MemberID)),
		zap.String("cluster-id", membership.IDString(st.ClusterID)), zap.String("initial-cluster-state", "existing"))
	return nil
}

// rejoin restarts a joining member whose WAL holds nothing yet: it asks
// the cluster again, which must still know it by the same IDs.
func rejoin(cfg Config, st *Storage) error {
	if cfg.Join == nil {
		return errors.New("the WAL of this joining member holds nothing yet: start it with --initial-cluster-state=existing")
	}
	info, err := cfg.Join()
	if err != nil {
		return err
	}
	if info.MemberID != st.MemberID || info.ClusterID != st.ClusterID {
		return fmt.Errorf("the WAL belongs to member %s of cluster %s, but the cluster now knows this member as %s of cluster %s: "+
			"remove the data directory %s and start again", membership.IDString(st.MemberID), membership.IDString(st.ClusterID),
			membership.IDString(info.MemberID), membership.IDString(info.ClusterID), cfg.Dir)
	}
	st.Peers = peersOf(info.Members, info.MemberID)
	return nil
}

func peersOf(members []membership.Member, self uint64) []membership.Member {
	var peers []membership.Member
	for _, m := range members {
		if m.ID != self {
			peers = append(peers, m)
		}
	}
	return peers
}

// foundingMembers reads --initial-cluster and finds this member in it.
func foundingMembers(cfg Config) ([]membership.Member, membership.Member, error) {
	members, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return nil, membership.Member{}, err
	}
	i := slices.IndexFunc(members, func(m membership.Member) bool { return m.Name == cfg.Name })
	if i < 0 {
		return nil, membership.Member{}, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", cfg.Name)
	}
	self := members[i]
	adv := slices.Clone(cfg.AdvertisePeerURLs)
	slices.Sort(adv)
	if !slices.Equal(adv, self.PeerURLs) {
		return nil, membership.Member{}, fmt.Errorf("--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s",
			cfg.Name, strings.Join(self.PeerURLs, ","), strings.Join(cfg.AdvertisePeerURLs, ","))
	}
	return members, self, nil
}

// errDiscoverExisting is a first start told both to join a running
// cluster and to found one through discovery, in etcd's words.
var errDiscoverExisting = errors.New("discovery URL should not be set when joining existing initial cluster")

// discover replaces cfg.InitialCluster, this member's entries alone, with
// the founding members cfg.Discover learns, when it is set.
func discover(cfg *Config) error {
	if cfg.Discover == nil {
		return nil
	}
	_, self, err := foundingMembers(*cfg)
	if err != nil {
		return err
	}
	entries := make([]string, len(self.PeerURLs))
	for i, u := range self.PeerURLs {
		entries[i] = self.Name + "=" + u
	}
	cfg.Logger.Info("Bootstrapping cluster using v3 discovery.")
	cluster, err := cfg.Discover(self.ID, strings.Join(entries, ","))
	if err != nil {
		return fmt.Errorf("failed to join discovery cluster (%w)", err)
	}
	cfg.InitialCluster = cluster
	return nil
}

func memberIDs(ms []membership.Member) []uint64 {
	ids := make([]uint64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// writeFounding writes the founding entries, one committed AddVoter per
// member carrying the member, into the (empty) WAL and raft storage.
func writeFounding(cfg Config, st *Storage) error {
	members, self, err := foundingMembers(cfg)
	if err != nil {
		return err
	}
	if self.ID != st.MemberID || membership.ComputeClusterID(memberIDs(members)) != st.ClusterID {
		return fmt.Errorf("the WAL belongs to member %s of cluster %s, but --initial-cluster and --initial-cluster-token "+
			"describe member %s of cluster %s", membership.IDString(st.MemberID), membership.IDString(st.ClusterID),
			membership.IDString(self.ID), membership.IDString(membership.ComputeClusterID(memberIDs(members))))
	}
	ccs := make([]raftpb.ConfChange, len(members))
	for i, m := range members {
		ccs[i] = raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: m.ID, Context: m.Marshal()}
	}
	if err := raft.BootstrapConfChanges(st.Raft, ccs); err != nil {
		return err
	}
	last, _ := st.Raft.LastIndex()
	ents, err := st.Raft.Entries(1, last+1, ^uint64(0))
	if err != nil {
		return err
	}
	st.Peers = members
	st.ConfState = confAfter(raftpb.ConfState{}, ents)
	return st.WAL.Save(st.Raft.HardState(), ents, true)
}

// restart recovers a member: the newest snapshot the WAL accepts, the
// backend (replaced by the snapshot's image if it is older), then the WAL
// after the snapshot.
func restart(cfg Config, fs vfs.FS, st *Storage) error {
	valid, err := wal.ValidSnapshots(fs, cfg.WALDir())
	if err != nil {
		return err
	}
	s, err := st.Snap.LoadNewestAvailable(func(m raftpb.SnapshotMetadata) bool {
		return slices.Contains(valid, wal.Snapshot{Index: m.Index, Term: m.Term})
	})
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return err
	}
	ci := st.Applier.ConsistentIndex()
	if !s.IsEmpty() && ci < s.Metadata.Index {
		// The member crashed while installing a snapshot from the
		// leader: its image is here (it is stored before the snapshot).
		cfg.Logger.Info("restoring the backend from the snapshot's image", zap.Uint64("snapshot-index", s.Metadata.Index),
			zap.Uint64("consistent-index", ci))
		rc, _, err := st.Snap.OpenDB(s.Metadata.Index)
		if err != nil {
			return fmt.Errorf("the backend (index %d) is older than the snapshot (index %d) and its image cannot be read: %w",
				ci, s.Metadata.Index, err)
		}
		err = st.Applier.Restore(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		ci = st.Applier.ConsistentIndex()
	}
	w, state, err := wal.Open(fs, cfg.WALDir(), wal.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term}, walOptions(cfg))
	if err != nil {
		var newest uint64
		for _, v := range valid {
			newest = max(newest, v.Index)
		}
		if newest > s.Metadata.Index {
			// The WAL's own error would not say why it was read from so
			// far back: the newer snapshot files are missing or damaged.
			return fmt.Errorf("no readable snapshot file in %s for the WAL's newest snapshot (index %d; damaged files "+
				"are set aside as .broken), and the WAL cannot be read from index %d without it: %w",
				cfg.SnapDir(), newest, s.Metadata.Index, err)
		}
		return err
	}
	st.WAL = w
	st.MemberID, st.ClusterID = state.Metadata.MemberID, state.Metadata.ClusterID
	st.SnapIndex = s.Metadata.Index
	if s.IsEmpty() && state.HardState.IsEmpty() && ci == 0 && len(state.Entries) == 0 && cfg.InitialClusterState == "existing" {
		// A joining member that stopped before the leader sent it
		// anything (a founding write is never empty).
		if cfg.Discover != nil {
			return errDiscoverExisting
		}
		return rejoin(cfg, st)
	}
	if s.IsEmpty() && state.HardState.IsEmpty() && ci == 0 {
		// No HardState: the first start stopped before its founding
		// write was whole (the entries and the HardState go in one
		// synced write; a crash can leave none, or a prefix of the
		// entries). Nothing was ever voted or acknowledged: write the
		// founding entries again, over whatever prefix is there.
		cfg.Logger.Warn("the WAL holds no complete founding write (the first start stopped part way); bootstrapping again",
			zap.Int("entries-found", len(state.Entries)))
		if err := discover(&cfg); err != nil {
			return err
		}
		return writeFounding(cfg, st)
	}
	if cfg.Discover != nil {
		// etcd's words.
		cfg.Logger.Warn("discovery token is ignored since cluster already initialized; valid logs are found",
			zap.String("wal-dir", cfg.WALDir()))
	}
	if !s.IsEmpty() {
		if err := st.Raft.ApplySnapshot(s); err != nil {
			return err
		}
	}
	hs := state.HardState
	last := s.Metadata.Index
	if n := len(state.Entries); n > 0 {
		last = state.Entries[n-1].Index
	}
	if ci > last {
		return fmt.Errorf("the backend has applied index %d but the WAL ends at %d: the WAL lost synced entries", ci, last)
	}
	// The backend holds only committed entries, but a commit index
	// that moved alone is written unsynced: it can be behind.
	hs.Commit = max(hs.Commit, ci, s.Metadata.Index)
	if cfg.ForceNewCluster {
		if hs, state.Entries, err = forceNewCluster(cfg, st, s.Metadata, hs, state.Entries); err != nil {
			return err
		}
	}
	st.Raft.SetHardState(hs)
	if err := st.Raft.Append(state.Entries); err != nil {
		return err
	}
	st.ConfState = confAfter(s.Metadata.ConfState, state.Entries)
	// The peers raft talks to: members still in the configuration (not
	// those a forced new cluster removes, which are applied later).
	for _, m := range st.Applier.Members() {
		if st.ConfState.IsVoter(m.ID) || st.ConfState.IsLearner(m.ID) {
			st.Peers = append(st.Peers, m)
		}
	}
	// etcd's message and fields, and more.
	cfg.Logger.Info("restarting local member", zap.String("name", cfg.Name),
		zap.String("cluster-id", membership.IDString(st.ClusterID)),
		zap.String("local-member-id", membership.IDString(st.MemberID)),
		zap.Uint64("commit-index", hs.Commit),
		zap.Uint64("snapshot-index", s.Metadata.Index), zap.Uint64("consistent-index", ci),
		zap.Uint64("last-index", last))
	return nil
}

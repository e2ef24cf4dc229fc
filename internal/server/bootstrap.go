package server

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

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

// storage is what bootstrap hands the server: everything opened, nothing
// started.
type storage struct {
	memberID  uint64
	clusterID uint64
	wal       *wal.WAL
	snap      *snap.Snapshotter
	raft      *raft.MemoryStorage
	applier   *apply.Applier
	// peers are the members known before anything is applied (the
	// founding ones on a first start).
	peers []membership.Member
	// snapIndex is the index of the snapshot recovered from (0 if none).
	snapIndex uint64
}

func (st *storage) close() {
	if st.wal != nil {
		st.wal.Close()
	}
	if st.applier != nil {
		st.applier.Close()
	}
}

// walOptions keep one released segment, so that a damaged newest snapshot
// file can fall back to the one before it (see package wal).
func walOptions(logger *zap.Logger) wal.Options {
	return wal.Options{KeepReleased: 1, Logger: logger}
}

// bootstrap opens the member's storage, creating it on a first start. On
// an error it closes whatever it opened (the backend's lock, the WAL's
// files) before returning, so it can be called again.
func bootstrap(cfg *Config) (_ *storage, err error) {
	fs := vfs.OS()
	if err := vfs.MkdirAllDurable(fs, cfg.memberDir()); err != nil {
		return nil, fmt.Errorf("cannot access data directory: %w", err)
	}
	if err := checkWritable(cfg.memberDir()); err != nil {
		return nil, fmt.Errorf("cannot access data directory: %w", err)
	}
	exists, err := wal.Exists(fs, cfg.walDir())
	if err != nil {
		return nil, err
	}
	// st is not the named result: a "return nil, err" must not hide from
	// the cleanup what is open.
	st := &storage{}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if st.snap, err = snap.New(fs, cfg.snapDir(), cfg.Logger); err != nil {
		return nil, err
	}
	if st.applier, err = apply.Open(cfg.dbDir(), backend.Options{Logger: cfg.Logger}, cfg.MinLeaseTTL(), cfg.Logger); err != nil {
		return nil, err
	}
	st.raft = raft.NewMemoryStorage()
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

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".touch")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// bootstrapNew starts a member of a new cluster: its WAL begins with one
// committed AddVoter entry per founding member, carrying the member.
func bootstrapNew(cfg *Config, fs vfs.FS, st *storage) error {
	if cfg.InitialClusterState == "existing" {
		return errors.New("--initial-cluster-state=existing joins a member added with `member add`, " +
			"which Cairn does not implement yet; start every founding member with --initial-cluster-state=new")
	}
	if ci := st.applier.ConsistentIndex(); ci != 0 {
		return fmt.Errorf("the data directory %s has a database (consistent index %d) but no WAL: "+
			"refusing to start a new member over it", cfg.DataDir, ci)
	}
	members, self, err := foundingMembers(cfg)
	if err != nil {
		return err
	}
	st.memberID = self.ID
	st.clusterID = membership.ComputeClusterID(memberIDs(members))
	// The WAL is created first and empty; writeFounding fills it. A
	// crash in between leaves an empty WAL, which restart fills.
	w, err := wal.Create(fs, cfg.walDir(), wal.Metadata{MemberID: st.memberID, ClusterID: st.clusterID}, walOptions(cfg.Logger))
	if err != nil {
		return err
	}
	st.wal = w
	if err := writeFounding(cfg, st); err != nil {
		return err
	}
	cfg.Logger.Info("started a new member", zap.String("name", cfg.Name),
		zap.String("member-id", membership.IDString(st.memberID)),
		zap.String("cluster-id", membership.IDString(st.clusterID)))
	return nil
}

// foundingMembers reads --initial-cluster and finds this member in it.
func foundingMembers(cfg *Config) ([]membership.Member, membership.Member, error) {
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

func memberIDs(ms []membership.Member) []uint64 {
	ids := make([]uint64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// writeFounding writes the founding entries, one committed AddVoter per
// member carrying the member, into the (empty) WAL and raft storage.
func writeFounding(cfg *Config, st *storage) error {
	members, self, err := foundingMembers(cfg)
	if err != nil {
		return err
	}
	if self.ID != st.memberID || membership.ComputeClusterID(memberIDs(members)) != st.clusterID {
		return fmt.Errorf("the WAL belongs to member %s of cluster %s, but --initial-cluster and --initial-cluster-token "+
			"describe member %s of cluster %s", membership.IDString(st.memberID), membership.IDString(st.clusterID),
			membership.IDString(self.ID), membership.IDString(membership.ComputeClusterID(memberIDs(members))))
	}
	ccs := make([]raftpb.ConfChange, len(members))
	for i, m := range members {
		ccs[i] = raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: m.ID, Context: m.Marshal()}
	}
	if err := raft.BootstrapConfChanges(st.raft, ccs); err != nil {
		return err
	}
	last, _ := st.raft.LastIndex()
	ents, err := st.raft.Entries(1, last+1, ^uint64(0))
	if err != nil {
		return err
	}
	st.peers = members
	return st.wal.Save(st.raft.HardState(), ents, true)
}

// restart recovers a member: the newest snapshot the WAL accepts, the
// backend (replaced by the snapshot's image if it is older), then the WAL
// after the snapshot.
func restart(cfg *Config, fs vfs.FS, st *storage) error {
	valid, err := wal.ValidSnapshots(fs, cfg.walDir())
	if err != nil {
		return err
	}
	s, err := st.snap.LoadNewestAvailable(func(m raftpb.SnapshotMetadata) bool {
		return slices.Contains(valid, wal.Snapshot{Index: m.Index, Term: m.Term})
	})
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return err
	}
	ci := st.applier.ConsistentIndex()
	if !s.IsEmpty() && ci < s.Metadata.Index {
		// The member crashed while installing a snapshot from the
		// leader: its image is here (it is stored before the snapshot).
		cfg.Logger.Info("restoring the backend from the snapshot's image", zap.Uint64("snapshot-index", s.Metadata.Index),
			zap.Uint64("consistent-index", ci))
		rc, _, err := st.snap.OpenDB(s.Metadata.Index)
		if err != nil {
			return fmt.Errorf("the backend (index %d) is older than the snapshot (index %d) and its image cannot be read: %w",
				ci, s.Metadata.Index, err)
		}
		err = st.applier.Restore(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		ci = st.applier.ConsistentIndex()
	}
	w, state, err := wal.Open(fs, cfg.walDir(), wal.Snapshot{Index: s.Metadata.Index, Term: s.Metadata.Term}, walOptions(cfg.Logger))
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
				cfg.snapDir(), newest, s.Metadata.Index, err)
		}
		return err
	}
	st.wal = w
	st.memberID, st.clusterID = state.Metadata.MemberID, state.Metadata.ClusterID
	st.snapIndex = s.Metadata.Index
	if s.IsEmpty() && state.HardState.IsEmpty() && ci == 0 {
		// No HardState: the first start stopped before its founding
		// write was whole (the entries and the HardState go in one
		// synced write; a crash can leave none, or a prefix of the
		// entries). Nothing was ever voted or acknowledged: write the
		// founding entries again, over whatever prefix is there.
		cfg.Logger.Warn("the WAL holds no complete founding write (the first start stopped part way); bootstrapping again",
			zap.Int("entries-found", len(state.Entries)))
		return writeFounding(cfg, st)
	}
	if !s.IsEmpty() {
		if err := st.raft.ApplySnapshot(s); err != nil {
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
	st.raft.SetHardState(hs)
	if err := st.raft.Append(state.Entries); err != nil {
		return err
	}
	st.peers = st.applier.Members()
	cfg.Logger.Info("restarted member", zap.String("name", cfg.Name),
		zap.String("member-id", membership.IDString(st.memberID)),
		zap.String("cluster-id", membership.IDString(st.clusterID)),
		zap.Uint64("snapshot-index", s.Metadata.Index), zap.Uint64("consistent-index", ci),
		zap.Uint64("last-index", last), zap.Uint64("commit", hs.Commit))
	return nil
}

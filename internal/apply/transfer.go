package apply

import (
	"errors"
	"fmt"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// A backup (Maintenance.Snapshot) is exported from a Checkpoint, so that
// it costs the live database nothing but the checkpoint's hard links, and
// imported (cairnutl snapshot restore) into a new member's empty backend.
// The file format is not this package's business: the caller's Sink and
// Source translate (to etcd's snapshot file, package etcdsnap).

// Sink receives the state of a checkpoint.
type Sink interface {
	PutRevision(rev mvcc.Revision, tombstone bool, kv []byte) error
	PutLease(lease.Record) error
	PutMember(membership.Member) error
	PutRemoved(id uint64) error
	PutAlarm(memberID uint64, t pb.AlarmType) error
	PutAuth(auth.State) error
}

// ExportMeta is what an export holds besides the data: the raft position
// and configuration of the checkpoint, and its compaction marks.
type ExportMeta struct {
	ConsistentIndex, Term             uint64
	ConfState                         raftpb.ConfState
	ScheduledCompact, FinishedCompact int64
}

// Export writes the checkpoint's history, leases, membership, alarms and
// auth state (users with their password hashes, roles) to sink, in that
// order, and returns its metadata. The checkpoint is opened as a
// database of its own (it may be written to: it is a throwaway copy).
func (a *Applier) Export(c *Checkpoint, sink Sink) (ExportMeta, error) {
	// The copy's pebble logs nothing, times nothing and writes nothing
	// (its log is replayed in memory, not flushed): it is only read.
	opts := a.opts
	opts.Logger, opts.CommitSeconds, opts.ReadOnly = nil, nil, true
	be, err := backend.Open(c.fs.PathJoin(c.dir, "db"), opts)
	if err != nil {
		return ExportMeta{}, err
	}
	defer be.Close()
	view := be.NewReadView()
	defer view.Close()
	meta := ExportMeta{ConfState: c.Metadata.ConfState}
	meta.ConsistentIndex, meta.Term = be.ConsistentIndex()
	if meta.ConsistentIndex != c.Metadata.Index {
		return ExportMeta{}, fmt.Errorf("apply: export: checkpoint at index %d holds index %d", c.Metadata.Index, meta.ConsistentIndex)
	}
	if meta.ScheduledCompact, meta.FinishedCompact, err = mvcc.Compaction(view); err != nil {
		return ExportMeta{}, err
	}
	if err := mvcc.ScanHistory(view, sink.PutRevision); err != nil {
		return ExportMeta{}, err
	}
	var sinkErr error
	err = view.Scan([]byte{lease.Prefix}, []byte{lease.Prefix + 1}, func(k, v []byte) bool {
		var r lease.Record
		if r, sinkErr = lease.DecodeRecord(k, v); sinkErr == nil {
			sinkErr = sink.PutLease(r)
		}
		return sinkErr == nil
	})
	if err = errors.Join(err, sinkErr); err != nil {
		return ExportMeta{}, err
	}
	err = view.Scan(memberPrefix, prefixEnd(memberPrefix), func(_, v []byte) bool {
		var m membership.Member
		if sinkErr = m.Unmarshal(v); sinkErr == nil {
			sinkErr = sink.PutMember(m)
		}
		return sinkErr == nil
	})
	if err = errors.Join(err, sinkErr); err != nil {
		return ExportMeta{}, err
	}
	err = view.Scan(removedPrefix, prefixEnd(removedPrefix), func(k, _ []byte) bool {
		var id uint64
		if id, sinkErr = strconv.ParseUint(string(k[len(removedPrefix):]), 16, 64); sinkErr == nil {
			sinkErr = sink.PutRemoved(id)
		}
		return sinkErr == nil
	})
	if err = errors.Join(err, sinkErr); err != nil {
		return ExportMeta{}, err
	}
	alarms, err := loadAlarms(view)
	if err != nil {
		return ExportMeta{}, err
	}
	for _, am := range alarmsLocked(alarms, pb.AlarmType_NONE) {
		if err := sink.PutAlarm(am.MemberID, am.Alarm); err != nil {
			return ExportMeta{}, err
		}
	}
	st, err := loadAuth(view)
	if err != nil {
		return ExportMeta{}, err
	}
	if err := sink.PutAuth(st); err != nil {
		return ExportMeta{}, err
	}
	return meta, nil
}

// Source is what Import reads: a store's history, leases, alarms and auth
// state from elsewhere (a restored cluster is as protected as the one
// backed up). Membership is not imported: a restored member starts a new
// cluster from its own --initial-cluster, as etcdutl's restore does. The
// alarms are, as etcdutl keeps them: a backup taken while NOSPACE was
// raised restores refusing writes until `alarm disarm`.
type Source interface {
	Revisions(fn func(rev mvcc.Revision, tombstone bool, kv []byte) error) error
	Leases(fn func(lease.Record) error) error
	Alarms(fn func(memberID uint64, t pb.AlarmType) error) error
	// Auth is the auth state: enabled or not, users, roles.
	Auth() (auth.State, error)
	// Compaction is the last compaction scheduled and finished (0: none).
	Compaction() (scheduled, finished int64, err error)
}

// ImportStats counts what Import wrote.
type ImportStats struct {
	Revisions, Leases int64
	// Revision is the store's revision after the import.
	Revision int64
}

// Import creates a backend in dir (which must hold none) with the
// history and leases of src, and no raft index: the member bootstrapped
// on it applies its founding entries over the imported store. The
// backend is synced and closed on return.
func Import(dir string, opts backend.Options, src Source) (ImportStats, error) {
	var st ImportStats
	be, err := backend.Open(dir, opts)
	if err != nil {
		return st, err
	}
	defer be.Close()
	if ci, _ := be.ConsistentIndex(); ci != 0 {
		return st, fmt.Errorf("apply: import: %s holds a database at index %d", dir, ci)
	}
	im, err := mvcc.NewImporter(be)
	if err != nil {
		return st, err
	}
	var last int64
	if err := src.Revisions(func(rev mvcc.Revision, tombstone bool, kv []byte) error {
		last = rev.Main
		return im.Put(rev, tombstone, kv)
	}); err != nil {
		return st, err
	}
	scheduled, finished, err := src.Compaction()
	if err != nil {
		return st, err
	}
	if err := im.Finish(scheduled, finished); err != nil {
		return st, err
	}
	batch := be.NewBatch()
	defer batch.Close()
	if err := src.Leases(func(r lease.Record) error {
		if r.ID == 0 || r.TTL <= 0 {
			return fmt.Errorf("apply: import: lease %x with TTL %d", r.ID, r.TTL)
		}
		batch.Set(lease.Key(r.ID), r.Encode())
		st.Leases++
		return nil
	}); err != nil {
		return st, err
	}
	if err := src.Alarms(func(id uint64, t pb.AlarmType) error {
		if t != pb.AlarmType_NOSPACE && t != pb.AlarmType_CORRUPT {
			return fmt.Errorf("apply: import: alarm %v of member %x", t, id)
		}
		batch.Set(alarmKey(id, t), nil)
		return nil
	}); err != nil {
		return st, err
	}
	ast, err := src.Auth()
	if err != nil {
		return st, err
	}
	if err := auth.Write(ast, batch); err != nil {
		return st, err
	}
	if err := batch.CommitMaintenance(); err != nil {
		return st, err
	}
	if err := be.Sync(); err != nil {
		return st, err
	}
	st.Revisions, st.Revision = im.Revisions, max(last, scheduled, 1)
	return st, nil
}

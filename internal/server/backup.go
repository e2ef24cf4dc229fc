package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/etcdsnap"
	"github.com/cairn-db/cairn/internal/lease"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/version"
)

// A backup (Maintenance.Snapshot) is etcd's snapshot file: a bbolt
// database in etcd's layout (package etcdsnap), so that stock etcdutl
// reads and restores it and cairnutl restores etcd's. It is made from a
// checkpoint of the backend (hard links: reads and writes go on), written
// to a file beside the database, handed to the caller to stream, and
// removed: memory stays bounded whatever the size, and the disk holds one
// more copy of the data while a backup runs.

// BackupFile is a backup ready to send.
type BackupFile struct {
	*os.File
	Size int64
	// StorageVersion is the snapshot's storage version (etcd sends it
	// with every response of the stream).
	StorageVersion string
	// Revision and Index are the store's revision and the raft index the
	// backup holds.
	Revision int64
	Index    uint64
}

// Backup writes a backup of this member's applied state and calls send
// with it; the file is removed when send returns.
func (s *Server) Backup(ctx context.Context, send func(*BackupFile) error) error {
	start := time.Now()
	cp, err := s.applier.Checkpoint()
	if err != nil {
		return fmt.Errorf("backup: checkpoint: %w", err)
	}
	path := filepath.Join(s.cfg.memberDir(), fmt.Sprintf("backup-%d-%d.db.tmp", cp.Metadata.Index, s.backups.Add(1)))
	// A leftover of a crash is removed at start (removeStaleBackups).
	w, err := etcdsnap.Create(path)
	if err != nil {
		cp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	sink := &backupSink{ctx: ctx, w: w}
	meta, err := s.applier.Export(cp, sink)
	// The checkpoint is not needed once exported: its files (hard links)
	// go before the stream starts.
	if cerr := cp.Close(); cerr != nil {
		s.logger.Warn("removing a backup's checkpoint", zap.Error(cerr))
	}
	if err == nil {
		err = w.Finish(etcdsnap.Meta{
			ConsistentIndex:  meta.ConsistentIndex,
			Term:             meta.Term,
			ConfState:        meta.ConfState,
			ScheduledCompact: meta.ScheduledCompact,
			FinishedCompact:  meta.FinishedCompact,
			StorageVersion:   version.Storage,
			ClusterVersion:   version.Cluster,
		})
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	rev := max(sink.last, meta.ScheduledCompact, 1)
	// etcd's lines, with what Cairn adds: the export's index, revision
	// and time.
	s.logger.Info("sending database snapshot to client", zap.Int64("total-bytes", info.Size()),
		zap.String("storage-version", version.Storage), zap.Uint64("index", meta.ConsistentIndex),
		zap.Int64("revision", rev), zap.Duration("export-took", time.Since(start)))
	err = send(&BackupFile{File: f, Size: info.Size(), StorageVersion: version.Storage, Revision: rev, Index: meta.ConsistentIndex})
	if err != nil {
		s.logger.Warn("failed to send database snapshot to client", zap.Error(err))
		return err
	}
	s.logger.Info("successfully sent database snapshot to client", zap.Int64("total-bytes", info.Size()),
		zap.Duration("took", time.Since(start)), zap.String("storage-version", version.Storage))
	return nil
}

// removeStaleBackups removes backup files a crash left behind.
func (s *Server) removeStaleBackups() {
	names, _ := filepath.Glob(filepath.Join(s.cfg.memberDir(), "backup-*.db.tmp"))
	for _, name := range names {
		if err := os.Remove(name); err != nil {
			s.logger.Warn("removing a stale backup file", zap.String("path", name), zap.Error(err))
		}
	}
}

// backupSink writes an export into an etcd snapshot file, giving up when
// the client has gone.
type backupSink struct {
	ctx       context.Context
	w         *etcdsnap.Writer
	revisions int64
	last      int64
}

func (b *backupSink) PutRevision(rev mvcc.Revision, tombstone bool, kv []byte) error {
	b.revisions++
	b.last = rev.Main
	if b.revisions%4096 == 0 {
		if err := b.ctx.Err(); err != nil {
			return err
		}
	}
	return b.w.PutRevision(etcdsnap.Revision{Main: rev.Main, Sub: rev.Sub, Tombstone: tombstone}, kv)
}

func (b *backupSink) PutLease(r lease.Record) error {
	return b.w.PutLease(etcdsnap.Lease{ID: r.ID, TTL: r.TTL, RemainingTTL: r.RemainingTTL})
}

func (b *backupSink) PutMember(m membership.Member) error { return b.w.PutMember(m) }
func (b *backupSink) PutRemoved(id uint64) error          { return b.w.PutRemoved(id) }
func (b *backupSink) PutAuth(st auth.State) error {
	if err := b.w.PutAuth(st.Enabled, st.Revision); err != nil {
		return err
	}
	for _, u := range st.Users {
		if err := b.w.PutUser(u); err != nil {
			return err
		}
	}
	for _, r := range st.Roles {
		if err := b.w.PutRole(r); err != nil {
			return err
		}
	}
	return nil
}

func (b *backupSink) PutAlarm(id uint64, t pb.AlarmType) error {
	return b.w.PutAlarm(etcdsnap.Alarm{MemberID: id, Alarm: t})
}

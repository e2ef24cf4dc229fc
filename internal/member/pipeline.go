package member

import (
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/snap"
)

// Pipeline applies what the raft loop hands over, in order: a snapshot's
// image first, then the committed entries, each exactly once; and it has a
// snapshot taken every SnapshotCount entries (or SnapshotBytes of entry
// data, if sooner). It starts no goroutine and
// is not safe for concurrent use: the server's apply goroutine calls it,
// and the member simulator calls it from its scheduler.
//
// A snapshot at index i needs the backend durable up to i first (the WAL
// before i is released), which costs a flush of the memtables (up to
// 4 x 32 MiB). Applying does not wait for it: Apply starts the flush and
// notes the snapshot as pending (index, configuration), and the snapshot
// is taken once the flush is done (FinishSnapshot; the server calls it
// when SnapshotFlushed fires). A flush still under way when the next
// snapshot falls due is waited for: the WAL does not grow without bound
// behind a slow disk.
type Pipeline struct {
	applier *apply.Applier
	snaps   *snap.Snapshotter
	cfg     PipelineConfig

	// snapIndex is the index of the last snapshot taken or installed.
	snapIndex uint64
	// pending is the snapshot whose flush is under way, nil if none.
	// Invariant: pending.index > snapIndex.
	pending *pendingSnapshot
	// bytes is the entry data applied since the last snapshot started
	// (or was installed): SnapshotBytes of it make a snapshot due.
	bytes uint64
}

// pendingSnapshot is a snapshot waiting for the flush that makes the
// backend durable up to its index.
type pendingSnapshot struct {
	index uint64
	cs    raftpb.ConfState
	flush *backend.Flush
}

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// SnapshotCount is how many applied entries trigger a snapshot.
	SnapshotCount uint64
	// SnapshotBytes, if not zero, also triggers one once the entries
	// applied since the last hold that many bytes of data: the raft log
	// held in memory until a snapshot cuts it stays bounded with large
	// values (10,000 entries of 1 MiB would be 10 GiB).
	SnapshotBytes uint64
	// TakeSnapshot records a snapshot at index with configuration cs (the
	// raft loop's TakeSnapshot). The pipeline makes the backend durable
	// up to index first.
	TakeSnapshot func(index uint64, cs raftpb.ConfState) error
	// Applied is told of each entry applied (not of those the backend
	// already held), with its result and how long the backend took.
	Applied func(e raftpb.Entry, res apply.Result, took time.Duration)
	// Proposed, if set, returns the request of a normal entry that this
	// member proposed and still waits for, as the proposer built it
	// (see apply.Applier.ApplyProposed), or nil: the entry is decoded.
	Proposed func(e raftpb.Entry) *pb.InternalRaftRequest
	// MembersChanged is called after a conf change or a restored image
	// may have changed the members.
	MembersChanged func()
	// Logger hears of installed snapshots; nil discards.
	Logger *zap.Logger
}

// NewPipeline returns a pipeline over st's applier and snapshots.
func NewPipeline(st *Storage, cfg PipelineConfig) *Pipeline {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Pipeline{applier: st.Applier, snaps: st.Snap, cfg: cfg, snapIndex: st.SnapIndex}
}

// SnapIndex is the index of the last snapshot taken or installed.
func (p *Pipeline) SnapIndex() uint64 { return p.snapIndex }

// Apply applies ta and returns the applied index after it (the consistent
// index). An error is fatal: the member must stop.
func (p *Pipeline) Apply(ta raftnode.ToApply) (uint64, error) {
	if !ta.Snapshot.IsEmpty() {
		if err := p.installSnapshot(ta.Snapshot); err != nil {
			return 0, err
		}
	}
	var last uint64
	done, err := p.applier.ApplyEntries(ta.Entries, p.cfg.Proposed)
	for _, d := range done {
		last = d.Entry.Index
		p.bytes += uint64(len(d.Entry.Data))
		if d.Applied && p.cfg.Applied != nil {
			p.cfg.Applied(d.Entry, d.Result, d.Took)
		}
		if d.Entry.Type == raftpb.EntryConfChange && p.cfg.MembersChanged != nil {
			p.cfg.MembersChanged()
		}
	}
	if err != nil {
		return 0, err
	}
	if err := p.maybeSnapshot(last); err != nil {
		return 0, err
	}
	return p.applier.ConsistentIndex(), nil
}

// maybeSnapshot finishes the pending snapshot if its flush is done (or
// waits for it if another is due), and starts one if due. A snapshot
// started here is never finished in the same call, so that the member
// simulator, which finishes it after each Apply, sees the same order
// whatever pebble's timing.
func (p *Pipeline) maybeSnapshot(last uint64) error {
	if s := p.pending; s != nil {
		select {
		case <-s.flush.Done():
		default:
			if last < s.index+p.cfg.SnapshotCount && !p.bytesDue() {
				return nil
			}
		}
		if err := p.FinishSnapshot(true); err != nil {
			return err
		}
	}
	if p.pending == nil && last > 0 && (last-p.snapIndex >= p.cfg.SnapshotCount || p.bytesDue()) {
		p.pending = &pendingSnapshot{index: last, cs: p.applier.ConfState(), flush: p.applier.SyncAsync()}
		p.bytes = 0
	}
	return nil
}

// bytesDue reports whether the entry data applied since the last snapshot
// started makes another due.
func (p *Pipeline) bytesDue() bool {
	return p.cfg.SnapshotBytes > 0 && p.bytes >= p.cfg.SnapshotBytes
}

// SnapshotFlushed is closed when the pending snapshot's flush is done,
// and nil (never ready) when no snapshot is pending: a select on it calls
// FinishSnapshot.
func (p *Pipeline) SnapshotFlushed() <-chan struct{} {
	if p.pending == nil {
		return nil
	}
	return p.pending.flush.Done()
}

// FinishSnapshot takes the pending snapshot once its flush is done: if wait,
// after waiting for the flush; if not, only if the flush is done already.
// A flush that failed is fatal, as a failed Sync was; one given up because
// the backend closed (the member is stopping) leaves the WAL as it was.
func (p *Pipeline) FinishSnapshot(wait bool) error {
	s := p.pending
	if s == nil {
		return nil
	}
	if !wait {
		select {
		case <-s.flush.Done():
		default:
			return nil
		}
	}
	p.pending = nil
	if err := s.flush.Err(); err != nil {
		if errors.Is(err, backend.ErrClosed) {
			return nil
		}
		return fmt.Errorf("syncing the backend for a snapshot: %w", err)
	}
	err := p.cfg.TakeSnapshot(s.index, s.cs)
	switch {
	case err == nil, errors.Is(err, raft.ErrSnapOutOfDate):
		p.snapIndex = max(p.snapIndex, s.index)
		return nil
	case errors.Is(err, raftnode.ErrStopped):
		return nil
	}
	return err
}

// installSnapshot replaces the backend with the snapshot's image, unless
// the backend already holds at least as much. The image was saved before
// raft saw the snapshot (see transport).
func (p *Pipeline) installSnapshot(snapshot raftpb.Snapshot) error {
	index := snapshot.Metadata.Index
	// A pending snapshot is older than the leader's (raft sends one only
	// past what this member has), and the restore closes the backend
	// its flush was making durable.
	p.pending = nil
	p.bytes = 0
	if ci := p.applier.ConsistentIndex(); ci < index {
		p.cfg.Logger.Info("applying snapshot", zap.Uint64("current-applied-index", ci),
			zap.Uint64("incoming-leader-snapshot-index", index), zap.Uint64("incoming-leader-snapshot-term", snapshot.Metadata.Term))
		rc, _, err := p.snaps.OpenDB(index)
		if err != nil {
			return fmt.Errorf("opening the image of snapshot %d: %w", index, err)
		}
		err = p.applier.Restore(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restoring snapshot %d: %w", index, err)
		}
		if p.cfg.MembersChanged != nil {
			p.cfg.MembersChanged()
		}
		// etcd's words, which etcd's tests wait for.
		p.cfg.Logger.Info("applied snapshot", zap.Uint64("current-snapshot-index", p.snapIndex),
			zap.Uint64("current-applied-index", index),
			zap.Uint64("incoming-leader-snapshot-index", index), zap.Uint64("incoming-leader-snapshot-term", snapshot.Metadata.Term))
	}
	p.snapIndex = index
	return nil
}

package member

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
)

// Images serves and stores snapshot images (the transport's Snapshots):
// images are kept by the snapshotter, keyed by the index of the state they
// hold. Safe for concurrent use.
type Images struct {
	applier *apply.Applier
	snaps   *snap.Snapshotter
	// snapshotSeconds observes how long making an image to send takes
	// (etcd's etcd_disk_backend_snapshot_duration_seconds); may be nil.
	snapshotSeconds prometheus.Observer

	mu struct {
		sync.Mutex
		// last is the metadata of the last image written to send.
		last raftpb.SnapshotMetadata
	}
}

// NewImages returns the image store of st; snapshotSeconds, if not nil,
// observes how long each image made to send takes.
func NewImages(st *Storage, snapshotSeconds prometheus.Observer) *Images {
	return &Images{applier: st.Applier, snaps: st.Snap, snapshotSeconds: snapshotSeconds}
}

// OpenImage returns an image holding at least the snapshot at index:
// the last one written if it is recent enough, else a new one from a
// checkpoint of the backend, whose index is usually past index. The
// metadata returned is the image's: a snapshot sent with it must carry it.
func (im *Images) OpenImage(index uint64) (io.ReadCloser, snap.ImageInfo, raftpb.SnapshotMetadata, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if md := im.mu.last; md.Index >= index {
		if rc, info, err := im.snaps.OpenDB(md.Index); err == nil {
			return rc, info, md, nil
		}
	}
	start := time.Now()
	cp, err := im.applier.Checkpoint()
	if err != nil {
		return nil, snap.ImageInfo{}, raftpb.SnapshotMetadata{}, err
	}
	defer cp.Close()
	md := cp.Metadata
	if md.Index < index {
		// This member installed a newer snapshot and has not restored
		// it yet: an image from it would not do. The transport reports
		// the failure and raft asks again.
		return nil, snap.ImageInfo{}, raftpb.SnapshotMetadata{}, fmt.Errorf(
			"the backend (index %d) is behind snapshot %d: no image to send yet", md.Index, index)
	}
	pr, pw := io.Pipe()
	written := make(chan struct{})
	// The writer ends when the pipe's reader is closed, below, at the
	// latest: it is waited for before this returns.
	go func() {
		defer close(written)
		_, err := cp.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	_, err = im.snaps.SaveDB(md.Index, pr, nil)
	pr.CloseWithError(err) // ends the writer if SaveDB stopped early
	<-written              // before cp.Close removes what it reads
	if err != nil {
		return nil, snap.ImageInfo{}, raftpb.SnapshotMetadata{}, fmt.Errorf("writing the image of snapshot %d: %w", md.Index, err)
	}
	if im.snapshotSeconds != nil {
		im.snapshotSeconds.Observe(time.Since(start).Seconds())
	}
	rc, info, err := im.snaps.OpenDB(md.Index)
	if err != nil {
		return nil, snap.ImageInfo{}, raftpb.SnapshotMetadata{}, err
	}
	im.mu.last = md
	return rc, info, md, nil
}

// SaveImage stores a received image for the snapshot at index, checked
// against want.
func (im *Images) SaveImage(index uint64, r io.Reader, want snap.ImageInfo) error {
	_, err := im.snaps.SaveDB(index, r, &want)
	return err
}

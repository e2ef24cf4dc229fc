package apply

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

const (
	restoreSuffix    = ".restore"
	oldSuffix        = ".old"
	checkpointSuffix = ".checkpoint"
	// maxImageFileBytes bounds one file of a received image, so a
	// corrupt header cannot make us write without end.
	maxImageFileBytes = 1 << 40
)

// Checkpoint is a consistent copy of the backend, ready to be written as
// an image; Close removes it.
type Checkpoint struct {
	fs  vfs.FS
	dir string
	// Metadata is the raft position and configuration the copy holds:
	// a snapshot sent with this image must carry it.
	Metadata raftpb.SnapshotMetadata
}

// Close removes the copy.
func (c *Checkpoint) Close() error { return c.fs.RemoveAll(c.dir) }

// Checkpoint copies the backend (hard links) as of the last entry applied.
func (a *Applier) Checkpoint() (*Checkpoint, error) {
	dir, err := a.newCheckpointDir()
	if err != nil {
		return nil, err
	}
	// The backend's checkpoint holds its own lock, so the index and term
	// are the copy's; a configuration change holds a.meta exclusively
	// from its commit to confState's change, so shared is enough to read
	// it with them (and reads and other applies go on meanwhile). Flushed
	// first without a.meta, which a member's or an alarm's entry waits
	// for, nor the backend's lock, which every commit takes: under them,
	// the backend's checkpoint flushes only what was committed since.
	// (a.Sync holds a.mu shared, which only a restore waits for, and
	// which keeps a.be from being swapped under the flush.)
	if err := a.Sync(); err != nil {
		a.fs.RemoveAll(dir)
		return nil, err
	}
	a.mu.RLock()
	a.meta.RLock()
	index, term, err := a.be.Checkpoint(a.fs.PathJoin(dir, "db"))
	cs := a.confState.Clone()
	a.meta.RUnlock()
	a.mu.RUnlock()
	if err != nil {
		a.fs.RemoveAll(dir)
		return nil, err
	}
	return &Checkpoint{fs: a.fs, dir: dir, Metadata: raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: cs}}, nil
}

// newCheckpointDir creates an empty directory beside the database for a
// checkpoint: db.checkpoint1, db.checkpoint2, ... (Open removes those a
// crash left behind; one still in the way is skipped).
func (a *Applier) newCheckpointDir() (string, error) {
	for {
		dir := fmt.Sprintf("%s%s%d", a.dir, checkpointSuffix, a.checkpoints.Add(1))
		_, err := a.fs.Stat(dir)
		if errors.Is(err, iofs.ErrNotExist) {
			return dir, a.fs.MkdirAll(dir, 0o700)
		}
		if err != nil {
			return "", err
		}
	}
}

// WriteTo writes the copy as an image (see the package doc) to w.
func (c *Checkpoint) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	if err := writeImage(c.fs, c.fs.PathJoin(c.dir, "db"), cw); err != nil {
		return cw.n, fmt.Errorf("apply: writing image: %w", err)
	}
	return cw.n, nil
}

// writeImage writes the files of dir to w as a tar stream, in name order
// (the same files make the same bytes). A pebble checkpoint is flat, and
// unpack takes nothing else, so a subdirectory is an error.
func writeImage(fs vfs.FS, dir string, w io.Writer) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	slices.Sort(names)
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := writeImageFile(tw, fs, dir, name); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeImageFile(tw *tar.Writer, fs vfs.FS, dir, name string) error {
	f, err := fs.Open(fs.PathJoin(dir, name), vfs.SequentialReadsOption)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("checkpoint holds a directory %q", name)
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: info.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore replaces the backend with the image read from r, after which
// the consistent index is the image's. Nothing else may use the applier
// meanwhile (reads wait).
func (a *Applier) Restore(r io.Reader) error {
	tmp := a.dir + restoreSuffix
	if err := a.fs.RemoveAll(tmp); err != nil {
		return err
	}
	if err := unpack(a.fs, r, tmp); err != nil {
		a.fs.RemoveAll(tmp)
		return fmt.Errorf("apply: unpacking image: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	oldCI, _ := a.be.ConsistentIndex()
	a.logger.Info("Recovering from snapshot backend", zap.Uint64("consistent-index", oldCI))
	a.watch.Detach()
	a.store.Close()
	if err := a.be.Close(); err != nil {
		return err
	}
	old := a.dir + oldSuffix
	if err := a.fs.RemoveAll(old); err != nil {
		return err
	}
	if err := a.fs.Rename(a.dir, old); err != nil {
		return err
	}
	if err := a.fs.Rename(tmp, a.dir); err != nil {
		return err
	}
	if err := syncDir(a.fs, a.fs.PathDir(a.dir)); err != nil {
		return err
	}
	if err := a.fs.RemoveAll(old); err != nil {
		a.logger.Warn("removing the replaced database", zap.Error(err))
	}
	if err := a.openLocked(); err != nil {
		return err
	}
	// Watchers go on from the new store: those it compacted past are
	// told so, the others catch up on what the image brought.
	a.watch.Attach(a.store)
	ci, term := a.be.ConsistentIndex()
	// etcd's words for opening the snapshot's database as the backend,
	// which etcd's tests wait for.
	a.logger.Info("applySnapshot: opened snapshot backend", zap.Uint64("consistent-index", ci), zap.Uint64("term", term))
	return nil
}

// unpack writes the files of a tar stream into dir, durably.
func unpack(fs vfs.FS, r io.Reader, dir string) error {
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Each name once: Create would silently replace an earlier file.
	seen := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg || name != fs.PathBase(name) || strings.HasPrefix(name, ".") || seen[name] ||
			h.Size < 0 || h.Size > maxImageFileBytes {
			return fmt.Errorf("unexpected entry %q in image", h.Name)
		}
		seen[name] = true
		f, err := fs.Create(fs.PathJoin(dir, name), vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, tr, h.Size)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return syncDir(fs, dir)
}

// recoverSwap finishes or undoes a Restore a crash interrupted.
func recoverSwap(fs vfs.FS, dir string) error {
	if err := fs.RemoveAll(dir + restoreSuffix); err != nil {
		return err
	}
	// Checkpoints a crash left behind. No parent yet: a first start.
	parent, leftover := fs.PathDir(dir), fs.PathBase(dir)+checkpointSuffix
	names, err := fs.List(parent)
	if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasPrefix(name, leftover) {
			if err := fs.RemoveAll(fs.PathJoin(parent, name)); err != nil {
				return err
			}
		}
	}
	old := dir + oldSuffix
	_, err = fs.Stat(dir)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		if _, err := fs.Stat(old); err == nil {
			if err := fs.Rename(old, dir); err != nil {
				return err
			}
			return syncDir(fs, parent)
		}
		return nil
	case err != nil:
		return err
	}
	return fs.RemoveAll(old)
}

// syncDir makes the names created, renamed and removed in dir durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

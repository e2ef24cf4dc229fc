package apply

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
	dir string
	// Metadata is the raft position and configuration the copy holds:
	// a snapshot sent with this image must carry it.
	Metadata raftpb.SnapshotMetadata
}

// Close removes the copy.
func (c *Checkpoint) Close() error { return os.RemoveAll(c.dir) }

// Checkpoint copies the backend (hard links) as of the last entry applied.
func (a *Applier) Checkpoint() (*Checkpoint, error) {
	dir, err := os.MkdirTemp(filepath.Dir(a.dir), filepath.Base(a.dir)+checkpointSuffix)
	if err != nil {
		return nil, err
	}
	// The backend's checkpoint holds its own lock, so the index and term
	// are the copy's; the configuration changes only under a.mu held
	// exclusively, so shared is enough to read it with them (and reads and
	// applies go on meanwhile).
	a.mu.RLock()
	index, term, err := a.be.Checkpoint(filepath.Join(dir, "db"))
	cs := a.confState.Clone()
	a.mu.RUnlock()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Checkpoint{dir: dir, Metadata: raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: cs}}, nil
}

// WriteTo writes the copy as an image (see the package doc) to w.
func (c *Checkpoint) WriteTo(w io.Writer) (int64, error) {
	cp := filepath.Join(c.dir, "db")
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	err := filepath.WalkDir(cp, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(cp, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o600, Size: info.Size(),
			Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return cw.n, fmt.Errorf("apply: writing image: %w", err)
	}
	return cw.n, nil
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
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := unpack(r, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("apply: unpacking image: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watch.Detach()
	a.store.Close()
	if err := a.be.Close(); err != nil {
		return err
	}
	old := a.dir + oldSuffix
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(a.dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, a.dir); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(a.dir)); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		a.logger.Warn("removing the replaced database", zap.Error(err))
	}
	if err := a.openLocked(); err != nil {
		return err
	}
	// Watchers go on from the new store: those it compacted past are
	// told so, the others catch up on what the image brought.
	a.watch.Attach(a.store)
	ci, term := a.be.ConsistentIndex()
	a.logger.Info("restored backend from snapshot image", zap.Uint64("consistent-index", ci), zap.Uint64("term", term))
	return nil
}

// unpack writes the files of a tar stream into dir, durably.
func unpack(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(h.Name)
		if h.Typeflag != tar.TypeReg || name != filepath.Base(name) || strings.HasPrefix(name, ".") ||
			h.Size < 0 || h.Size > maxImageFileBytes {
			return fmt.Errorf("unexpected entry %q in image", h.Name)
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
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
	return syncDir(dir)
}

// recoverSwap finishes or undoes a Restore a crash interrupted.
func recoverSwap(dir string) error {
	if err := os.RemoveAll(dir + restoreSuffix); err != nil {
		return err
	}
	// Checkpoints a crash left behind.
	leftovers, err := filepath.Glob(dir + checkpointSuffix + "*")
	if err != nil {
		return err
	}
	for _, l := range leftovers {
		if err := os.RemoveAll(l); err != nil {
			return err
		}
	}
	old := dir + oldSuffix
	_, err = os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, dir); err != nil {
				return err
			}
			return syncDir(filepath.Dir(dir))
		}
		return nil
	case err != nil:
		return err
	}
	return os.RemoveAll(old)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

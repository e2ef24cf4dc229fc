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
)

const (
	restoreSuffix    = ".restore"
	oldSuffix        = ".old"
	checkpointSuffix = ".checkpoint"
	// maxImageFileBytes bounds one file of a received image, so a
	// corrupt header cannot make us write without end.
	maxImageFileBytes = 1 << 40
)

// WriteImage writes an image of the backend (see the package doc) to w and
// returns the consistent index it holds.
func (a *Applier) WriteImage(w io.Writer) (uint64, error) {
	dir, err := os.MkdirTemp(filepath.Dir(a.dir), filepath.Base(a.dir)+checkpointSuffix)
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "db")
	a.mu.RLock()
	index, _, err := a.be.Checkpoint(cp)
	a.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(cp, func(path string, d fs.DirEntry, err error) error {
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
	if err != nil {
		return 0, fmt.Errorf("apply: writing image: %w", err)
	}
	return index, tw.Close()
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
	old := dir + oldSuffix
	_, err := os.Stat(dir)
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

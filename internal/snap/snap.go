package snap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

var (
	// ErrNoSnapshot means no readable snapshot file is there (or none that
	// the caller accepts).
	ErrNoSnapshot = errors.New("snap: no available snapshot")
	// ErrCorrupt is a file whose checksum, length or layout is wrong.
	ErrCorrupt = errors.New("snap: corrupt")
)

const (
	snapSuffix   = ".snap"
	dbSuffix     = ".snap.db"
	tmpSuffix    = ".tmp"
	brokenSuffix = ".broken"

	snapHeaderBytes = 20
	dbTrailerBytes  = 20
)

var (
	snapMagic  = [8]byte{'C', 'A', 'I', 'R', 'N', 'S', 'N', 1}
	dbMagic    = [8]byte{'C', 'A', 'I', 'R', 'N', 'D', 'B', 1}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Snapshotter reads and writes the snapshot files of one directory. It
// holds no state beyond its directory; callers serialize Save and Purge
// (the server does both from its one snapshot goroutine).
type Snapshotter struct {
	fs     vfs.FS
	dir    string
	logger *zap.Logger
}

// New opens (creating if needed) the snapshot directory dir and removes
// files that a crash left half written.
func New(fs vfs.FS, dir string, logger *zap.Logger) (*Snapshotter, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if err := vfs.MkdirAllDurable(fs, dir); err != nil {
		return nil, err
	}
	s := &Snapshotter{fs: fs, dir: dir, logger: logger}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	removed := false
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			if err := fs.Remove(filepath.Join(dir, n)); err != nil {
				return nil, err
			}
			removed = true
		}
	}
	if removed {
		if err := vfs.SyncDir(fs, dir); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Dir returns the directory.
func (s *Snapshotter) Dir() string { return s.dir }

func snapName(term, index uint64) string {
	return fmt.Sprintf("%016x-%016x%s", term, index, snapSuffix)
}

func parseSnapName(name string) (term, index uint64, ok bool) {
	if len(name) != len("0000000000000000-0000000000000000.snap") {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.snap", &term, &index); err != nil {
		return 0, 0, false
	}
	return term, index, snapName(term, index) == name
}

func dbName(index uint64) string { return fmt.Sprintf("%016x%s", index, dbSuffix) }

// DBPath returns where the image of the snapshot at index is kept.
func (s *Snapshotter) DBPath(index uint64) string { return filepath.Join(s.dir, dbName(index)) }

// Save writes snap durably. When Save returns nil, Load finds it after any
// crash.
func (s *Snapshotter) Save(snap raftpb.Snapshot) error {
	if snap.IsEmpty() {
		return errors.New("snap: saving an empty snapshot")
	}
	payload := snap.Marshal()
	buf := make([]byte, snapHeaderBytes, snapHeaderBytes+len(payload))
	copy(buf, snapMagic[:])
	binary.LittleEndian.PutUint32(buf[8:], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint64(buf[12:], uint64(len(payload)))
	buf = append(buf, payload...)
	name := snapName(snap.Metadata.Term, snap.Metadata.Index)
	return s.writeAtomic(name, func(w io.Writer) error {
		_, err := w.Write(buf)
		return err
	})
}

// writeAtomic makes the file name in s.dir hold what write writes, whole or
// not at all: a temporary file, synced, renamed, and the directory synced.
func (s *Snapshotter) writeAtomic(name string, write func(io.Writer) error) (err error) {
	path := filepath.Join(s.dir, name)
	tmp := path + tmpSuffix
	f, err := s.fs.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			// Best effort: New removes it anyway.
			s.fs.Remove(tmp)
			err = fmt.Errorf("snap: writing %s: %w", name, err)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.fs.Rename(tmp, path); err != nil {
		return err
	}
	return vfs.SyncDir(s.fs, s.dir)
}

// snapNames returns the .snap files, newest first.
func (s *Snapshotter) snapNames() ([]string, error) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, err
	}
	var snaps []string
	for _, n := range names {
		if _, _, ok := parseSnapName(n); ok {
			snaps = append(snaps, n)
		}
	}
	// Terms never decrease as indexes grow, so name order is log order.
	slices.Reverse(snaps)
	return snaps, nil
}

// Load returns the newest snapshot that reads back whole.
func (s *Snapshotter) Load() (raftpb.Snapshot, error) {
	return s.LoadNewestAvailable(func(raftpb.SnapshotMetadata) bool { return true })
}

// LoadNewestAvailable returns the newest snapshot that reads back whole and
// that available accepts; the server accepts those the WAL recorded (see
// wal.ValidSnapshots). Unreadable files are set aside as .broken on the way.
func (s *Snapshotter) LoadNewestAvailable(available func(raftpb.SnapshotMetadata) bool) (raftpb.Snapshot, error) {
	names, err := s.snapNames()
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	for _, name := range names {
		term, index, _ := parseSnapName(name)
		if !available(raftpb.SnapshotMetadata{Term: term, Index: index}) {
			continue
		}
		snap, err := s.read(name)
		if err == nil && (snap.Metadata.Term != term || snap.Metadata.Index != index) {
			err = fmt.Errorf("%w: holds the snapshot at term %d index %d", ErrCorrupt, snap.Metadata.Term, snap.Metadata.Index)
		}
		if err == nil {
			return snap, nil
		}
		if !errors.Is(err, ErrCorrupt) {
			return raftpb.Snapshot{}, fmt.Errorf("snap: reading %s: %w", name, err)
		}
		s.logger.Warn("snap: setting aside an unreadable snapshot; trying an older one",
			zap.String("file", filepath.Join(s.dir, name)), zap.Error(err))
		if err := s.fs.Rename(filepath.Join(s.dir, name), filepath.Join(s.dir, name+brokenSuffix)); err != nil {
			return raftpb.Snapshot{}, err
		}
		if err := vfs.SyncDir(s.fs, s.dir); err != nil {
			return raftpb.Snapshot{}, err
		}
	}
	return raftpb.Snapshot{}, ErrNoSnapshot
}

// read decodes one .snap file. Its ErrCorrupt errors say what is wrong.
func (s *Snapshotter) read(name string) (raftpb.Snapshot, error) {
	f, err := s.fs.Open(filepath.Join(s.dir, name))
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	if fi.Size() < snapHeaderBytes {
		return raftpb.Snapshot{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, fi.Size())
	}
	var hdr [snapHeaderBytes]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return raftpb.Snapshot{}, err
	}
	if [8]byte(hdr[:8]) != snapMagic {
		return raftpb.Snapshot{}, fmt.Errorf("%w: bad magic %q", ErrCorrupt, hdr[:8])
	}
	length := binary.LittleEndian.Uint64(hdr[12:])
	if length != uint64(fi.Size()-snapHeaderBytes) {
		return raftpb.Snapshot{}, fmt.Errorf("%w: header says %d bytes of payload, the file has %d", ErrCorrupt, length, fi.Size()-snapHeaderBytes)
	}
	payload := make([]byte, length)
	if _, err := f.ReadAt(payload, snapHeaderBytes); err != nil && err != io.EOF {
		return raftpb.Snapshot{}, err
	}
	if got, want := crc32.Checksum(payload, castagnoli), binary.LittleEndian.Uint32(hdr[8:]); got != want {
		return raftpb.Snapshot{}, fmt.Errorf("%w: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, want, got)
	}
	var snap raftpb.Snapshot
	if err := snap.Unmarshal(payload); err != nil {
		return raftpb.Snapshot{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return snap, nil
}

// SaveDB streams the image of the snapshot at index from r into its file,
// durably, and returns its size. Memory use does not grow with the image.
// If r fails, nothing is left behind.
func (s *Snapshotter) SaveDB(index uint64, r io.Reader) (int64, error) {
	var n int64
	err := s.writeAtomic(dbName(index), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		crc := crc32.New(castagnoli)
		var err error
		n, err = io.Copy(io.MultiWriter(bw, crc), r)
		if err != nil {
			return err
		}
		var trailer [dbTrailerBytes]byte
		binary.LittleEndian.PutUint32(trailer[0:], crc.Sum32())
		binary.LittleEndian.PutUint64(trailer[4:], uint64(n))
		copy(trailer[12:], dbMagic[:])
		if _, err := bw.Write(trailer[:]); err != nil {
			return err
		}
		return bw.Flush()
	})
	return n, err
}

// OpenDB opens the image of the snapshot at index, returning a reader of
// its bytes and their count. The reader checks them as they go: at the end
// it returns ErrCorrupt instead of io.EOF if they do not match the checksum.
func (s *Snapshotter) OpenDB(index uint64) (io.ReadCloser, int64, error) {
	path := s.DBPath(index)
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	size := fi.Size() - dbTrailerBytes
	if size < 0 {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s: %d bytes, shorter than the trailer", ErrCorrupt, path, fi.Size())
	}
	var trailer [dbTrailerBytes]byte
	if _, err := f.ReadAt(trailer[:], size); err != nil {
		f.Close()
		return nil, 0, err
	}
	if [8]byte(trailer[12:]) != dbMagic {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s: bad magic %q", ErrCorrupt, path, trailer[12:])
	}
	if n := binary.LittleEndian.Uint64(trailer[4:]); n != uint64(size) {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s: trailer says %d bytes, the file has %d", ErrCorrupt, path, n, size)
	}
	return &dbReader{
		f:    f,
		r:    bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20),
		crc:  crc32.New(castagnoli),
		want: binary.LittleEndian.Uint32(trailer[0:]),
		path: path,
	}, size, nil
}

// dbReader reads an image, checking its checksum when it reaches the end.
type dbReader struct {
	f    vfs.File
	r    io.Reader
	crc  hash.Hash32
	want uint32
	path string
}

func (d *dbReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.crc.Write(p[:n])
	if err == io.EOF {
		if got := d.crc.Sum32(); got != d.want {
			return n, fmt.Errorf("%w: %s: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, d.path, d.want, got)
		}
	}
	return n, err
}

func (d *dbReader) Close() error { return d.f.Close() }

// Purge removes all but the newest keep snapshots (keep >= 1), and the
// images older than the oldest snapshot kept. It returns the names removed.
func (s *Snapshotter) Purge(keep int) ([]string, error) {
	if keep < 1 {
		return nil, errors.New("snap: purge must keep at least one snapshot")
	}
	snaps, err := s.snapNames()
	if err != nil {
		return nil, err
	}
	if len(snaps) <= keep {
		return nil, nil
	}
	_, oldestKept, _ := parseSnapName(snaps[keep-1])
	var remove []string
	remove = append(remove, snaps[keep:]...)
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		var index uint64
		if len(n) == len(dbName(0)) && strings.HasSuffix(n, dbSuffix) {
			if _, err := fmt.Sscanf(n, "%016x.snap.db", &index); err == nil && dbName(index) == n && index < oldestKept {
				remove = append(remove, n)
			}
		}
	}
	for _, n := range remove {
		if err := s.fs.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if err := vfs.SyncDir(s.fs, s.dir); err != nil {
		return nil, err
	}
	s.logger.Info("snap: purged", zap.Strings("files", remove))
	return remove, nil
}

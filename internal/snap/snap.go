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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

var (
	// ErrNoSnapshot means no readable snapshot file is there (or none that
	// the caller accepts).
	ErrNoSnapshot = errors.New("snap: no available snapshot")
	// ErrCorrupt is a file whose checksum, length or layout is wrong, or an
	// image whose bytes do not match what was expected.
	ErrCorrupt = errors.New("snap: corrupt")
	// ErrVersion is a file written in a format this version does not know
	// (by a newer Cairn, say). It is not damage: it is never set aside.
	ErrVersion = errors.New("snap: unknown file format version")
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

// Snapshotter reads and writes the snapshot files of one directory. It is
// safe for concurrent use: Save, LoadNewestAvailable, Purge and the final
// rename of SaveDB are serialized by mu; SaveDB streams outside it, into a
// temporary file of its own, so any number may run at once.
type Snapshotter struct {
	fs      vfs.FS
	dir     string
	logger  *zap.Logger
	metrics *Metrics
	// tmpSeq numbers temporary files, so concurrent writers of one name
	// (a retried image transfer) never share one.
	tmpSeq atomic.Uint64

	mu sync.Mutex // guards the directory's final names
}

// ImageInfo identifies an image's bytes: their count and CRC-32C.
type ImageInfo struct {
	Size int64
	CRC  uint32
}

// New opens (creating if needed) the snapshot directory dir and removes
// files that a crash left half written. Saves are timed into m (nil:
// metrics of its own, not registered).
func New(fs vfs.FS, dir string, logger *zap.Logger, m *Metrics) (*Snapshotter, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if m == nil {
		m = NewMetrics()
	}
	if err := vfs.MkdirAllDurable(fs, dir); err != nil {
		return nil, err
	}
	s := &Snapshotter{fs: fs, dir: dir, logger: logger, metrics: m}
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

// dbPath is where the image of the snapshot at index is kept (with its
// trailer: read it through OpenDB).
func (s *Snapshotter) dbPath(index uint64) string { return filepath.Join(s.dir, dbName(index)) }

// Save writes snap durably. When Save returns nil, Load finds it after any
// crash.
func (s *Snapshotter) Save(snap raftpb.Snapshot) error {
	if snap.IsEmpty() {
		return errors.New("snap: saving an empty snapshot")
	}
	start := time.Now()
	payload := snap.Marshal()
	buf := make([]byte, snapHeaderBytes, snapHeaderBytes+len(payload))
	copy(buf, snapMagic[:])
	binary.LittleEndian.PutUint32(buf[8:], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint64(buf[12:], uint64(len(payload)))
	buf = append(buf, payload...)
	s.metrics.marshallingSeconds.Observe(time.Since(start).Seconds())
	name := snapName(snap.Metadata.Term, snap.Metadata.Index)
	err := s.writeAtomic(name, s.metrics.fsyncSeconds, func(w io.Writer) error {
		_, err := w.Write(buf)
		return err
	})
	if err == nil {
		s.metrics.saveSeconds.Observe(time.Since(start).Seconds())
	}
	return err
}

// writeAtomic makes the file name in s.dir hold what write writes, whole or
// not at all: a temporary file of its own, synced, renamed, and the
// directory synced, the fsync timed into fsyncSeconds. write runs without
// s.mu; the rename with it.
func (s *Snapshotter) writeAtomic(name string, fsyncSeconds prometheus.Histogram, write func(io.Writer) error) (err error) {
	path := filepath.Join(s.dir, name)
	tmp := fmt.Sprintf("%s.%d%s", path, s.tmpSeq.Add(1), tmpSuffix)
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
	start := time.Now()
	if err := f.Sync(); err != nil {
		return err
	}
	fsyncSeconds.Observe(time.Since(start).Seconds())
	if err := f.Close(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fs.Rename(tmp, path); err != nil {
		return err
	}
	return vfs.SyncDir(s.fs, s.dir)
}

// snapNames returns the .snap files among a listing of the directory,
// newest first.
func snapNames(names []string) []string {
	var snaps []string
	for _, n := range names {
		if _, _, ok := parseSnapName(n); ok {
			snaps = append(snaps, n)
		}
	}
	// Terms never decrease as indexes grow, so name order is log order.
	slices.Reverse(snaps)
	return snaps
}

// Load returns the newest snapshot that reads back whole, whether or not
// the WAL recorded it: for tools. The server restores with
// LoadNewestAvailable.
func (s *Snapshotter) Load() (raftpb.Snapshot, error) {
	return s.LoadNewestAvailable(func(raftpb.SnapshotMetadata) bool { return true })
}

// LoadNewestAvailable returns the newest snapshot that reads back whole and
// that available accepts; the server accepts those the WAL recorded (see
// wal.ValidSnapshots). Unreadable files are set aside as .broken on the way.
func (s *Snapshotter) LoadNewestAvailable(available func(raftpb.SnapshotMetadata) bool) (raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, err := s.fs.List(s.dir)
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	for _, name := range snapNames(names) {
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
			// An I/O error or a newer format says nothing about the file:
			// leave it, and refuse rather than fall back past it.
			return raftpb.Snapshot{}, fmt.Errorf("snap: reading %s: %w", filepath.Join(s.dir, name), err)
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
	if err := checkMagic(hdr[:8], snapMagic); err != nil {
		return raftpb.Snapshot{}, err
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

// checkMagic tells a file of this format (nil), of another version of it
// (ErrVersion), and anything else (ErrCorrupt).
func checkMagic(got []byte, want [8]byte) error {
	switch {
	case [8]byte(got) == want:
		return nil
	case string(got[:7]) == string(want[:7]) && got[7] > want[7]:
		return fmt.Errorf("%w: %d (this version reads %d)", ErrVersion, got[7], want[7])
	}
	return fmt.Errorf("%w: bad magic %q", ErrCorrupt, got)
}

// SaveDB streams the image of the snapshot at index from r into its file,
// durably, and returns what it holds. Memory use does not grow with the
// image. If want is not nil (the image comes from another member, which
// sent what OpenDB told it), the bytes must match it, or SaveDB fails with
// ErrCorrupt: a truncated or damaged transfer is never saved. If r fails or
// the bytes do not match, nothing is left behind.
func (s *Snapshotter) SaveDB(index uint64, r io.Reader, want *ImageInfo) (ImageInfo, error) {
	var info ImageInfo
	start := time.Now()
	err := s.writeAtomic(dbName(index), s.metrics.dbFsyncSeconds, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		crc := crc32.New(castagnoli)
		n, err := io.Copy(io.MultiWriter(bw, crc), r)
		if err != nil {
			return err
		}
		info = ImageInfo{Size: n, CRC: crc.Sum32()}
		if want != nil && info != *want {
			return fmt.Errorf("%w: received %d bytes with crc %08x, expected %d bytes with crc %08x",
				ErrCorrupt, info.Size, info.CRC, want.Size, want.CRC)
		}
		var trailer [dbTrailerBytes]byte
		binary.LittleEndian.PutUint32(trailer[0:], info.CRC)
		binary.LittleEndian.PutUint64(trailer[4:], uint64(info.Size))
		copy(trailer[12:], dbMagic[:])
		if _, err := bw.Write(trailer[:]); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err == nil {
		s.metrics.dbSaveSeconds.Observe(time.Since(start).Seconds())
	}
	return info, err
}

// OpenDB opens the image of the snapshot at index, returning a reader of
// its bytes and what they should be (for SaveDB on the receiving end). The
// reader checks them as it goes: with its last byte, it returns ErrCorrupt
// if they do not match, so a reader of exactly Size bytes sees it too; and
// Close returns that error again, for readers (io.CopyN) that drop it.
func (s *Snapshotter) OpenDB(index uint64) (io.ReadCloser, ImageInfo, error) {
	path := s.dbPath(index)
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, ImageInfo{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ImageInfo{}, err
	}
	size := fi.Size() - dbTrailerBytes
	if size < 0 {
		f.Close()
		return nil, ImageInfo{}, fmt.Errorf("%w: %s: %d bytes, shorter than the trailer", ErrCorrupt, path, fi.Size())
	}
	var trailer [dbTrailerBytes]byte
	if _, err := f.ReadAt(trailer[:], size); err != nil {
		f.Close()
		return nil, ImageInfo{}, err
	}
	if err := checkMagic(trailer[12:], dbMagic); err != nil {
		f.Close()
		return nil, ImageInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	if n := binary.LittleEndian.Uint64(trailer[4:]); n != uint64(size) {
		f.Close()
		return nil, ImageInfo{}, fmt.Errorf("%w: %s: trailer says %d bytes, the file has %d", ErrCorrupt, path, n, size)
	}
	info := ImageInfo{Size: size, CRC: binary.LittleEndian.Uint32(trailer[0:])}
	return &dbReader{
		f:    f,
		r:    bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20),
		crc:  crc32.New(castagnoli),
		want: info,
		path: path,
	}, info, nil
}

// dbReader reads an image, checking its checksum with its last byte.
type dbReader struct {
	f    vfs.File
	r    io.Reader
	crc  hash.Hash32
	read int64
	want ImageInfo
	path string
	err  error // a mismatch found, for Close to report again
}

func (d *dbReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.crc.Write(p[:n])
	d.read += int64(n)
	if d.read == d.want.Size && (n > 0 || err == io.EOF) {
		if got := d.crc.Sum32(); got != d.want.CRC {
			d.err = fmt.Errorf("%w: %s: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, d.path, d.want.CRC, got)
			return n, d.err
		}
	}
	return n, err
}

func (d *dbReader) Close() error {
	if err := d.f.Close(); err != nil {
		return err
	}
	return d.err
}

// Purge keeps the newest keep (>= 1) snapshots that available accepts
// (those the WAL recorded, as for LoadNewestAvailable), and whatever is
// newer than them (a snapshot or image being saved right now). It removes
// every older snapshot, image and set-aside .broken file, and returns the
// names removed. With no snapshot available it removes nothing.
func (s *Snapshotter) Purge(keep int, available func(raftpb.SnapshotMetadata) bool) ([]string, error) {
	if keep < 1 {
		return nil, errors.New("snap: purge must keep at least one snapshot")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, err
	}
	var floor uint64 // the oldest snapshot kept
	kept := 0
	for _, n := range snapNames(names) {
		term, index, _ := parseSnapName(n)
		if available(raftpb.SnapshotMetadata{Term: term, Index: index}) {
			floor = index
			if kept++; kept == keep {
				break
			}
		}
	}
	if kept == 0 {
		return nil, nil
	}
	var remove []string
	for _, n := range names {
		if index, ok := fileIndex(n); ok && index < floor {
			remove = append(remove, n)
		}
	}
	if len(remove) == 0 {
		return nil, nil
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

// fileIndex returns the snapshot index a snapshot, image or .broken file
// belongs to.
func fileIndex(name string) (uint64, bool) {
	if _, index, ok := parseSnapName(strings.TrimSuffix(name, brokenSuffix)); ok {
		return index, true
	}
	var index uint64
	if len(name) == len(dbName(0)) && strings.HasSuffix(name, dbSuffix) {
		if _, err := fmt.Sscanf(name, "%016x.snap.db", &index); err == nil && dbName(index) == name {
			return index, true
		}
	}
	return 0, false
}

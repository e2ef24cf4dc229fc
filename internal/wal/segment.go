package wal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/internal/vfs"
)

// segment names a segment file: <seq>-<index>.wal (see the package doc).
type segment struct {
	seq   uint64
	index uint64
}

func (s segment) name() string { return fmt.Sprintf("%016x-%016x.wal", s.seq, s.index) }

func parseSegmentName(name string) (segment, bool) {
	var s segment
	if len(name) != len("0000000000000000-0000000000000000.wal") || !strings.HasSuffix(name, ".wal") {
		return s, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &s.seq, &s.index); err != nil {
		return s, false
	}
	return s, s.name() == name
}

// listSegments returns dir's segments in order, checking that their
// sequence numbers are consecutive. (Their indexes may decrease: a log
// truncated by a new leader is cut at a lower index.) A missing directory
// holds none.
func listSegments(fs vfs.FS, dir string) ([]segment, error) {
	names, err := fs.List(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var segs []segment
	for _, n := range names {
		if s, ok := parseSegmentName(n); ok {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, fmt.Errorf("%w: %s: segment %s is missing before %s", ErrCorrupt, dir,
				segment{seq: segs[i-1].seq + 1}.name()[:16], segs[i].name())
		}
	}
	return segs, nil
}

// removeTemps deletes segments that a crash left half-made. They were never
// renamed into place, so nothing in them was acknowledged.
func removeTemps(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	removed := false
	for _, n := range names {
		if strings.HasSuffix(n, ".wal.tmp") {
			if err := fs.Remove(filepath.Join(dir, n)); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed {
		return vfs.SyncDir(fs, dir)
	}
	return nil
}

// scanEnd is where reading stopped in the last segment.
type scanEnd struct {
	offset int64  // after the last valid record
	crc    uint32 // the chain's value there
	// dropped says why bytes after offset are being dropped (a torn
	// record, or non-zero bytes after the end), or is nil if there are
	// none.
	dropped error
}

// errStopScan, returned by a visit function, stops scan without error.
var errStopScan = errors.New("stop scan")

// scan reads the records of segs in order, checking each segment's header
// (a crc record, then a metadata record) and the chain across segments, and
// calls visit with every record but the crc records. A torn record is
// tolerated at the end of the last segment only. If checkTail is set, scan
// also reads the rest of the last segment after its records, to report
// non-zero bytes there (in end.dropped).
func scan(fs vfs.FS, dir string, segs []segment, checkTail bool, visit func(segment, record) error) (scanEnd, error) {
	var (
		end   scanEnd
		chain uint32
	)
	for i, s := range segs {
		path := filepath.Join(dir, s.name())
		last := i == len(segs)-1
		off, stopped, err := scanSegment(fs, path, s, i == 0, last, last && checkTail, &chain, &end, visit)
		if err != nil {
			return end, fmt.Errorf("%s at offset %d: %w", path, off, err)
		}
		if stopped {
			return end, nil
		}
		end.offset, end.crc = off, chain
	}
	return end, nil
}

// scanSegment reads one segment for scan, continuing the chain. On error
// it returns the offset of the record at fault.
func scanSegment(fs vfs.FS, path string, s segment, first, last, checkTail bool, chain *uint32, end *scanEnd,
	visit func(segment, record) error) (off int64, stopped bool, err error) {
	f, err := fs.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	rr := recordReader{r: f, size: fi.Size()}

	// The crc record seeds its own crc with 0 and carries the chain's value.
	rec, err := rr.read(0, 0)
	if err == nil && (rec.typ != crcType || len(rec.payload) != 4) {
		err = fmt.Errorf("%w: segment does not start with a crc record", ErrCorrupt)
	}
	if err != nil {
		if errors.Is(err, errTorn) || err == errEnd {
			// Segments are synced with their header before they are named.
			err = fmt.Errorf("%w: segment header: %v", ErrCorrupt, err)
		}
		return 0, false, err
	}
	seed := binary.LittleEndian.Uint32(rec.payload)
	if !first && seed != *chain {
		return 0, false, fmt.Errorf("%w: chain broken: the segment starts from %08x, the one before ended at %08x",
			ErrCorrupt, seed, *chain)
	}
	*chain = seed
	off = rec.next

	for n := 1; ; n++ {
		rec, err := rr.read(off, *chain)
		switch {
		case err == errEnd && n == 1:
			return off, false, fmt.Errorf("%w: segment header: no metadata record", ErrCorrupt)
		case err == errEnd && checkTail:
			zero, err := rr.zeroFrom(off)
			if err != nil {
				return off, false, err
			}
			if !zero {
				// Sectors of an unsynced write that reached the disk
				// when an earlier one did not; or a zeroed header.
				end.dropped = errors.New("non-zero bytes after the end of the records")
			}
			return off, false, nil
		case err == errEnd:
			return off, false, nil
		case errors.Is(err, errTorn) && last && n > 1:
			end.dropped = err
			return off, false, nil
		case errors.Is(err, errTorn):
			// Only the last segment can have an unsynced tail, and a
			// segment's header is synced before it is named.
			return off, false, fmt.Errorf("%w: %v", ErrCorrupt, err)
		case err != nil:
			return off, false, err
		case (n == 1) != (rec.typ == metadataType) || rec.typ == crcType:
			return off, false, fmt.Errorf("%w: %s record in place %d of the segment", ErrCorrupt, rec.typ, n+1)
		}
		if err := visit(s, rec); err != nil {
			if err == errStopScan {
				return off, true, nil
			}
			return off, false, err
		}
		*chain = rec.crc
		off = rec.next
	}
}

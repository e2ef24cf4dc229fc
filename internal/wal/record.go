package wal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// recordType is the type byte of a record (see the package doc).
type recordType uint8

const (
	crcType      recordType = 1
	metadataType recordType = 2
	entryType    recordType = 3
	stateType    recordType = 4
	snapshotType recordType = 5
)

func (t recordType) String() string {
	switch t {
	case crcType:
		return "crc"
	case metadataType:
		return "metadata"
	case entryType:
		return "entry"
	case stateType:
		return "state"
	case snapshotType:
		return "snapshot"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

const (
	headerBytes = 8
	// sectorBytes is the unit a disk writes atomically; torn-write
	// detection looks for whole zeroed sectors of a record.
	sectorBytes = 512
	// MaxRecordBytes bounds a record's type and payload. Raft entries are
	// far smaller (the server limits requests to 1.5 MiB); a larger length
	// read from disk is corruption, not an allocation to attempt.
	MaxRecordBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// padding returns how many zero bytes follow a record of the given length.
func padding(length int) int { return (8 - (headerBytes+length)%8) % 8 }

// frameBytes is the size of a whole record frame.
func frameBytes(length int) int { return headerBytes + length + padding(length) }

// appendRecord frames a record of type t whose payload is produced by
// payload (which appends to its argument), chaining from crc. It returns
// the grown buffer and the record's crc.
func appendRecord(buf []byte, crc uint32, t recordType, payload func([]byte) []byte) ([]byte, uint32) {
	start := len(buf)
	buf = append(buf, make([]byte, headerBytes)...)
	buf = append(buf, byte(t))
	buf = payload(buf)
	length := len(buf) - start - headerBytes
	buf = append(buf, make([]byte, padding(length))...)
	crc = crc32.Update(crc, castagnoli, buf[start+headerBytes:start+headerBytes+length])
	binary.LittleEndian.PutUint32(buf[start:], uint32(length))
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf, crc
}

// errTorn marks a record that a crash tore: legitimate at the tail of the
// last segment, corruption anywhere else.
var errTorn = errors.New("torn record")

// errEnd marks the end of a segment's records: zeros, or the end of the file
// at a record boundary.
var errEnd = errors.New("end of records")

// record is one decoded frame. payload aliases the reader's buffer and is
// valid until the next call.
type record struct {
	typ     recordType
	payload []byte
	crc     uint32
	offset  int64 // where the frame starts
	next    int64 // where the next frame starts
}

// recordReader decodes frames from one segment.
type recordReader struct {
	r    io.ReaderAt
	size int64 // bytes in the segment file
	buf  []byte

	// window holds the segment's bytes from windowOff on, read ahead in
	// large pieces: records are read in order, and two small reads a
	// record would cost a system call each.
	window    []byte
	windowOff int64
}

// readAheadBytes is how much recordReader reads from the file at a time.
const readAheadBytes = 1 << 20

// readAt fills p with the segment's bytes at off, which must lie within
// the file.
func (rr *recordReader) readAt(p []byte, off int64) error {
	if off >= rr.windowOff && off+int64(len(p)) <= rr.windowOff+int64(len(rr.window)) {
		copy(p, rr.window[off-rr.windowOff:])
		return nil
	}
	if len(p) >= readAheadBytes {
		_, err := rr.r.ReadAt(p, off)
		return err
	}
	n := min(readAheadBytes, rr.size-off)
	if int64(cap(rr.window)) < n {
		rr.window = make([]byte, n)
	}
	rr.window = rr.window[:n]
	if _, err := rr.r.ReadAt(rr.window, off); err != nil {
		rr.window = rr.window[:0]
		return err
	}
	rr.windowOff = off
	copy(p, rr.window)
	return nil
}

// read decodes the frame at off, chained from crc. Its errors:
// errEnd (a clean end), errTorn (wrapped, with the reason), or ErrCorrupt
// (wrapped, with the reason). It never returns a frame that failed a check.
func (rr *recordReader) read(off int64, crc uint32) (record, error) {
	if off == rr.size {
		return record{}, errEnd
	}
	if off+headerBytes > rr.size {
		// Zeros too few to hold a header end the records as well as zeros
		// that could.
		if zero, err := rr.zeroFrom(off); err != nil || zero {
			return record{}, cmp.Or(err, errEnd)
		}
		return record{}, fmt.Errorf("%w: %d header bytes before the end of the file", errTorn, rr.size-off)
	}
	var hdr [headerBytes]byte
	if err := rr.readAt(hdr[:], off); err != nil {
		return record{}, err
	}
	length := binary.LittleEndian.Uint32(hdr[0:])
	sum := binary.LittleEndian.Uint32(hdr[4:])
	if length == 0 {
		if sum != 0 {
			return record{}, fmt.Errorf("%w: zero length with crc %08x", ErrCorrupt, sum)
		}
		return record{}, errEnd
	}
	if length > MaxRecordBytes {
		return record{}, fmt.Errorf("%w: length %d exceeds %d", ErrCorrupt, length, MaxRecordBytes)
	}
	frame := frameBytes(int(length))
	if off+int64(frame) > rr.size {
		return record{}, fmt.Errorf("%w: %d-byte record runs past the end of the file", errTorn, frame)
	}
	if cap(rr.buf) < frame {
		rr.buf = make([]byte, frame)
	}
	buf := rr.buf[:frame]
	copy(buf, hdr[:])
	if err := rr.readAt(buf[headerBytes:], off+headerBytes); err != nil {
		return record{}, err
	}
	body := buf[headerBytes : headerBytes+length]
	if got := crc32.Update(crc, castagnoli, body); got != sum {
		torn, err := rr.hasZeroSector(buf[:headerBytes+length], off)
		if err != nil {
			return record{}, err
		}
		if torn {
			return record{}, fmt.Errorf("%w: crc mismatch with a zeroed sector", errTorn)
		}
		return record{}, fmt.Errorf("%w: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, sum, got)
	}
	for _, b := range buf[headerBytes+length:] {
		if b != 0 {
			return record{}, fmt.Errorf("%w: non-zero padding", ErrCorrupt)
		}
	}
	t := recordType(body[0])
	if t < crcType || t > snapshotType {
		return record{}, fmt.Errorf("%w: unknown record type %d", ErrCorrupt, t)
	}
	return record{typ: t, payload: body[1:], crc: sum, offset: off, next: off + int64(frame)}, nil
}

// hasZeroSector reports whether a sector that the frame (without its
// padding), starting at file offset off, reaches into past its first is all
// zero on disk: the mark of a write that reached the disk only in part. A
// sector never held older bytes there (segments are preallocated with
// zeros), so a torn write leaves the whole sector zero, including any part
// of it after the frame. The frame's first sector cannot be torn this way:
// it holds the header, and a zero header already ends the records.
func (rr *recordReader) hasZeroSector(frame []byte, off int64) (bool, error) {
	start := int(sectorBytes - off%sectorBytes) // the frame's second sector
	for ; start < len(frame); start += sectorBytes {
		end := min(start+sectorBytes, len(frame))
		if slices.ContainsFunc(frame[start:end], func(b byte) bool { return b != 0 }) {
			continue
		}
		if end-start == sectorBytes {
			return true, nil
		}
		// The frame ends inside this sector: the rest of the sector,
		// after the frame, must be zero too.
		sectorEnd := min(off+int64(start)+sectorBytes, rr.size)
		rest := make([]byte, sectorEnd-(off+int64(end)))
		if err := rr.readAt(rest, off+int64(end)); err != nil {
			return false, err
		}
		return !slices.ContainsFunc(rest, func(b byte) bool { return b != 0 }), nil
	}
	return false, nil
}

// zeroFrom reports whether the segment holds only zeros from off to its
// end. Its cost, reading the rest of a preallocated segment, is paid once
// per Open, at the end of the last segment.
func (rr *recordReader) zeroFrom(off int64) (bool, error) {
	var chunk [64 << 10]byte
	for off < rr.size {
		n := min(int64(len(chunk)), rr.size-off)
		if _, err := rr.r.ReadAt(chunk[:n], off); err != nil {
			return false, err
		}
		for _, b := range chunk[:n] {
			if b != 0 {
				return false, nil
			}
		}
		off += n
	}
	return true, nil
}

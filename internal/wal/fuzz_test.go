package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

// segmentBytes builds the bytes of a small valid segment.
func segmentBytes(es []raftpb.Entry, hs raftpb.HardState) []byte {
	buf, _ := appendRecord(nil, 0, crcType, func(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, 7) })
	buf, crc := appendRecord(buf, 7, metadataType, func(b []byte) []byte { return append(b, make([]byte, 16)...) })
	for i := range es {
		buf, crc = appendRecord(buf, crc, entryType, es[i].MarshalTo)
	}
	buf, _ = appendRecord(buf, crc, stateType, hs.MarshalTo)
	return append(buf, make([]byte, 64)...)
}

// FuzzRecordReader feeds arbitrary bytes to the record decoder as a
// segment. It must never panic, and every record it accepts must be
// exactly what the encoder writes for that record: nothing malformed is
// ever returned as valid.
func FuzzRecordReader(f *testing.F) {
	f.Add(segmentBytes(ents(1, 3, 1), raftpb.HardState{Term: 1, Commit: 2}))
	f.Add(segmentBytes(bigEnts(1, 2, 1), raftpb.HardState{Term: 1, Vote: 1}))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := recordReader{r: bytes.NewReader(data), size: int64(len(data))}
		off, crc := int64(0), uint32(0)
		for {
			rec, err := rr.read(off, crc)
			if err != nil {
				if err != errEnd && !errors.Is(err, errTorn) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("offset %d: unexpected error class: %v", off, err)
				}
				return
			}
			if rec.offset != off || rec.next <= off || rec.next > int64(len(data)) {
				t.Fatalf("record at %d spans [%d, %d) in %d bytes", off, rec.offset, rec.next, len(data))
			}
			payload := append([]byte(nil), rec.payload...)
			want, wantCRC := appendRecord(nil, crc, rec.typ, func(b []byte) []byte { return append(b, payload...) })
			if !bytes.Equal(want, data[off:rec.next]) || wantCRC != rec.crc {
				t.Fatalf("record at %d decoded as %s %x, which encodes differently", off, rec.typ, payload)
			}
			// Payload decoders refuse what they cannot read, without
			// panicking.
			switch rec.typ {
			case crcType:
				if len(payload) == 4 {
					crc = binary.LittleEndian.Uint32(payload)
					off = rec.next
					continue
				}
			case entryType:
				var e raftpb.Entry
				_ = e.Unmarshal(payload)
			case stateType:
				var hs raftpb.HardState
				_ = hs.Unmarshal(payload)
			case snapshotType:
				_, _, _ = decodeSnapshot(payload)
			case metadataType:
				_, _ = decodeMetadata(payload)
			}
			crc = rec.crc
			off = rec.next
		}
	})
}

// FuzzBitFlip writes a WAL of synced entries built from the input, flips
// one bit of the segment, and opens it. The WAL must refuse with
// ErrCorrupt, or return every entry written; it may return fewer only when
// the flipped record, as its (maybe flipped) length frames it, runs past the
// end of the file or has a sector past its first that is all zero: damage a
// torn write also causes, as the package doc says.
func FuzzBitFlip(f *testing.F) {
	f.Add([]byte("entry data"), uint16(300), uint8(3))
	f.Add(make([]byte, 1500), uint16(700), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, pos uint16, bit uint8) {
		fs := vfs.NewMem()
		opts := Options{SegmentBytes: 1 << 16}
		w, err := Create(fs, "/wal", testMD, opts)
		if err != nil {
			t.Fatal(err)
		}
		var es []raftpb.Entry
		for i := 0; len(data) > 0; i++ {
			n := min(len(data), 1+int(data[0])*8)
			es = append(es, raftpb.Entry{Index: uint64(i + 1), Term: 1, Data: data[:n]})
			if err := w.Save(raftpb.HardState{Term: 1, Commit: uint64(i)}, es[i:], true); err != nil {
				t.Fatal(err)
			}
			data = data[n:]
		}
		end := w.mu.offset
		path := tailPath(w)
		w.Close()
		file, _ := fs.OpenReadWrite(path)
		image := make([]byte, end)
		file.ReadAt(image, 0)
		off := int64(pos) % (end + 64)
		b := []byte{0}
		file.ReadAt(b, off)
		b[0] ^= 1 << (bit % 8)
		file.WriteAt(b, off)
		file.Sync()
		fi, _ := file.Stat()
		flipped := make([]byte, fi.Size())
		file.ReadAt(flipped, 0)
		file.Close()

		_, st, err := Open(fs, "/wal", Snapshot{}, opts)
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSnapshotNotFound) {
			// Refused. (A flip that reads as a torn snapshot record drops
			// it, and then Open cannot find it.)
			return
		}
		if err != nil {
			t.Fatalf("flip at %d: %v", off, err)
		}
		if len(st.Entries) > len(es) || !entriesEqual(st.Entries, es[:len(st.Entries)]) {
			t.Fatalf("flip at %d: read %s, wrote %s", off, describe(st.Entries), describe(es))
		}
		if len(st.Entries) == len(es) {
			return
		}
		// Entries were dropped: the flipped record must look torn.
		rr := recordReader{r: bytes.NewReader(image), size: int64(len(image))}
		start, chain := int64(0), uint32(0)
		for {
			rec, err := rr.read(start, chain)
			if err != nil {
				t.Fatalf("flip at %d dropped entries, but the image reads badly at %d: %v", off, start, err)
			}
			if rec.typ == crcType {
				chain = binary.LittleEndian.Uint32(rec.payload)
			} else {
				chain = rec.crc
			}
			if off >= rec.offset && off < rec.next {
				length := int64(binary.LittleEndian.Uint32(flipped[rec.offset:]))
				if rec.offset+headerBytes+length > int64(len(flipped)) {
					return // runs past the end of the file
				}
				if !zeroSectorPastFirst(rec.offset, rec.offset+headerBytes+length, flipped) {
					t.Fatalf("flip at %d in the %s record at %d dropped entries: read %d of %d",
						off, rec.typ, rec.offset, len(st.Entries), len(es))
				}
				return
			}
			start = rec.next
		}
	})
}

// zeroSectorPastFirst is the torn-write rule of the package doc, written
// out plainly over a whole image, for the frame [start, end).
func zeroSectorPastFirst(start, end int64, image []byte) bool {
	for s := (start/sectorBytes + 1) * sectorBytes; s < end; s += sectorBytes {
		e := min(s+sectorBytes, int64(len(image)))
		if !slices.ContainsFunc(image[s:e], func(b byte) bool { return b != 0 }) {
			return true
		}
	}
	return false
}

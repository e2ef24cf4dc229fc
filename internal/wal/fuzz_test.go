package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
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

package raftpb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// The layouts and the canonical-encoding rule are in doc.go.

// ErrCorrupt is wrapped by every Unmarshal error: the input is not exactly
// one canonical encoding of the type asked for.
var ErrCorrupt = errors.New("raftpb: corrupt encoding")

// messageFormatVersion is the first byte of every encoded Message.
const messageFormatVersion = 1

// minEntrySize is the shortest encoded Entry: term, index, type and data
// length, one byte each. It bounds how many entries the rest of an input can
// hold, so a hostile count cannot make Unmarshal allocate more than one
// 48-byte Entry per 4 input bytes.
const minEntrySize = 4

// Entry

// Size returns the length of e's encoding.
func (e *Entry) Size() int {
	return uvarintSize(e.Term) + uvarintSize(e.Index) + 1 + bytesSize(e.Data)
}

// Marshal returns e's encoding.
func (e *Entry) Marshal() []byte { return e.appendTo(make([]byte, 0, e.Size())) }

// MarshalTo appends e's encoding to buf and returns the extended buffer.
func (e *Entry) MarshalTo(buf []byte) []byte { return e.appendTo(slices.Grow(buf, e.Size())) }

func (e *Entry) appendTo(buf []byte) []byte {
	if e.Type > maxEntryType {
		panic(fmt.Sprintf("raftpb: marshaling Entry with invalid type %s", e.Type))
	}
	buf = binary.AppendUvarint(buf, e.Term)
	buf = binary.AppendUvarint(buf, e.Index)
	buf = append(buf, byte(e.Type))
	return appendBytes(buf, e.Data)
}

// Unmarshal sets e to the Entry encoded in data, which must hold exactly one.
// On error e is unchanged.
func (e *Entry) Unmarshal(data []byte) error {
	d := decoder{data: data}
	var v Entry
	d.entry(&v)
	if err := d.finish("Entry"); err != nil {
		return err
	}
	*e = v
	return nil
}

func (d *decoder) entry(e *Entry) {
	e.Term = d.uvarint("Entry.Term")
	e.Index = d.uvarint("Entry.Index")
	e.Type = EntryType(d.enum("Entry.Type", byte(EntryNormal), byte(maxEntryType)))
	e.Data = d.bytes("Entry.Data")
}

// HardState

// Size returns the length of h's encoding.
func (h *HardState) Size() int {
	return uvarintSize(h.Term) + uvarintSize(h.Vote) + uvarintSize(h.Commit)
}

// Marshal returns h's encoding.
func (h *HardState) Marshal() []byte { return h.appendTo(make([]byte, 0, h.Size())) }

// MarshalTo appends h's encoding to buf and returns the extended buffer.
func (h *HardState) MarshalTo(buf []byte) []byte { return h.appendTo(slices.Grow(buf, h.Size())) }

func (h *HardState) appendTo(buf []byte) []byte {
	buf = binary.AppendUvarint(buf, h.Term)
	buf = binary.AppendUvarint(buf, h.Vote)
	return binary.AppendUvarint(buf, h.Commit)
}

// Unmarshal sets h to the HardState encoded in data, which must hold exactly
// one. On error h is unchanged.
func (h *HardState) Unmarshal(data []byte) error {
	d := decoder{data: data}
	var v HardState
	d.hardState(&v)
	if err := d.finish("HardState"); err != nil {
		return err
	}
	*h = v
	return nil
}

func (d *decoder) hardState(h *HardState) {
	h.Term = d.uvarint("HardState.Term")
	h.Vote = d.uvarint("HardState.Vote")
	h.Commit = d.uvarint("HardState.Commit")
}

// ConfState

// Size returns the length of c's encoding.
func (c *ConfState) Size() int { return uvarintsSize(c.Voters) + uvarintsSize(c.Learners) }

// Marshal returns c's encoding.
func (c *ConfState) Marshal() []byte { return c.appendTo(make([]byte, 0, c.Size())) }

// MarshalTo appends c's encoding to buf and returns the extended buffer.
func (c *ConfState) MarshalTo(buf []byte) []byte { return c.appendTo(slices.Grow(buf, c.Size())) }

func (c *ConfState) appendTo(buf []byte) []byte {
	buf = appendUvarints(buf, c.Voters)
	return appendUvarints(buf, c.Learners)
}

// Unmarshal sets c to the ConfState encoded in data, which must hold exactly
// one. On error c is unchanged.
func (c *ConfState) Unmarshal(data []byte) error {
	d := decoder{data: data}
	var v ConfState
	d.confState(&v)
	if err := d.finish("ConfState"); err != nil {
		return err
	}
	*c = v
	return nil
}

func (d *decoder) confState(c *ConfState) {
	c.Voters = d.uvarints("ConfState.Voters")
	c.Learners = d.uvarints("ConfState.Learners")
}

// SnapshotMetadata

// Size returns the length of m's encoding.
func (m *SnapshotMetadata) Size() int {
	return m.ConfState.Size() + uvarintSize(m.Index) + uvarintSize(m.Term)
}

// Marshal returns m's encoding.
func (m *SnapshotMetadata) Marshal() []byte { return m.appendTo(make([]byte, 0, m.Size())) }

// MarshalTo appends m's encoding to buf and returns the extended buffer.
func (m *SnapshotMetadata) MarshalTo(buf []byte) []byte {
	return m.appendTo(slices.Grow(buf, m.Size()))
}

func (m *SnapshotMetadata) appendTo(buf []byte) []byte {
	buf = m.ConfState.appendTo(buf)
	buf = binary.AppendUvarint(buf, m.Index)
	return binary.AppendUvarint(buf, m.Term)
}

// Unmarshal sets m to the SnapshotMetadata encoded in data, which must hold
// exactly one. On error m is unchanged.
func (m *SnapshotMetadata) Unmarshal(data []byte) error {
	d := decoder{data: data}
	var v SnapshotMetadata
	d.snapshotMetadata(&v)
	if err := d.finish("SnapshotMetadata"); err != nil {
		return err
	}
	*m = v
	return nil
}

func (d *decoder) snapshotMetadata(m *SnapshotMetadata) {
	d.confState(&m.ConfState)
	d.wrap("SnapshotMetadata.ConfState")
	m.Index = d.uvarint("SnapshotMetadata.Index")
	m.Term = d.uvarint("SnapshotMetadata.Term")
}

// Snapshot

// Size returns the length of s's encoding.
func (s *Snapshot) Size() int { return s.Metadata.Size() + bytesSize(s.Data) }

// Marshal returns s's encoding.
func (s *Snapshot) Marshal() []byte { return s.appendTo(make([]byte, 0, s.Size())) }

// MarshalTo appends s's encoding to buf and returns the extended buffer.
func (s *Snapshot) MarshalTo(buf []byte) []byte { return s.appendTo(slices.Grow(buf, s.Size())) }

func (s *Snapshot) appendTo(buf []byte) []byte {
	buf = s.Metadata.appendTo(buf)
	return appendBytes(buf, s.Data)
}

// Unmarshal sets s to the Snapshot encoded in data, which must hold exactly
// one. On error s is unchanged.
func (s *Snapshot) Unmarshal(data []byte) error {
	d := decoder{data: data}
	var v Snapshot
	d.snapshot(&v)
	if err := d.finish("Snapshot"); err != nil {
		return err
	}
	*s = v
	return nil
}

func (d *decoder) snapshot(s *Snapshot) {
	d.snapshotMetadata(&s.Metadata)
	d.wrap("Snapshot.Metadata")
	s.Data = d.bytes("Snapshot.Data")
}

// ConfChange

// Size returns the length of c's encoding.
func (c *ConfChange) Size() int { return 1 + uvarintSize(c.NodeID) + bytesSize(c.Context) }

// Marshal returns c's encoding.
func (c *ConfChange) Marshal() []byte { return c.appendTo(make([]byte, 0, c.Size())) }

// MarshalTo appends c's encoding to buf and returns the extended buffer.
func (c *ConfChange) MarshalTo(buf []byte) []byte { return c.appendTo(slices.Grow(buf, c.Size())) }

func (c *ConfChange) appendTo(buf []byte) []byte {
	if c.Type > maxConfChangeType {
		panic(fmt.Sprintf("raftpb: marshaling ConfChange with invalid type %s", c.Type))
	}
	buf = append(buf, byte(c.Type))
	buf = binary.AppendUvarint(buf, c.NodeID)
	return appendBytes(buf, c.Context)
}

// Unmarshal sets c to the ConfChange encoded in data, which must hold exactly
// one. On error c is unchanged.
func (c *ConfChange) Unmarshal(data []byte) error {
	d := decoder{data: data}
	var v ConfChange
	d.confChange(&v)
	if err := d.finish("ConfChange"); err != nil {
		return err
	}
	*c = v
	return nil
}

func (d *decoder) confChange(c *ConfChange) {
	c.Type = ConfChangeType(d.enum("ConfChange.Type", byte(ConfChangeAddVoter), byte(maxConfChangeType)))
	c.NodeID = d.uvarint("ConfChange.NodeID")
	c.Context = d.bytes("ConfChange.Context")
}

// Message

// Size returns the length of m's encoding, version byte included.
func (m *Message) Size() int {
	n := 2 + // version, type
		uvarintSize(m.To) + uvarintSize(m.From) + uvarintSize(m.Term) +
		uvarintSize(m.LogTerm) + uvarintSize(m.Index) + uvarintSize(m.Commit) +
		1 + // reject
		uvarintSize(m.RejectHint) +
		uvarintSize(uint64(len(m.Entries))) +
		1 + // has snapshot
		bytesSize(m.Context)
	for i := range m.Entries {
		n += m.Entries[i].Size()
	}
	if m.Snapshot != nil {
		n += m.Snapshot.Size()
	}
	return n
}

// Marshal returns m's encoding.
func (m *Message) Marshal() []byte { return m.appendTo(make([]byte, 0, m.Size())) }

// MarshalTo appends m's encoding to buf and returns the extended buffer.
func (m *Message) MarshalTo(buf []byte) []byte { return m.appendTo(slices.Grow(buf, m.Size())) }

func (m *Message) appendTo(buf []byte) []byte {
	if m.Type == 0 || m.Type > maxMessageType {
		panic(fmt.Sprintf("raftpb: marshaling Message with invalid type %s", m.Type))
	}
	buf = append(buf, messageFormatVersion, byte(m.Type))
	buf = binary.AppendUvarint(buf, m.To)
	buf = binary.AppendUvarint(buf, m.From)
	buf = binary.AppendUvarint(buf, m.Term)
	buf = binary.AppendUvarint(buf, m.LogTerm)
	buf = binary.AppendUvarint(buf, m.Index)
	buf = binary.AppendUvarint(buf, m.Commit)
	buf = appendBool(buf, m.Reject)
	buf = binary.AppendUvarint(buf, m.RejectHint)
	buf = binary.AppendUvarint(buf, uint64(len(m.Entries)))
	for i := range m.Entries {
		buf = m.Entries[i].appendTo(buf)
	}
	buf = appendBool(buf, m.Snapshot != nil)
	if m.Snapshot != nil {
		buf = m.Snapshot.appendTo(buf)
	}
	return appendBytes(buf, m.Context)
}

// Unmarshal sets m to the Message encoded in data, which must hold exactly
// one. On error m is unchanged.
func (m *Message) Unmarshal(data []byte) error {
	return m.unmarshal(decoder{data: data})
}

// UnmarshalAliased is Unmarshal with m's byte fields (entries' data, the
// context, a snapshot's data) pointing into data rather than copied: the
// caller must never modify data afterwards. The transport receives each
// frame into a buffer of its own, so it saves a copy of every entry.
func (m *Message) UnmarshalAliased(data []byte) error {
	return m.unmarshal(decoder{data: data, alias: true})
}

func (m *Message) unmarshal(d decoder) error {
	var v Message
	d.message(&v)
	if err := d.finish("Message"); err != nil {
		return err
	}
	*m = v
	return nil
}

func (d *decoder) message(m *Message) {
	if version := d.u8("Message version"); d.err == nil && version != messageFormatVersion {
		d.fail("Message: unknown format version %d", version)
	}
	m.Type = MessageType(d.enum("Message.Type", byte(MsgApp), byte(maxMessageType)))
	m.To = d.uvarint("Message.To")
	m.From = d.uvarint("Message.From")
	m.Term = d.uvarint("Message.Term")
	m.LogTerm = d.uvarint("Message.LogTerm")
	m.Index = d.uvarint("Message.Index")
	m.Commit = d.uvarint("Message.Commit")
	m.Reject = d.bool("Message.Reject")
	m.RejectHint = d.uvarint("Message.RejectHint")
	if n := d.count("Message.Entries", minEntrySize); n > 0 {
		m.Entries = make([]Entry, n)
		for i := range m.Entries {
			d.entry(&m.Entries[i])
			if d.err != nil {
				d.err = fmt.Errorf("Message.Entries[%d]: %w", i, d.err)
				return
			}
		}
	}
	if d.bool("Message.Snapshot presence") {
		m.Snapshot = new(Snapshot)
		d.snapshot(m.Snapshot)
		d.wrap("Message.Snapshot")
	}
	m.Context = d.bytes("Message.Context")
}

// Encoding helpers.

// uvarintSize is the length of binary.AppendUvarint's output for x: one byte
// per started group of 7 significant bits, and one byte for 0.
func uvarintSize(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func bytesSize(b []byte) int { return uvarintSize(uint64(len(b))) + len(b) }

func uvarintsSize(xs []uint64) int {
	n := uvarintSize(uint64(len(xs)))
	for _, x := range xs {
		n += uvarintSize(x)
	}
	return n
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

func appendUvarints(buf []byte, xs []uint64) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(xs)))
	for _, x := range xs {
		buf = binary.AppendUvarint(buf, x)
	}
	return buf
}

func appendBool(buf []byte, b bool) []byte {
	if b {
		return append(buf, 1)
	}
	return append(buf, 0)
}

// decoder reads one value from data. Its error is sticky: after the first
// failure every read returns a zero value and consumes nothing, so the
// per-type decoders read straight through and the caller checks err once.
type decoder struct {
	data []byte
	pos  int // next unread byte of data
	err  error

	// arena holds the copies of every byte field this decoder returns, so a
	// message of many entries costs one allocation for all their data. It is
	// sized, on first use, to the rest of the input, which bounds every later
	// byte field too, so it is never reallocated.
	arena []byte
	// alias makes byte fields point into data instead (UnmarshalAliased).
	alias bool
}

// fail records the first error, naming the type and field in format.
func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrCorrupt)...)
	}
}

// wrap prefixes a pending error with the enclosing field, so an error from a
// nested value says where that value sits.
func (d *decoder) wrap(field string) {
	if d.err != nil {
		d.err = fmt.Errorf("%s: %w", field, d.err)
	}
}

func (d *decoder) remaining() int { return len(d.data) - d.pos }

// finish reports the first error, or bytes left over after a whole value.
func (d *decoder) finish(typeName string) error {
	if d.err == nil && d.pos != len(d.data) {
		d.fail("%s: %d trailing bytes", typeName, d.remaining())
	}
	return d.err
}

// uvarint reads a minimal unsigned varint.
func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	// Most values (small terms, ids, lengths) fit one byte.
	if d.pos < len(d.data) && d.data[d.pos] < 0x80 {
		x := uint64(d.data[d.pos])
		d.pos++
		return x
	}
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.pos >= len(d.data) {
			d.fail("%s: truncated varint", field)
			return 0
		}
		b := d.data[d.pos]
		d.pos++
		if b < 0x80 {
			switch {
			case i == binary.MaxVarintLen64-1 && b > 1:
				d.fail("%s: varint overflows 64 bits", field)
				return 0
			case i > 0 && b == 0:
				// binary.Uvarint accepts this; a canonical encoding has no
				// high group of zeros.
				d.fail("%s: non-minimal varint", field)
				return 0
			}
			return x | uint64(b)<<(7*i)
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	d.fail("%s: varint overflows 64 bits", field)
	return 0
}

func (d *decoder) u8(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.data) {
		d.fail("%s: truncated", field)
		return 0
	}
	b := d.data[d.pos]
	d.pos++
	return b
}

// enum reads one byte that must lie in [lo, hi].
func (d *decoder) enum(field string, lo, hi byte) byte {
	b := d.u8(field)
	if d.err == nil && (b < lo || b > hi) {
		d.fail("%s: unknown value %d", field, b)
		return 0
	}
	return b
}

func (d *decoder) bool(field string) bool { return d.enum(field, 0, 1) == 1 }

// count reads a list length, refusing one that the rest of the input could
// not hold at minElemSize bytes an element: the caller allocates by it.
func (d *decoder) count(field string, minElemSize int) int {
	n := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minElemSize) {
		d.fail("%s: count %d does not fit in the %d bytes left", field, n, d.remaining())
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte slice and returns a copy, nil if empty.
func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field)
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(d.remaining()) {
		d.fail("%s: length %d exceeds the %d bytes left", field, n, d.remaining())
		return nil
	}
	size := int(n)
	if d.alias {
		b := d.data[d.pos : d.pos+size : d.pos+size]
		d.pos += size
		return b
	}
	if cap(d.arena)-len(d.arena) < size {
		d.arena = make([]byte, 0, d.remaining())
	}
	start := len(d.arena)
	d.arena = append(d.arena, d.data[d.pos:d.pos+size]...)
	d.pos += size
	// Cap the slice so a caller's append reallocates rather than overwriting
	// the next field's bytes in the arena.
	return d.arena[start:len(d.arena):len(d.arena)]
}

func (d *decoder) uvarints(field string) []uint64 {
	n := d.count(field, 1) // each element is at least one byte
	if n == 0 {
		return nil
	}
	xs := make([]uint64, n)
	for i := range xs {
		xs[i] = d.uvarint(field)
	}
	if d.err != nil {
		return nil
	}
	return xs
}

// Package raftpb holds raft's messages, log entries, hard state, snapshot
// metadata and configuration changes, and their binary encoding.
//
// # Encoding
//
// A value is its fields in a fixed order, with no tags: the reader knows the
// layout from the type. Integers are unsigned varints (encoding/binary: 7 bits
// a byte, low bits first, 1 to 10 bytes). A byte slice is its length as a
// uvarint, then the bytes. A list is its count as a uvarint, then the
// elements. A bool is one byte, 0 or 1; an enum is one byte. Nested values
// sit inline, with no length and no version of their own.
//
// Entry:
//
//	| term (uvarint) | index (uvarint) | type (1B) | data len (uvarint) | data |
//
// HardState:
//
//	| term (uvarint) | vote (uvarint) | commit (uvarint) |
//
// ConfState:
//
//	| voter count (uvarint) | voter (uvarint) ... | learner count (uvarint) | learner (uvarint) ... |
//
// SnapshotMetadata:
//
//	| ConfState | index (uvarint) | term (uvarint) |
//
// Snapshot:
//
//	| SnapshotMetadata | data len (uvarint) | data |
//
// ConfChange:
//
//	| type (1B) | node id (uvarint) | context len (uvarint) | context |
//
// Message alone starts with a format version (1), so the wire layout can
// change under a rolling upgrade. The other types carry none: whatever stores
// them durably (the WAL, snapshot files) must version its own records.
//
// Message:
//
//	| version (1B) | type (1B) | to (uvarint) | from (uvarint) | term (uvarint) |
//	| log term (uvarint) | index (uvarint) | commit (uvarint) | reject (1B) |
//	| reject hint (uvarint) | entry count (uvarint) | Entry ... |
//	| has snapshot (1B) | Snapshot, if has snapshot is 1 | context len (uvarint) | context |
//
// For example, Message{Type: MsgHeartbeat, To: 2, From: 1, Term: 5,
// Commit: 300, Context: []byte("ab")} is 16 bytes:
//
//	01        version 1
//	08        type MsgHeartbeat
//	02        to 2
//	01        from 1
//	05        term 5
//	00        log term 0
//	00        index 0
//	ac 02     commit 300: low 7 bits 0x2c with the continuation bit, then 300>>7 = 2
//	00        reject false
//	00        reject hint 0
//	00        no entries
//	00        no snapshot
//	02 61 62  context "ab"
//
// # Canonical encoding
//
// Every value has exactly one encoding, and Unmarshal accepts only that one,
// so whenever Unmarshal(b) succeeds, Marshal gives back b byte for byte and
// byte equality can stand for value equality. Unmarshal therefore rejects,
// with an error wrapping ErrCorrupt:
//
//   - a varint with a redundant high group (80 00 for 0: a multi-byte varint
//     whose last byte is 0), or one that overflows 64 bits;
//   - a bool or a has-snapshot byte other than 0 or 1;
//   - an enum value with no constant, a MessageType of 0, a Message version
//     other than 1;
//   - a length or count longer than the rest of the input;
//   - bytes left over after the value.
//
// Marshal panics on an enum field with no constant (a Message Type of 0
// included): only a bug makes one, and the receiver would refuse it.
//
// Nil and empty byte slices and lists encode alike (a zero length), so only
// one of them can come back: Unmarshal returns nil for every empty one.
//
// Unmarshal copies every byte field out of its input, so the caller may reuse
// the input buffer. The copies made by one call share one allocation: a
// retained Entry.Data keeps the rest of that call's payload reachable.
package raftpb

// Package wal is the raft write-ahead log: every HardState and entry a
// member persists, and markers for the snapshots it has taken or installed.
// An acknowledged write is durable because it is here, fsynced, before the
// member acknowledges it.
//
// # Files
//
// A WAL is a directory of segments named
//
//	<seq>-<index>.wal        e.g. 0000000000000003-00000000000a1b2c.wal
//
// both fields 16 hex digits: seq numbers segments consecutively from 0, and
// index is one more than the log's last index when the segment was started.
// (A segment can still hold entries below its index, when a new leader
// truncates the log after the segment was started; and indexes can go down
// from one segment to the next for the same reason.) A
// segment is created as <name>.tmp, preallocated (Options.SegmentBytes,
// 64 MiB by default), given its header records, synced, renamed to <name>
// and the directory synced; only then is anything appended to it. A
// segment is started when the previous one has reached SegmentBytes, and
// the previous one is synced first, so every segment but the last is whole.
// Leftover .tmp files hold nothing acknowledged and are removed on open.
// What is synced leaves the page cache (a megabyte at a time, and a whole
// segment when it is cut): the WAL is read back only at start-up
// (dropSyncedLocked says why).
//
// # Records
//
// A segment is a sequence of records, each framed as:
//
//	0        4        8      9                      8+length      8+length+pad
//	+--------+--------+------+----------------------+-------------+
//	| length | crc    | type | payload              | zero padding |
//	| u32 LE | u32 LE | u8   | length-1 bytes       | 0 to 7 bytes |
//	+--------+--------+------+----------------------+-------------+
//
// length counts the type byte and the payload (so it is never 0), and the
// padding brings the frame to a multiple of 8 bytes: a header never straddles
// a 512-byte sector. crc is CRC-32C (Castagnoli) over type and payload,
// chained: seeded with the crc of the record before it, in this segment or
// the one before. The exception is a segment's first record, of type crc:
// its own crc is seeded with 0, and it carries the chain's value so far, from
// which the records after it continue. A zero length (the preallocated
// zeros) ends the segment.
//
//	type  name      payload
//	1     crc       u32 LE: the chain's value at the end of the segment
//	                before (so a segment can be checked on its own, and
//	                the join between two checked too)
//	2     metadata  u64 LE member id, u64 LE cluster id
//	3     entry     a raftpb.Entry (raftpb's codec)
//	4     state     a raftpb.HardState (raftpb's codec)
//	5     snapshot  u64 LE index, u64 LE term, u8 kind:
//	                0 = taken: this member snapshotted its own applied state;
//	                    the log after index continues
//	                1 = installed: the log was replaced by a snapshot from
//	                    the leader; entries above index written before this
//	                    record are discarded, and commit is at least index
//
// Every segment starts with a crc record and a metadata record, and has no
// other crc record. The first segment then has a taken snapshot record at
// {0, 0}; later segments have a state record with the latest HardState, if
// there is one.
//
// # Reading
//
// Open reads forward from the snapshot the caller restored from: it starts
// at the last segment whose index is at most the snapshot's, applies the
// records in order, and requires the snapshot's record to be among them.
// Nothing it needs is in an earlier segment: a later segment starting at or
// below the snapshot's index means the log was cut back below it, so any
// entry above it written earlier has since been replaced; and the snapshot's
// own record, written when the log already reached its (committed) index,
// cannot precede a segment started below that index.
// An entry at index i replaces every entry at or after i (a follower
// truncating a conflicting suffix writes exactly that), so the entries
// returned are the log as it was at the last record.
//
// Which snapshots the WAL can be opened from (ValidSnapshots) takes every
// live segment's snapshot and state records. A WAL keeps that list in
// memory as it writes ((*WAL).ValidSnapshots): Open also reads the snapshot
// records of the segments before the one it starts from, and nothing
// later reads a segment back.
//
// # Damage
//
// A crash can tear the tail of the last segment: sectors of an unsynced
// write may or may not have reached the disk. Disks write a 512-byte sector
// atomically, and segments are preallocated with zeros, so a torn record
// either has a zero header (which ends the records), or runs past the end
// of the file (whose new size was not synced), or fails its checksum with a
// sector past its first all zero, including any of that sector after the
// record. Only such a record, and only in the last segment, is a torn
// tail. Open appends after the last valid record, and logs what it drops
// if anything but zeros follows. Nothing after it was ever synced, so
// nothing acknowledged is lost.
//
// Open always zeroes the last segment after its last valid record
// (truncate, preallocate, sync): even after a clean end, sectors of an
// unsynced write may have reached the disk beyond a sector that did not,
// and new records must not end up followed by them. For the same reason a
// failed write truncates what it may have left in the page cache.
//
// Any other invalid record is corruption: a CRC mismatch with no zeroed
// sector, non-zero padding, an unknown type, a record that decodes badly, a
// misplaced or missing header record, a broken chain between segments, a
// gap in the entries, or any damage at all in a segment that is not the
// last. Open refuses with ErrCorrupt and names the file and offset; it never
// skips a record that may have been synced.
//
// Some damage in the last segment is indistinguishable from a crash: a
// synced record whose header, or whose sector past its first, was zeroed;
// a corrupted record whose own data holds such a sector of zeros; or a
// length corrupted to run past the end of the file, or over such a sector
// (most likely in the last record, which is followed by zeros). It reads as
// a torn
// tail: the records after it are dropped, with a log line. Checksums cannot
// tell a sector that was never written from one that was erased; the raft
// log on the other members still has those entries.
//
// # Errors while writing
//
// A failed write or sync leaves the segment in an unknown state (see the
// vfs package doc). The WAL remembers the first such error and returns it
// from every later call, Close included: the caller must treat it as fatal,
// exit, and reopen. Reopening reads back whole records only, but which of
// the unsynced ones is unknown: after a failed fsync, Linux may keep serving
// pages from its cache that never reached the disk.
package wal

// Package snap stores raft snapshots on disk: small metadata files naming
// what a snapshot covers, and the state machine's data streamed beside them.
//
// # Files
//
// A directory holds, for each snapshot:
//
//	<term>-<index>.snap     the raft snapshot: metadata (index, term,
//	                        configuration) and Data, which Cairn's server
//	                        leaves empty: the image is found by its index,
//	                        and is never in the .snap file
//	<index>.snap.db         the image, when one was received or made as a
//	                        stream (for Cairn, a backend checkpoint)
//
// all numbers 16 hex digits. A .snap file is laid out as
//
//	0          8         12        20
//	+----------+---------+---------+---------------------------+
//	| magic    | crc     | length  | payload                   |
//	| "CAIRNSN"| u32 LE  | u64 LE  | a raftpb.Snapshot         |
//	| + 0x01   |         |         | (raftpb's codec)          |
//	+----------+---------+---------+---------------------------+
//
// and a .snap.db file as
//
//	0                 n         n+4       n+12      n+20
//	+-----------------+---------+---------+---------+
//	| image (n bytes) | crc     | length  | magic   |
//	|                 | u32 LE  | u64 LE  |"CAIRNDB"|
//	|                 |         | = n     | + 0x01  |
//	+-----------------+---------+---------+---------+
//
// with crc the CRC-32C of the payload or image. The image's checksum trails
// it because the image is written as it streams in, never held in memory.
//
// # Writing
//
// Both kinds of file are written to <name>.<n>.tmp (n unique, so that
// concurrent writers of one image never share a file), synced, renamed into
// place, and the directory synced: a file with its final name is whole.
// Leftover .tmp files are removed by New. An image received from another
// member is saved only if its bytes match the size and checksum the sender's
// OpenDB reported (SaveDB's want): a transfer cut short, or a sender's
// rotten copy, is refused, not saved as new.
//
// # Reading
//
// LoadNewestAvailable returns the newest .snap file that the caller (the
// WAL's list of valid snapshots) accepts and that reads back with a good
// checksum. One that is damaged is renamed to <name>.broken, with a log
// line, and the next older one is tried: a damaged newest snapshot costs
// replaying more of the WAL, not the member, as long as the WAL still holds
// what follows the older snapshot (wal.Options.KeepReleased). An I/O error,
// or a file from a newer format version (ErrVersion), is no evidence of
// damage: it is returned, and the file left alone.
//
// An image is checked as it is read: the Read that returns its last byte
// returns ErrCorrupt if the bytes do not match, and so does Close.
//
// # Purging
//
// Purge keeps the newest N snapshots the WAL accepts and everything newer
// (a snapshot whose WAL record is not written yet); older snapshot files,
// images and .broken files go.
package snap

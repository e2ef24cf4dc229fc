// Package etcdsnap reads and writes etcd's snapshot file: the file
// `etcdctl snapshot save` writes and `etcdutl snapshot status/restore`
// read. Cairn's backups are such files, so a backup of Cairn restores into
// stock etcd, and a snapshot saved from stock etcd restores into Cairn
// through the same code (cairnutl's restore, the server's Snapshot call).
//
// # The file
//
// A snapshot is a bbolt database (go.etcd.io/bbolt, the B+tree file etcd
// keeps its state in), optionally followed by the SHA-256 of everything
// before it, which etcd's server appends to the stream it sends:
//
//	| bbolt database: pages 0 .. pgid-1, pgid*pageSize bytes | SHA-256 of them (32B, optional) |
//
// The trailer is there iff the file's size modulo 512 is 32 (etcd's rule:
// a database is whole pages, pages are multiples of 512 bytes). Inside, the
// buckets of etcd 3.7.3 (storage/schema), keys and values as etcd writes
// them:
//
//	key              main (8B BE) '_' sub (8B BE)       -> mvccpb.KeyValue (a put)
//	                 main (8B BE) '_' sub (8B BE) 't'   -> mvccpb.KeyValue, only Key set (a delete)
//	lease            lease ID (8B BE)                   -> leasepb.Lease{ID=1, TTL=2, RemainingTTL=3} (proto3)
//	members          member ID in lower-case hex        -> {"id":N,"peerURLs":[..],"isLearner":true,"name":"..","clientURLs":[..]}
//	                                                       (isLearner, name, clientURLs omitted when empty)
//	members_removed  member ID in lower-case hex        -> "removed"
//	alarm            AlarmMember{MemberID=1, Alarm=2}   -> empty
//	meta             "consistent_index"                 -> u64 BE (absent while 0)
//	                 "term"                             -> u64 BE (absent while 0)
//	                 "confState"                        -> {"voters":[..],"learners":[..],"auto_leave":false}
//	                 "scheduledCompactRev"              -> main (8B BE) '_' 0 (8B BE), absent before a compaction
//	                 "finishedCompactRev"               -> the same, once the compaction's removal is done
//	                 "storageVersion"                   -> "3.7.0" (etcd 3.7.3; absent in files of etcd 3.5)
//	cluster          "clusterVersion"                   -> e.g. "3.7.0"
//	                 "downgrade"                        -> JSON, only while a downgrade is on (not read)
//	auth             "authRevision"                     -> u64 BE (1 for a store never touched)
//	                 "authEnabled"                      -> 0x01 / 0x00 (absent until auth was first enabled)
//	authUsers        user name -> authpb.User;  authRoles  role name -> authpb.Role
//
// Big-endian revisions make key order revision order, so the key bucket
// holds the history oldest first. A compacted store keeps, for each key, its
// latest revision at or below the compaction unless that is a delete, and
// every revision above it. Cairn keeps the same KeyValue bytes under its own
// keys (see internal/mvcc), so a revision goes across unchanged.
//
// # Writing
//
// Create makes a new file; PutRevision takes the history in revision order;
// PutUser and PutRole the auth buckets, PutAuth the enabled flag and auth
// revision; Finish writes meta, cluster and the auth bucket (without
// PutAuth: auth off, authRevision 1, exactly what a fresh etcd 3.7.3 holds)
// and fsyncs. Reader.Auth reads the auth state back.
// The writer commits a bbolt transaction every batchBytes (4 MiB) of puts,
// so its memory stays bounded whatever the size of the store, and cuts the
// file to the database's pgid*pageSize bytes (bbolt grows files ahead of
// use; etcd's server sends exactly those bytes), so that appending the
// SHA-256 gives the file etcd's server would stream (AppendHash).
//
// # Reading
//
// Open follows etcdutl's rules for the trailer: with verifyHash, a file with
// no trailer is refused ("snapshot missing hash ...") and one whose trailer
// does not match is refused (ErrHashMismatch); without, the trailer, if
// there, is ignored. No temporary copy is needed: bbolt opened read-only
// (O_RDONLY, a shared flock) never writes, and reads only pages below pgid,
// so the 32 bytes after them do no harm; Open checks first that the file
// holds all pgid pages (a truncated file would otherwise fault when mapped
// pages past its end are read), then runs bbolt's structural check, so the
// readers never walk a broken tree. Refusals are the package's sentinels:
// ErrMissingHash, ErrHashMismatch, ErrTruncated, ErrNotSnapshot (not a bbolt
// file, or no key or meta bucket), ErrCorrupt, ErrLocked.
//
// ReadStatus computes what `etcdutl snapshot status` prints, the same way:
// a CRC-32C over every bucket name, key and value in bbolt order, the last
// main revision, the keys alive at the end, the database's size, and the
// storage version. Like etcdutl it does not check the trailer.
package etcdsnap

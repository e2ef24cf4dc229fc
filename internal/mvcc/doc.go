// Package mvcc is the versioned key-value store behind etcd's KV and Watch
// APIs: every change is kept under its revision, reads can ask for any
// revision not yet compacted, and the semantics (revisions, versions,
// creation and modification revisions, deletes) are etcd's.
//
// # Revisions
//
// A revision is (main, sub). main counts the write transactions that
// changed something: an empty store is at revision 1 and its first write
// makes revision 2, as in etcd. sub numbers the changes inside one
// transaction from 0. A transaction that changes nothing (a read, or a
// delete of nothing) leaves the revision where it was.
//
// # Backend layout
//
// The store keeps its data in a backend (internal/backend), in two key
// spaces beside the backend's own reserved prefixes:
//
//	'r' | main u64 BE | sub u64 BE             -> mvccpb.KeyValue (a put)
//	'r' | main u64 BE | sub u64 BE | 't'       -> mvccpb.KeyValue with only
//	                                              Key set (a delete)
//	'm' "compact_scheduled"                    -> u64 BE: the last compaction,
//	                                              written with its raft entry
//	'm' "compact_finished"                     -> u64 BE: the last compaction
//	                                              whose removal is done
//
// Big-endian revisions make key order revision order, so history is read
// by scanning, and a restart rebuilds the in-memory index (below) in one
// pass. Every write transaction is in one backend batch, committed with the
// raft index it applies (see the backend's package doc for how that keeps
// the store consistent with the raft log across crashes); a WriteGroup
// puts the transactions of consecutive entries in one batch, committed
// with the last one's index. The backend records that index under 'r'
// too, after the batch's revisions ('r' | main | 0xff x 8: no revision's
// sub is that high), so that the keys of successive batches
// never interleave; scans do not show those records, and a compaction
// deletes the ones below its revision with the history it removes.
//
// # The index
//
// The in-memory index maps each key to its history: generations of
// revisions, one per life of the key from creation to delete (index.go
// walks through an example). Reads find the revision to read in the index
// and its value in the backend. A key with one life going on and one
// revision kept (put once, or compacted since its last change: most keys)
// is one 64-byte object; other histories hang off it. The keys are in a
// B-tree, in key order, for ranges, and in a hash table (keytable.go) for
// finding one key: a put, a delete or a single-key read walks no tree.
//
// # Compaction
//
// Compact(rev) records rev with its raft entry and cuts the index at once:
// reads below rev fail with ErrCompacted from then on. The backend's
// superseded revisions at or below rev (all but the latest of each key
// alive at rev) are removed in the background, in batches of at most 1000
// keys, so writes are never held up for long. A restart with the scheduled
// compaction ahead of the finished one resumes the removal. The KeyValue
// stored with each put carries its key's creation revision and version, so
// the index rebuilt on a restart is the same whatever history was removed.
//
// # Watching
//
// WatchableStore (watch.go) adds watchers: on a key or a range, from any
// revision not compacted, each sent every event in its range exactly once,
// in revision order, a revision's events together. A stream's responses
// (created, events, compacted, canceled, progress) all go through one
// channel, in the order they are made: a watcher's Created comes first and
// nothing follows its Canceled or compacted response. Up-to-date watchers
// get events as they are applied (indexed by key, so a write costs what
// watches its keys, not every watcher); watchers behind (started in the
// past, or whose stream was full) are caught up from the backend by a
// goroutine the store owns, in bounded rounds. No send blocks, so slow
// consumers never hold up writes, and each costs at most a few pending
// responses. The watchable store outlives the Store it follows: a snapshot
// restore detaches it and attaches the restored store, and the watchers
// catch up from there.
package mvcc

// Package apply is Cairn's one deterministic applier: it turns committed
// raft entries into backend batches that also record the index of the last
// entry each applies (the consistent index), so a restart knows precisely
// which entries its state already holds and replays only the rest. An
// entry is one batch, but for runs of key-value writes (Put, DeleteRange,
// Txn) one after another in what ApplyEntries is given: each run is one
// batch (an mvcc.WriteGroup), which a crash keeps or loses whole.
//
// One plain function per request type (applyPut, applyTxn, ...); every
// member applies the same entries in the same order to the same state and
// gets the same result. Refusals that depend only on that state (a put
// with ignore_value of a missing key, a compaction of a future revision)
// are results, applied (the index advances) and returned to the proposer;
// anything else (a backend write failing) is fatal: the caller stops the
// member, which restarts from its WAL.
//
// # Backend layout (besides mvcc's, see package mvcc)
//
//	"c/member/" + 16 hex digits of the ID  -> membership.Member (JSON)
//	"c/removed/" + 16 hex digits of the ID -> empty: an ID removed, never to return
//	"c/confstate"                         -> raftpb.ConfState as of the consistent index
//	"c/alarm/" + 16 hex digits of the member ID + "/" + the type's number (NOSPACE 1, CORRUPT 2)
//	                                      -> empty: an active alarm
//
// # Alarms
//
// An alarm (etcd's AlarmMember: a member ID and a type) is raised and
// cleared by an applied Alarm request, so every member holds the same set,
// and it survives restarts and images with the rest of the backend. While
// one is active, the applier refuses what etcd's capped (NOSPACE) and
// corrupt (CORRUPT) appliers refuse, as results (see alarmRefusal).
//
// # Images
//
// A raft snapshot sent to a follower carries an image of the whole
// backend: a pebble checkpoint (hard links, consistent as of one consistent
// index, in a directory db.checkpoint<n> beside the database) packed as a
// POSIX tar stream of its files, in name order. The receiver unpacks it
// beside the live database and swaps directories:
//
//	db.restore/  <- unpacked and synced
//	db -> db.old, db.restore -> db, sync the parent, remove db.old
//
// Open finishes or undoes a swap a crash interrupted: db.restore is
// incomplete by definition and removed; db.old without db is renamed back.
// The image's consistent index can be above the snapshot's index (it is
// taken when sent): the applier then skips the entries it already holds.
//
// Every file operation, the backend's and these, goes through
// backend.Options.FS (the real disk by default), so that a simulation can
// run a member on an in-memory disk and cut its power (see fs_test.go and
// the backend package doc).
package apply

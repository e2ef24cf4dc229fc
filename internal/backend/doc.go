// Package backend is the storage engine under the MVCC store: a thin
// wrapper over one pebble database that gives the store what it needs and
// nothing else. Atomic write batches that carry the raft index they apply,
// consistent read views, durable syncs, and checkpoints for raft snapshots.
//
// # Keys
//
// The backend does not interpret keys beyond two reserved prefixes: keys
// that start with 0xff are the backend's own metadata, and 0x00 is where
// it kept them before 2026-12 (Open reads them there, the next commit
// moves them). Neither can be written, nor shows in a scan. The MVCC store
// lays out the rest (see its doc.go).
//
//	0xff "consistent_index"   u64 BE: the last raft index applied
//	0xff "consistent_term"    u64 BE: that entry's term
//
// Every batch writes the metadata, so every table a flush writes holds it,
// and a table's key range runs from its first key to it. Sorting last, the
// metadata keeps that range to the newest revisions (the MVCC store's keys
// grow with the revision): moving a flushed table into the tree below
// rewrites only the one table there that holds the metadata too. Under
// 0x00, each table's range began before every key, and compacting one
// rewrote every table of the level below it. 200,000 transactions of four
// 256-byte puts (3 members; pebble's metrics on the leader): pebble wrote
// 161 MB under 0x00, 129 MB under 0xff; its compactions read 79 and 47 MB,
// and left 19 and 2 tables in level 0.
//
// # Durability
//
// The raft WAL, not pebble, is what makes a write durable: a write is
// acknowledged once its raft entry is synced in the WALs of a quorum. So
// pebble's own write-ahead log is turned off (a second copy of every value
// on disk, the raft WAL's being the first): a committed batch lives in a
// memtable until pebble flushes it into a table, and a crash, a SIGKILL as
// much as a power loss, loses the batches not yet flushed. That is safe
// because every batch carries the consistent index (the raft index it
// applies) in the same atomic write, and memtables are flushed in commit
// order: after a crash the database holds a prefix of its batches, the
// consistent index says exactly how far that prefix goes, and the server
// replays the raft log from there.
//
// The one rule this needs: the raft log must keep every entry after the
// backend's durable consistent index. Before the server releases WAL segments
// (or compacts its in-memory raft log) up to index i, a flush must have
// ended that started after the batch of i was committed: Sync, which
// flushes every committed batch into tables, or FlushAsync, the same
// without the wait (the server applies on while it runs, and takes the
// snapshot at i once it is done). The server cuts its log at each raft
// snapshot (every --snapshot-count entries), so a crash costs at most
// about twice that many entries' replay. Close
// flushes too, so a clean stop replays nothing. A database written while
// pebble's WAL was on (by an older Cairn) opens as well: pebble replays its
// logs and flushes them.
//
// # Memtables
//
// A memtable grows to 32 MiB (pebble starts at 256 KiB and doubles) and up
// to four may wait for their flush before commits stall. With pebble's
// default 4 MiB and two, a stream of 1 MiB values flushed every three values
// and stalled commits hundreds of times a run (each stall is logged, see
// stallLog), holding up applies past the request timeout. The cost is
// memory that writes fill: the memtables in use, and one flushed memtable
// pebble keeps to reuse.
//
// # Large values
//
// A stored value (the MVCC store's KeyValue: key, value, revisions) of 1 KiB
// or more is written to a blob file beside the table when its memtable is
// flushed (pebble's value separation), and the table keeps a reference to
// it: compactions then move references, not values, where before each one
// rewrote every value it read. Puts of 2 KiB values (100 clients, 3
// members): the members wrote 25% fewer bytes to the disk and took 12-14%
// less CPU per put; 1 MiB values: 25-29% fewer bytes, see the README.
// Smaller values stay in the tables: separating them would add a blob read
// to every read of them and a reference to every key. A value no key refers
// to any more (its revision compacted) stays in its blob file until pebble
// rewrites the file, which it does once more than a fifth of the values in
// blob files are such garbage; Defragment has every file with garbage
// rewritten and waits for it (see below).
//
// # Sizes and defragmentation
//
// Sizes is what etcd's Status reports as dbSize and dbSizeInUse, and what
// its quota is checked against: pebble's files, with the batches not yet
// flushed counted as if they were, so that a write grows the size at once,
// not when its memtable is flushed. Worked: an empty database takes some
// 3.5 kB (manifest, options); each put of a 4 KiB value adds its batch
// (4.2 kB); after a flush the data is in a compressed table. Defragment
// flushes and compacts every key: tombstones and the data they delete are
// dropped, while commits and reads go on; then it waits while pebble
// rewrites the blob files holding values no key refers to and deletes the
// files left obsolete, so that the sizes it reports after are the space
// left. Writes go on meanwhile and make new obsolete files and garbage, so
// the wait is bounded (with a log line of what is left): by as many
// rewrites as there were blob files, by 10 s without a rewrite ending, and
// by 10 s of waiting for deletions alone. InUse counts a blob file's
// garbage as reclaimable.
//
// # Crashing (simulation)
//
// Every file the backend touches goes through Options.FS, so a simulation
// can run a member on pebble's vfs.NewCrashableMem and cut its power. The
// crash is a copy of the file system keeping only what was synced (a file's
// bytes once the file is synced, a name once its directory is), taken
// before the old database is closed; closing it then (Close flushes, and
// stops pebble's goroutines) writes only to the discarded file system:
//
//	fs := vfs.NewCrashableMem()
//	b, _ := backend.Open("/m1/db", backend.Options{FS: fs})
//	// ... commit batches, Sync now and then ...
//	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // power loss: synced data only
//	b.Close()                                     // abandon; crashed is unaffected
//	b, _ = backend.Open("/m1/db", backend.Options{FS: crashed})
//	// b.ConsistentIndex() >= the index of the last Sync, and the data is
//	// exactly that of the batches up to it.
//
// CrashCloneCfg{UnsyncedDataPercent: p, RNG: rng} also keeps each unsynced
// 4 KiB block and directory entry with probability p%, as a disk may; a
// seeded rng makes the crash reproducible. Pebble flushes and compacts in
// its own goroutines, so what a crash keeps beyond the last Sync can depend
// on their timing.
package backend

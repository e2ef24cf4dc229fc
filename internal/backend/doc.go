// Package backend is the storage engine under the MVCC store: a thin
// wrapper over one pebble database that gives the store what it needs and
// nothing else. Atomic write batches that carry the raft index they apply,
// consistent read views, durable syncs, and checkpoints for raft snapshots.
//
// # Keys
//
// The backend does not interpret keys beyond three reservations: keys that
// start with 0xff or 0x00 cannot be written and never show in a scan
// (databases written before 2026-12-06 keep the consistent index there;
// Open reads it, and the next commit deletes it), and neither can the
// consistent index's records, which live among the MVCC store's revision
// keys, under 'r':
//
//	'r' | position u64 BE | 0xff x 8   -> index u64 BE | term u64 BE
//
// A key under 'r' starts with its position (the MVCC store's revision, see
// its doc.go), and every commit writes one record: at the highest position
// any batch has written a key at, so after every key of its batch and of
// the batches before it. Records are found by that layout alone: the last
// key under 'r' is the latest record, which Open reads (after an import,
// whose maintenance batches record no index, it is a revision, and the
// index is 0). Scans skip records (ScanWithRecords shows them).
//
// Why there: pebble flushes a memtable into a table whose key range runs
// from its first key to its last, and moves a table down a level without
// rewriting it only if no table there overlaps that range. With every
// batch's keys after the last batch's, each flushed table's range begins
// after the one before it ends, and pebble moves tables down instead of
// compacting them. Until 2026-12-06 every batch wrote the index under one
// key after all others (0xff), so every table reached it, all of them
// overlapped, and every flush was rewritten level after level: put with 100
// clients (3 members, puts to one key; CPU profiles of the three
// over 10 s), pebble's compactions other than flushes took 13% of the
// members' samples (1.39 of 10.75 s), and none since (the flushes, 5%,
// are what is left); in three alternating pairs of 150,000 such puts the members took 0.528-0.565 CPU-s per 10k puts against
// 0.593-0.658 and wrote 282-292 MiB to the disk against 354-368.
//
// The cost: a record (17 bytes of key, 16 of value) for every position a
// batch reached, that is for every batch that wrote a revision; a batch
// that wrote none (a lease's, an empty entry's) overwrites the record at
// its position. Records of earlier positions are not deleted by the batch
// that moves past them, which would make each batch's keys reach back to
// the last one's: the MVCC store's compaction deletes those below its
// revision (DeleteRecord), and the latest always stays, whatever its
// position (a new store is at revision 1 with no revision key). A store
// compacted now and then keeps few; one never compacted keeps one a batch
// of writes, beside the revisions' own key and value for every write in
// it. A write that touches other keys (a lease's, a member's) still makes
// its table's range reach back to them; such writes are rare beside puts.
// DeleteRange refuses ranges over 'r'.
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

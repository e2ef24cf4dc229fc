package backend

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/invariants"
	"github.com/cairn-db/cairn/internal/lograte"
)

var (
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("backend: closed")
	// ErrReservedKey is returned for a write to a key in the backend's own
	// metadata prefixes.
	ErrReservedKey = errors.New("backend: key in a reserved prefix (0x00 or 0xff)")
	// ErrCorrupt is returned by Open for a database pebble finds damaged
	// (a corrupt log or table): the member cannot start on it.
	ErrCorrupt = errors.New("backend: corrupt")
)

// The consistent index's record (see the package doc, Keys): under 'r',
// after every revision key of its position, so that the batches' keys grow
// together and pebble moves flushed tables down without rewriting them.
const (
	recordPrefix   = 'r'
	recordKeyBytes = 1 + 8 + 8
	recordMark     = "\xff\xff\xff\xff\xff\xff\xff\xff"
)

// recordKey is the key of the record at position main: 'r' | main
// (big-endian) | 0xff x 8. Its value is the raft index and term, each u64
// big-endian.
func recordKey(main uint64) []byte {
	k := make([]byte, 0, recordKeyBytes)
	k = append(k, recordPrefix)
	k = binary.BigEndian.AppendUint64(k, main)
	return append(k, recordMark...)
}

// IsRecord reports whether key is one of the backend's consistent-index
// records, which no scan shows but ScanWithRecords.
func IsRecord(key []byte) bool {
	return len(key) == recordKeyBytes && key[0] == recordPrefix && string(key[9:17]) == recordMark
}

// Position returns the position (the MVCC store's revision) a key under
// 'r' starts with, a record's included; 0 for other keys.
func Position(key []byte) uint64 {
	if len(key) < 9 || key[0] != recordPrefix {
		return 0
	}
	return binary.BigEndian.Uint64(key[1:9])
}

// Databases written before 2026-12-06 keep the consistent index under
// single keys: after every other key (0xff), or, before 2026-12, before
// them (0x00). Open reads those, and the next commit deletes them.
var (
	oldIndexKey = []byte("\xffconsistent_index")
	oldTermKey  = []byte("\xffconsistent_term")

	legacyIndexKey = []byte("\x00consistent_index")
	legacyTermKey  = []byte("\x00consistent_term")
)

// Options tune a backend. The zero value is usable.
type Options struct {
	// CacheBytes is the block cache size. Default 64 MiB.
	CacheBytes int64
	// Logger receives pebble's log lines. Default: none.
	Logger *zap.Logger
	// FS is the file system the database lives on. Default: the real
	// disk (vfs.Default), as pebble sets it up. A simulation gives each member a vfs.NewCrashableMem
	// (see the package doc, Crashing).
	// NoSyncFS(fs) here makes every sync a no-op (etcd's
	// --unsafe-no-fsync).
	FS vfs.FS
	// CommitSeconds, if set, observes how long each batch commit takes
	// (etcd's etcd_disk_backend_commit_duration_seconds).
	CommitSeconds prometheus.Observer
	// ReadOnly opens the database for reading only: its log is replayed
	// into memory, nothing is flushed or compacted, and writes fail (a
	// backup's export of a checkpoint).
	ReadOnly bool
}

// Backend is an open pebble database. It is safe for concurrent use; the
// applier is its only writer.
//
// Lock order: maintenance, then mu.
type Backend struct {
	db            *pebble.DB
	dir           string
	logger        *zap.Logger
	commitSeconds prometheus.Observer
	readOnly      bool

	// stopMaintenance cancels a Defragment under way; Close calls it.
	stopMaintenance context.CancelFunc
	maintenanceCtx  context.Context
	// maintenance is held shared by a Defragment for its whole run and
	// exclusively by Close around closing the database: pebble panics on
	// a compaction of a closed database.
	maintenance sync.RWMutex

	mu struct {
		sync.Mutex
		// consistentIndex and consistentTerm are the last values
		// committed. Invariant: they never decrease.
		consistentIndex uint64
		consistentTerm  uint64
		// position is the highest position (see the package doc,
		// Keys) any batch wrote a key at, where the next record goes.
		// Invariant: it never decreases, and the latest record is at
		// recordKey(position), holding consistentIndex, once a batch
		// committed since Open, or if Open found a record.
		position uint64
		// legacyMeta: the database still holds the consistent index
		// under its old keys (oldIndexKey, legacyIndexKey), which the
		// next commit deletes.
		legacyMeta bool
		closed     bool
		// sizes are the database's sizes as pebble last reported them
		// (at sizesAt), plus the bytes of every batch committed since
		// (SizesEstimate): pebble's metrics are too dear to take for
		// every request.
		sizes   Sizes
		sizesAt time.Time
	}
	// unflushed estimates the bytes in memtables, in no file yet: the
	// batches committed, less what pebble reports flushed (see flushed).
	// Not under mu: pebble reports a flush from its own goroutine, which
	// Checkpoint waits for under mu. Invariant: >= 0.
	unflushed atomic.Int64
	// flushFailed receives the error of a failed flush (pebble retries a
	// failed flush for ever, so a wait on the flush alone would never end
	// on a disk that refuses it: see flush).
	flushFailed chan error
	// reclaimBlobs counts the Defragments running: while any does, every
	// blob file with garbage is rewritten (see valueSeparation).
	reclaimBlobs atomic.Int32
	// compacted receives (without blocking, so it holds at most one) a
	// signal whenever a compaction or a blob file rewrite ends or a file
	// is deleted.
	compacted chan struct{}
	// blobRewrites counts the blob file rewrites ended.
	blobRewrites atomic.Int64
}

// sizesEvery is how often SizesEstimate asks pebble again; between two
// asks it adds the batches committed to the last answer.
const sizesEvery = 100 * time.Millisecond

// Pebble's memtables (see the package doc, Memtables): a memtable grows to
// memTableBytes before it is flushed, and commits stall only once
// memTableStopWrites of them wait for a flush.
const (
	memTableBytes      = 32 << 20
	memTableStopWrites = 4
)

// Values of at least separateValueBytes (the stored KeyValue: key, value
// and revisions) are kept in blob files beside the tables (see the package
// doc, Large values), and pebble rewrites blob files once more than
// blobGarbageRatio of their values are referenced by no key; blobRewriteWait
// bounds how long Defragment waits for the next rewrite to end, and for the
// obsolete files' deletion (reclaimBlobGarbage).
const (
	separateValueBytes = 1 << 10
	blobGarbageRatio   = 0.2
	blobRewriteWait    = 10 * time.Second
)

// Open opens (creating if needed) the database in dir.
func Open(dir string, opts Options) (*Backend, error) {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	stalls := &stallLog{logger: opts.Logger, every: stallLogEvery}
	b := &Backend{dir: dir, logger: opts.Logger, commitSeconds: opts.CommitSeconds, readOnly: opts.ReadOnly,
		flushFailed: make(chan error, 1), compacted: make(chan struct{}, 1)}
	popts := &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{l: opts.Logger.Sugar(), errs: &lograte.Limit{}},
		// Left nil, pebble takes vfs.Default and watches it for slow
		// syncs (WithDiskHealthChecks), which a given FS goes without.
		FS:       opts.FS,
		ReadOnly: opts.ReadOnly,
		// The raft WAL is the log (see the package doc, Durability):
		// batches live in memtables until flushed. A database written
		// with pebble's WAL opens too: its logs are replayed and flushed.
		DisableWAL:                  true,
		MemTableSize:                memTableBytes,
		MemTableStopWritesThreshold: memTableStopWrites,
		EventListener: &pebble.EventListener{
			WriteStallBegin:    stalls.begin,
			WriteStallEnd:      stalls.end,
			FlushEnd:           b.flushed,
			CompactionEnd:      func(pebble.CompactionInfo) { b.signalCompacted() },
			BlobFileRewriteEnd: func(pebble.BlobFileRewriteInfo) { b.blobRewrites.Add(1); b.signalCompacted() },
			TableDeleted:       func(pebble.TableDeleteInfo) { b.signalCompacted() },
			BlobFileDeleted:    func(pebble.BlobFileDeleteInfo) { b.signalCompacted() },
		},
	}
	popts.Experimental.ValueSeparationPolicy = b.valueSeparation
	db, err := pebble.Open(dir, popts)
	if pebble.IsCorruptionError(err) {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("backend: opening %s: %w", dir, err)
	}
	b.db = db
	b.maintenanceCtx, b.stopMaintenance = context.WithCancel(context.Background())
	err = b.loadConsistentIndex()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("backend: opening %s: %w", dir, err)
	}
	return b, nil
}

// loadConsistentIndex reads the consistent index and term into mu: from
// the last key under 'r', the latest record, or else from the old keys of
// a database that has only those.
func (b *Backend) loadConsistentIndex() error {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte{recordPrefix}, UpperBound: []byte{recordPrefix + 1}})
	if err != nil {
		return err
	}
	var found bool
	if it.Last() {
		k := it.Key()
		b.mu.position = Position(k)
		if IsRecord(k) {
			v, err := it.ValueAndErr()
			if err == nil && len(v) != 16 {
				err = fmt.Errorf("%w: record %x holds %d bytes, not 16", ErrCorrupt, k, len(v))
			}
			if err != nil {
				it.Close()
				return err
			}
			found = true
			b.mu.consistentIndex = binary.BigEndian.Uint64(v)
			b.mu.consistentTerm = binary.BigEndian.Uint64(v[8:])
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	fromRecord := found
	for _, old := range [][2][]byte{{oldIndexKey, oldTermKey}, {legacyIndexKey, legacyTermKey}} {
		index, ok, err := b.getUint64(old[0])
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		b.mu.legacyMeta = true
		switch {
		case fromRecord:
			// A commit deletes the old keys as it writes the first
			// record: both are there only if something else wrote.
			return fmt.Errorf("%w: the consistent index is both in a record (%d) and under %q", ErrCorrupt, b.mu.consistentIndex, old[0][1:])
		case found:
			continue // the 0xff keys, read first, are the newer
		}
		term, _, err := b.getUint64(old[1])
		if err != nil {
			return err
		}
		b.mu.consistentIndex, b.mu.consistentTerm = index, term
		found = true
	}
	return nil
}

// getUint64 reads an 8-byte big-endian value; found is false (and the
// value 0) for a key the database does not hold.
func (b *Backend) getUint64(key []byte) (v uint64, found bool, err error) {
	buf, closer, err := b.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(buf) != 8 {
		return 0, true, fmt.Errorf("backend: %q holds %d bytes, not 8", key[1:], len(buf))
	}
	return binary.BigEndian.Uint64(buf), true, nil
}

// ConsistentIndex returns the raft index (and its term) of the last batch
// committed: after a restart, of the last batch that survived.
func (b *Backend) ConsistentIndex() (index, term uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.consistentIndex, b.mu.consistentTerm
}

// Close closes the database, flushing it first (see the package doc,
// Durability: without a flush, batches since the last Sync would be lost).
func (b *Backend) Close() error {
	b.stopMaintenance()
	b.maintenance.Lock()
	defer b.maintenance.Unlock()
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.mu.closed = true
	b.mu.Unlock()
	var err error
	if !b.readOnly {
		// On failure, what the memtables held is still in the raft
		// log, which replays it at the next start.
		err = b.flush()
	}
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sync makes every batch committed so far durable: it flushes the
// memtables into tables, which pebble syncs. It costs a flush (a table
// write of what the memtables hold), so the server calls it only where the
// raft log is about to be cut (see the package doc, Durability).
func (b *Backend) Sync() error {
	// Pebble panics on a flush of a closed database: Close waits for
	// maintenance.
	b.maintenance.RLock()
	defer b.maintenance.RUnlock()
	if b.closed() {
		return ErrClosed
	}
	if b.readOnly {
		return nil
	}
	return b.flush()
}

// closed reports whether Close has begun.
func (b *Backend) closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.closed
}

// emptyFlush is the error pebble's FlushEnd carries for a flush that had
// nothing to write (its variable is unexported).
const emptyFlush = "pebble: empty table"

// flush flushes the memtables and waits for it, or for a flush to fail:
// pebble retries a failed flush for ever (a full disk, a directory gone),
// and a flush cannot complete before the ones queued ahead of it. The
// caller holds maintenance (shared or not): pebble panics on a flush of a
// closed database.
func (b *Backend) flush() error {
	return b.startFlush(nil).Err()
}

// A Flush is a flush of the memtables under way (FlushAsync).
type Flush struct {
	done chan struct{}
	// err is the flush's result, set before done is closed.
	err error
}

// Done is closed once the flush has ended: completed, failed, or given up
// because the backend closed.
func (f *Flush) Done() <-chan struct{} { return f.done }

// Err waits for the flush to end and returns its result: nil once every
// batch committed before it started is in a table.
func (f *Flush) Err() error {
	<-f.done
	return f.err
}

// endedFlush is a Flush that ended with err before it began.
func endedFlush(err error) *Flush {
	f := &Flush{done: make(chan struct{}), err: err}
	close(f.done)
	return f
}

// FlushAsync is Sync without the wait: it starts a flush of every batch
// committed so far and returns at once. The flush's Err is what Sync would
// have returned, or ErrClosed if the backend closes first (Close flushes
// anyway). The server starts one at each raft snapshot and takes the
// snapshot when it is done, so that applying goes on while the memtables
// are written.
func (b *Backend) FlushAsync() *Flush {
	b.maintenance.RLock()
	defer b.maintenance.RUnlock()
	if b.closed() {
		return endedFlush(ErrClosed)
	}
	if b.readOnly {
		return endedFlush(nil)
	}
	return b.startFlush(b.maintenanceCtx.Done())
}

// startFlush starts a flush, under maintenance, and a goroutine that
// waits for it (or for a failure, or for stop) and ends the Flush; the
// goroutine ends with it. Close passes a nil stop: it has cancelled the
// maintenance context and must still wait for its own flush.
func (b *Backend) startFlush(stop <-chan struct{}) *Flush {
	for drained := false; !drained; {
		select {
		case <-b.flushFailed: // an earlier failure, already reported
		default:
			drained = true
		}
	}
	flushed, err := b.db.AsyncFlush()
	if err != nil {
		return endedFlush(fmt.Errorf("backend: flushing %s: %w", b.dir, err))
	}
	f := &Flush{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		select {
		case <-flushed:
		case err := <-b.flushFailed:
			f.err = fmt.Errorf("backend: flushing %s: %w", b.dir, err)
		case <-stop:
			f.err = ErrClosed
		}
	}()
	return f
}

// flushed is pebble's FlushEnd event: what it flushed is in a table now.
// Pebble reports the memtables' bytes, their skiplist included, which
// exceed the batches' bytes they hold, so unflushed errs low, never below
// zero.
func (b *Backend) flushed(info pebble.FlushInfo) {
	if info.Err != nil && info.Err.Error() == emptyFlush {
		return // nothing to flush: a success (pebble's metamorphic tests tell it so too)
	}
	if info.Err != nil {
		select {
		case b.flushFailed <- info.Err:
		default:
		}
		return
	}
	for {
		n := b.unflushed.Load()
		if b.unflushed.CompareAndSwap(n, max(0, n-int64(info.InputBytes))) {
			return
		}
	}
}

// Batch is a set of writes committed atomically, together with the raft
// index they apply. It is not safe for concurrent use.
type Batch struct {
	b     *Backend
	batch *pebble.Batch
	err   error
	// position is the highest position of a key the batch wrote, and
	// oldRecords the records it deletes unless one is the latest.
	position   uint64
	oldRecords [][]byte
}

// NewBatch starts a batch.
func (b *Backend) NewBatch() *Batch {
	return &Batch{b: b, batch: b.db.NewBatch()}
}

// writable reports whether the batch takes a write to key (starting at
// key, for a range): none after an error, and none to the keys reserved
// for the backend's own records (under 0x00 and 0xff), which is recorded
// as the batch's error.
func (wb *Batch) writable(key []byte) bool {
	if wb.err == nil && (len(key) == 0 || key[0] == 0 || key[0] == 0xff || IsRecord(key)) {
		wb.err = fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	if p := Position(key); p > wb.position {
		wb.position = p
	}
	return wb.err == nil
}

// Set writes key = value.
func (wb *Batch) Set(key, value []byte) {
	if wb.writable(key) {
		wb.err = wb.batch.Set(key, value, nil)
	}
}

// SetEncoded writes key = a value of n bytes that encode writes in place
// into the slice it is given (of length n): a large value is encoded
// straight into the batch instead of into a buffer copied there.
func (wb *Batch) SetEncoded(key []byte, n int, encode func(dst []byte)) {
	if !wb.writable(key) {
		return
	}
	op := wb.batch.SetDeferred(len(key), n)
	copy(op.Key, key)
	encode(op.Value)
	wb.err = op.Finish()
}

// Delete removes key.
func (wb *Batch) Delete(key []byte) {
	if wb.writable(key) {
		wb.err = wb.batch.Delete(key, nil)
	}
}

// DeleteRange removes every key in [start, end). The range must end at or
// before the reserved 0xff prefix, and stay clear of 'r', where the
// consistent index's records are.
func (wb *Batch) DeleteRange(start, end []byte) {
	if wb.err == nil && (bytes.Compare(end, reservedEnd) > 0 ||
		bytes.Compare(start, []byte{recordPrefix + 1}) < 0 && bytes.Compare(end, []byte{recordPrefix}) > 0) {
		wb.err = fmt.Errorf("%w: a range from %q to %q", ErrReservedKey, start, end)
	}
	if wb.writable(start) {
		wb.err = wb.batch.DeleteRange(start, end, nil)
	}
}

// DeleteRecord deletes a record (a key IsRecord accepts) if it is not the
// latest when the batch commits: what a compaction of the positions
// before it leaves to remove. The latest stays, whatever its position:
// a store's revision can be above the position of every key written (a
// new store, at revision 1, has no revision key).
func (wb *Batch) DeleteRecord(key []byte) {
	if wb.err == nil && !IsRecord(key) {
		wb.err = fmt.Errorf("backend: deleting %x, not a record", key)
	}
	if wb.err == nil {
		wb.oldRecords = append(wb.oldRecords, slices.Clone(key))
	}
}

// commitLocked commits the batch's writes, recording in mu the position
// they reach; mu is held.
func (wb *Batch) commitLocked(what string) error {
	b := wb.b
	if len(wb.oldRecords) > 0 {
		latest := recordKey(b.mu.position)
		for _, k := range wb.oldRecords {
			if bytes.Compare(k, latest) < 0 {
				if err := wb.batch.Delete(k, nil); err != nil {
					return err
				}
			}
		}
	}
	start := time.Now()
	if err := wb.batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("backend: %s: %w", what, err)
	}
	if b.commitSeconds != nil {
		b.commitSeconds.Observe(time.Since(start).Seconds())
	}
	b.mu.position = max(b.mu.position, wb.position)
	b.addSizeLocked(wb.batch.Len())
	return nil
}

// reservedEnd is where the reserved 0xff prefix starts.
var reservedEnd = []byte{0xff}

// Commit applies the batch atomically, recording that it applies the raft
// entry at (index, term), which must not be below the last one committed.
// Commit does not sync (see the package doc). A batch cannot be used after
// Commit or Close.
func (wb *Batch) Commit(index, term uint64) error {
	defer wb.Close()
	if wb.err != nil {
		return wb.err
	}
	b := wb.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return ErrClosed
	}
	if index < b.mu.consistentIndex {
		// The applier applies each entry once, in order.
		if invariants.Enabled {
			panic(fmt.Sprintf("backend: committing index %d after %d", index, b.mu.consistentIndex))
		}
		return fmt.Errorf("backend: committing index %d after %d", index, b.mu.consistentIndex)
	}
	// The record goes after every key the batch writes, and after the
	// last record: see the package doc, Keys. At the same position (no
	// revision written since) it overwrites the one there: records pile
	// up only as revisions do.
	pos := max(b.mu.position, wb.position)
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), index), term)
	if err := wb.batch.Set(recordKey(pos), v, nil); err != nil {
		return err
	}
	if b.mu.legacyMeta {
		for _, k := range [][]byte{oldIndexKey, oldTermKey, legacyIndexKey, legacyTermKey} {
			if err := wb.batch.Delete(k, nil); err != nil {
				return err
			}
		}
	}
	wb.position = pos
	if err := wb.commitLocked(fmt.Sprintf("committing index %d", index)); err != nil {
		return err
	}
	b.mu.consistentIndex, b.mu.consistentTerm = index, term
	b.mu.legacyMeta = false
	return nil
}

// CommitMaintenance applies the batch atomically without recording a raft
// index: for maintenance that applies no entry, such as removing what a
// compaction (itself applied with its entry) made unreadable. Such writes
// must be idempotent, since a crash can lose them.
func (wb *Batch) CommitMaintenance() error {
	defer wb.Close()
	if wb.err != nil {
		return wb.err
	}
	wb.b.mu.Lock()
	defer wb.b.mu.Unlock()
	if wb.b.mu.closed {
		return ErrClosed
	}
	return wb.commitLocked("committing maintenance")
}

// Close discards a batch that was not committed.
func (wb *Batch) Close() {
	if wb.batch != nil {
		wb.batch.Close()
		wb.batch = nil
	}
}

// ReadView is a consistent, unchanging view of the database as of when it
// was made. Close it when done: it pins the data it sees.
type ReadView struct {
	snap *pebble.Snapshot
}

// NewReadView makes a read view of everything committed so far.
func (b *Backend) NewReadView() *ReadView {
	return &ReadView{snap: b.db.NewSnapshot()}
}

// Get returns the value of key, or nil and false if it has none. The value
// is a copy.
func (r *ReadView) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := r.snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// GetFunc calls fn with the value stored under key, if there is one, and
// returns whether there was and fn's error. The value is valid only during
// the call: for decoders that copy what they keep, saving Get's copy.
func (r *ReadView) GetFunc(key []byte, fn func(value []byte) error) (bool, error) {
	v, closer, err := r.snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, fn(v)
}

// Getter looks up many keys in a ReadView through one pebble iterator:
// each Get builds an iterator of its own over every level, which for a
// read of many values (a Range's) costs more than reading them. Close it
// before the view.
type Getter struct {
	it *pebble.Iterator
}

// NewGetter returns a Getter over the view's keys from lower on.
func (r *ReadView) NewGetter(lower []byte) (*Getter, error) {
	it, err := r.snap.NewIter(&pebble.IterOptions{LowerBound: lower})
	if err != nil {
		return nil, err
	}
	return &Getter{it: it}, nil
}

// GetFunc is ReadView.GetFunc. Keys looked up in ascending order cost
// least (pebble then steps instead of seeking).
func (g *Getter) GetFunc(key []byte, fn func(value []byte) error) (bool, error) {
	if !g.it.SeekGE(key) || !bytes.Equal(g.it.Key(), key) {
		return false, g.it.Error()
	}
	v, err := g.it.ValueAndErr()
	if err != nil {
		return false, err
	}
	return true, fn(v)
}

// Close releases the iterator.
func (g *Getter) Close() error { return g.it.Close() }

// Scan calls fn with each key in [start, end) in order (end nil: every key
// from start on), until fn returns false; the backend's own keys never
// show. key and value are valid only during the call.
func (r *ReadView) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	return scan(r.snap.NewIter, start, end, false, false, fn)
}

// ScanWithRecords is Scan showing the consistent index's records too
// (IsRecord), for a compaction that deletes the old ones.
func (r *ReadView) ScanWithRecords(start, end []byte, fn func(key, value []byte) bool) error {
	return scan(r.snap.NewIter, start, end, false, true, fn)
}

// ScanReverse is Scan in descending key order.
func (r *ReadView) ScanReverse(start, end []byte, fn func(key, value []byte) bool) error {
	return scan(r.snap.NewIter, start, end, true, false, fn)
}

func scan(newIter func(*pebble.IterOptions) (*pebble.Iterator, error), start, end []byte, reverse, records bool,
	fn func(key, value []byte) bool) error {
	// Never show the backend's own keys.
	if len(start) == 0 || start[0] == 0 {
		start = []byte{1}
	}
	if end == nil || bytes.Compare(end, reservedEnd) > 0 {
		end = reservedEnd
	}
	it, err := newIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	var valid bool
	if reverse {
		valid = it.Last()
	} else {
		valid = it.First()
	}
	for valid {
		if k := it.Key(); records || !IsRecord(k) {
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return err
			}
			if !fn(k, v) {
				break
			}
		}
		if reverse {
			valid = it.Prev()
		} else {
			valid = it.Next()
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

// Close releases the view.
func (r *ReadView) Close() error { return r.snap.Close() }

// Checkpoint writes a consistent copy of the database into dir (on the
// backend's file system), which must not exist, as of the last batch committed; it hard-links the immutable
// table files, so it costs little space or time. It returns the consistent
// index the copy holds. A raft snapshot sends such a copy.
//
// Commits wait while it holds mu: for the flush of the memtables and for
// pebble's copy (hard links, the manifest). A caller that Syncs first,
// without its own locks (Applier.Checkpoint does), leaves only what was
// committed since for the flush under mu. With 24 MiB committed since the
// last flush and a loop committing 1 KiB batches as fast as it can beside
// it, the longest commit took 57-88 ms with the whole flush under mu,
// 23-43 ms after a Sync first (BenchmarkCommitDuringCheckpoint, six
// alternating runs of each); a member commits far slower than that loop,
// so less is left for the flush under mu.
func (b *Backend) Checkpoint(dir string) (index, term uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return 0, 0, ErrClosed
	}
	// Under mu no batch commits, so the index read here is the copy's.
	// A checkpoint holds tables only (pebble's WAL is off): flush the
	// memtables into them first.
	if err := b.flush(); err != nil {
		return 0, 0, fmt.Errorf("backend: checkpoint into %s: %w", dir, err)
	}
	if err := b.db.Checkpoint(dir); err != nil {
		return 0, 0, fmt.Errorf("backend: checkpoint into %s: %w", dir, err)
	}
	return b.mu.consistentIndex, b.mu.consistentTerm, nil
}

// stallLogEvery is the least time between two log lines about write
// stalls: under a write load the disk cannot keep up with, pebble may stall
// writes many times a second.
const stallLogEvery = 10 * time.Second

// stallLog logs pebble's write stalls: the times a commit waits because
// the memtables waiting to be flushed, or the level-0 tables waiting to be
// compacted, reached pebble's limit. Applying entries waits with it, and a
// long enough wait times requests out ("request timed out", stage "not
// applied in time"): the line says why. The first stall is logged when it
// ends; later ones are summed into at most one line every stallLogEvery.
type stallLog struct {
	logger *zap.Logger
	every  time.Duration

	mu      sync.Mutex
	began   time.Time
	reason  string
	count   int           // stalls since the last line
	stalled time.Duration // their total length
	logged  time.Time     // when the last line was written; zero: never
}

func (l *stallLog) begin(info pebble.WriteStallBeginInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.began, l.reason = time.Now(), info.Reason
}

func (l *stallLog) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.began.IsZero() {
		return
	}
	now := time.Now()
	l.count++
	l.stalled += now.Sub(l.began)
	l.began = time.Time{}
	if !l.logged.IsZero() && now.Sub(l.logged) < l.every {
		return
	}
	since := "since the last such line"
	if l.logged.IsZero() {
		since = "first stall since the backend opened"
	}
	l.logger.Warn("backend writes stalled: the storage engine's flushes or compactions are behind the writes",
		zap.Int("stalls", l.count), zap.Duration("stalled", l.stalled), zap.String("last-reason", l.reason),
		zap.String("counted", since))
	l.count, l.stalled, l.logged = 0, 0, now
}

// pebbleLogger hands pebble's log lines to zap. Pebble calls Fatalf for
// states it cannot continue from; that is a crash, loudly. Its errors are
// limited to one line a second (errs): pebble retries a failed flush or
// compaction at once and logs each failure, thousands a second on a full
// disk, which the log would then fill further.
type pebbleLogger struct {
	l    *zap.SugaredLogger
	errs *lograte.Limit
}

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Infof("pebble: "+format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	n, ok := p.errs.Take(time.Now())
	if !ok {
		return
	}
	if n > 1 {
		format += fmt.Sprintf(" (%d pebble errors since the last such line, this one included)", n)
	}
	p.l.Errorf("pebble: "+format, args...)
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf("pebble: "+format, args...)
	p.l.Error(msg)
	panic(msg)
}

// Sizes are how much space the database takes, in bytes.
type Sizes struct {
	// Total is what the database occupies: its tables (obsolete ones not
	// yet deleted included), manifest and options file, and the batches
	// committed but not yet flushed into a table, counted as if they were
	// (they are in memtables: a write grows the size at once). It leaves
	// out logs pebble wrote before its WAL was turned off, once obsolete.
	Total int64
	// InUse leaves out of Total what compacting the whole database would
	// give back: tables pebble no longer needs, the outputs of compactions
	// under way, and its estimate of the bytes that deleted data (point
	// and range tombstones and what they shadow) holds in tables.
	InUse int64
}

// Sizes returns the database's sizes now (zero once closed). It asks
// pebble for its metrics: not for every request (see SizesEstimate).
func (b *Backend) Sizes() Sizes { return b.Stats().Sizes }

// SizesEstimate returns the database's sizes (zero once closed) as pebble
// reported them at most sizesEvery ago, plus the batches committed since:
// cheap enough for every request.
func (b *Backend) SizesEstimate() Sizes {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return Sizes{}
	}
	if time.Since(b.mu.sizesAt) >= sizesEvery {
		b.mu.sizes, b.mu.sizesAt = sizesOf(b.db.Metrics(), b.unflushed.Load()), time.Now()
	}
	return b.mu.sizes
}

// sizesOf derives Sizes from pebble's metrics and the bytes committed and
// not yet flushed.
func sizesOf(m *pebble.Metrics, unflushed int64) Sizes {
	total := m.DiskSpaceUsage() - m.WAL.ObsoletePhysicalSize + uint64(unflushed)
	reclaimable := m.Table.Local.ObsoleteSize + m.Table.Local.ZombieSize +
		m.BlobFiles.Local.ObsoleteSize + m.BlobFiles.Local.ZombieSize + uint64(m.Compact.InProgressBytes) +
		m.Table.Garbage.PointDeletionsBytesEstimate + m.Table.Garbage.RangeDeletionsBytesEstimate
	if garbage := blobGarbage(m); garbage > 0 {
		// The live blob files' share of values no key refers to, on disk.
		reclaimable += uint64(float64(m.BlobFiles.LiveSize) * float64(garbage) / float64(m.BlobFiles.ValueSize))
	}
	return Sizes{Total: int64(total), InUse: int64(total - min(reclaimable, total))}
}

// addSizeLocked adds a committed batch's bytes to the sizes until pebble
// is asked again.
// REQUIRES: b.mu held.
func (b *Backend) addSizeLocked(n int) {
	b.mu.sizes.Total += int64(n)
	b.mu.sizes.InUse += int64(n)
	b.unflushed.Add(int64(n))
}

// Stats are the database's gauges, for metrics.
type Stats struct {
	Sizes
	// OpenReadViews is how many read views (pebble snapshots) are open.
	OpenReadViews int
}

// Stats returns the database's gauges (zero once closed). It asks pebble
// for its metrics: not for every request.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return Stats{}
	}
	m := b.db.Metrics()
	b.mu.sizes, b.mu.sizesAt = sizesOf(m, b.unflushed.Load()), time.Now()
	return Stats{Sizes: b.mu.sizes, OpenReadViews: m.Snapshots.Count}
}

// Defragment compacts the whole database (a manual compaction of every
// key, after flushing the memtables), so that deleted and overwritten
// data gives its space back, as etcd's defragmentation does, then waits
// while pebble rewrites the blob files that hold values no key refers to
// any more (reclaimBlobGarbage). Reads and writes go on meanwhile. Close
// cancels it (ErrClosed).
func (b *Backend) Defragment() error {
	b.maintenance.RLock()
	defer b.maintenance.RUnlock()
	if b.closed() {
		return ErrClosed
	}
	ctx := b.maintenanceCtx
	b.reclaimBlobs.Add(1)
	defer b.reclaimBlobs.Add(-1)
	err := b.flush()
	if err == nil {
		var first, last []byte
		first, last, err = b.keyBounds()
		if err == nil && first != nil {
			// Compact's end is exclusive: just past the last key.
			err = b.db.Compact(ctx, first, append(last, 0), true)
		}
	}
	if err == nil {
		b.reclaimBlobGarbage(ctx)
	}
	b.mu.Lock()
	b.mu.sizesAt = time.Time{} // ask pebble afresh
	b.mu.Unlock()
	if ctx.Err() != nil {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("backend: defragmenting %s: %w", b.dir, err)
	}
	return nil
}

// valueSeparation is pebble's value separation policy (see the package
// doc, Large values): while a Defragment runs, any blob file holding a
// value no key refers to is rewritten, rather than once the garbage passes
// blobGarbageRatio. Pebble asks for it whenever it picks a compaction.
func (b *Backend) valueSeparation() pebble.ValueSeparationPolicy {
	p := pebble.ValueSeparationPolicy{
		Enabled:               true,
		MinimumSize:           separateValueBytes,
		MaxBlobReferenceDepth: 10,
		TargetGarbageRatio:    blobGarbageRatio,
	}
	if b.reclaimBlobs.Load() > 0 {
		p.TargetGarbageRatio = 0
	}
	return p
}

func (b *Backend) signalCompacted() {
	select {
	case b.compacted <- struct{}{}:
	default:
	}
}

// reclaimBlobGarbage waits, with reclaimBlobs raised, until the blob files
// hold no value that no key refers to (pebble rewrites them one at a time
// once a compaction ends) and the files that compactions and rewrites left
// obsolete are deleted (pebble deletes them in the background), so that
// Sizes shows the space given back.
//
// Writes go on meanwhile, and with them compactions, which leave new
// obsolete files and, after an MVCC compaction, new garbage: so the wait
// ends too, logging what is left, once pebble has rewritten as many blob
// files as there were when it began, once no rewrite has ended for
// blobRewriteWait (pebble found nothing more to rewrite), once the
// obsolete files alone have been waited for that long, or when ctx ends.
func (b *Backend) reclaimBlobGarbage(ctx context.Context) {
	m := b.db.Metrics()
	rewrites := b.blobRewrites.Load()
	limit := rewrites + int64(m.BlobFiles.LiveCount)
	progress := time.Now() // the last rewrite's end, or the start
	var deletionsFrom time.Time
	for {
		garbage := blobGarbage(m)
		obsolete := m.Table.Local.ObsoleteSize + m.BlobFiles.Local.ObsoleteSize
		if n := b.blobRewrites.Load(); n != rewrites {
			rewrites, progress = n, time.Now()
		}
		deadline := progress.Add(blobRewriteWait)
		if garbage == 0 || rewrites >= limit {
			if obsolete == 0 {
				return
			}
			if deletionsFrom.IsZero() {
				deletionsFrom = time.Now()
			}
			deadline = deletionsFrom.Add(blobRewriteWait)
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-b.compacted:
			t.Stop()
		case <-t.C:
			b.logger.Info("defragment left unreferenced values in blob files or obsolete files",
				zap.Uint64("unreferenced-value-bytes", garbage), zap.Uint64("blob-files", m.BlobFiles.LiveCount),
				zap.Uint64("obsolete-file-bytes", obsolete))
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
		m = b.db.Metrics()
	}
}

// blobGarbage is the bytes of values in live blob files that no key
// refers to (uncompressed): what rewriting every blob file would drop.
func blobGarbage(m *pebble.Metrics) uint64 {
	if m.BlobFiles.ValueSize <= m.BlobFiles.ReferencedValueSize {
		return 0
	}
	return m.BlobFiles.ValueSize - m.BlobFiles.ReferencedValueSize
}

// keyBounds returns the first and last keys (metadata included), nil if
// the database is empty.
func (b *Backend) keyBounds() (first, last []byte, err error) {
	it, err := b.db.NewIter(nil)
	if err != nil {
		return nil, nil, err
	}
	if it.First() {
		first = slices.Clone(it.Key())
	}
	if it.Last() {
		last = slices.Clone(it.Key())
	}
	return first, last, errors.Join(it.Error(), it.Close())
}

// Dir is the database's directory.
func (b *Backend) Dir() string { return b.dir }

package mvcc

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/backend"
)

// compactBatchKeys bounds how many revisions one removal batch deletes, so
// that a large compaction never holds the backend for long.
const compactBatchKeys = 1000

// Compact makes revisions below rev unreadable, as the raft entry at
// (index, term) asks. The index forgets them at once; the backend's copies
// are removed in the background, in bounded batches, and the returned
// channel is closed when that is done. The compaction revision is recorded
// with the entry's index, so a restart resumes an unfinished removal.
//
// A rev at or below the last compaction fails with ErrCompacted, one above
// the current revision with ErrFutureRev; the entry is applied either way.
func (s *Store) Compact(rev int64, index, term uint64) (<-chan struct{}, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	current, compacted, ever := s.mu.currentRev, s.mu.compactRev, s.mu.compacted
	s.mu.RUnlock()
	// The compaction's hash (see compactionHash) covers every revision
	// since the last compaction only if that one's removal finished.
	hashFrom := compactionHash{prevRev: compacted}
	if !ever {
		hashFrom.prevRev = -1
	}
	var err error
	if hashFrom.keep, err = s.prevCompactionFinished(); err != nil {
		return nil, err
	}
	batch := s.b.NewBatch()
	var refusal error
	switch {
	case rev < compacted || rev == compacted && ever:
		refusal = ErrCompacted
	case rev > current:
		refusal = ErrFutureRev
	default:
		batch.Set(scheduledCompactKey, binary.BigEndian.AppendUint64(nil, uint64(rev)))
	}
	if err := batch.Commit(index, term); err != nil {
		return nil, err
	}
	if refusal != nil {
		done := make(chan struct{})
		close(done) // nothing to wait for
		return done, refusal
	}
	s.mu.Lock()
	s.mu.compactRev = rev
	s.mu.compacted = true
	s.mu.Unlock()
	// A cached read view would keep pebble from reclaiming what the
	// removal deletes.
	s.views.close()
	// Reads below rev fail from here on. The rest, the index's share
	// included, happens in the background, so writes go on.
	return s.compactor.start(s, rev, nil, hashFrom), nil
}

// prevCompactionFinished reports whether the removal of the last
// compaction (if any) is done, as etcd's checkPrevCompactionCompleted.
func (s *Store) prevCompactionFinished() (bool, error) {
	view := s.b.NewReadView()
	defer view.Close()
	scheduled, sok, err := view.Get(scheduledCompactKey)
	if err != nil {
		return false, err
	}
	finished, fok, err := view.Get(finishedCompactKey)
	if err != nil {
		return false, err
	}
	return sok == fok && bytes.Equal(scheduled, finished), nil
}

// compactionHash says how a compaction hashes what it removes, as etcd's
// does: the hash of the history up to the compaction revision, with
// prevRev (the compaction before, -1 for none) as the compaction revision
// and the compaction's own kept revisions as keep (see kvHasher). keep
// says whether to store it for HashByRev: only if the removal before
// finished (etcd-io/etcd#15919), and never for a removal resumed after a
// restart.
type compactionHash struct {
	prevRev int64
	keep    bool
}

// compactor runs the removals compactions schedule, one at a time and in
// the order scheduled, each in a goroutine it owns, which waits for the
// one before it to end. Out of order (they took turns on a mutex, which
// is not first come, first served), a removal of a later compaction could
// run before an earlier one's: the earlier one then hashed what the later
// had already removed, a hash its peers would not have, and recorded its
// revision as the last finished.
type compactor struct {
	wg    sync.WaitGroup
	stopc chan struct{}
	once  sync.Once

	lastMu sync.Mutex
	last   <-chan struct{} // closed when the latest removal started is done

	// batchKeys is compactBatchKeys; tests make it small.
	batchKeys int
	// crashAfterBatches, if positive, makes a removal give up after that
	// many batches, as a crash would: tests restart from there. Both are
	// set before any removal starts and never change.
	crashAfterBatches int
}

func (c *compactor) init(batchKeys, crashAfterBatches int) {
	c.stopc = make(chan struct{})
	c.batchKeys, c.crashAfterBatches = batchKeys, crashAfterBatches
}

// start compacts the index at rev (unless keep, what that kept, is given)
// and removes, in the background, the revisions at or below rev that the
// index no longer needs, hashing them as hashFrom says; then records the
// compaction finished.
func (c *compactor) start(s *Store, rev int64, keep map[Revision]struct{}, hashFrom compactionHash) <-chan struct{} {
	done := make(chan struct{})
	c.lastMu.Lock()
	prev := c.last
	c.last = done
	c.lastMu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev // ends soon after stop too: it stops at its next batch
		}
		select {
		case <-c.stopc:
			return // stopped: a restart resumes what is scheduled
		default:
		}
		if keep == nil {
			start := time.Now()
			keep = s.index.compact(rev)
			s.metrics.indexCompactionPauseMs.Observe(float64(time.Since(start)) / float64(time.Millisecond))
		}
		hasher := newKVHasher(hashFrom.prevRev, rev, keep, nil)
		finished, err := c.remove(s, rev, keep, hasher)
		switch {
		case err != nil:
			s.logger.Error("mvcc: removing compacted revisions; a restart resumes it",
				zap.Int64("revision", rev), zap.Error(err))
		case finished && hashFrom.keep:
			s.logStoredHash(hasher.sum())
			s.hashes.store(hasher.sum())
		case finished:
			s.logger.Info("previous compaction was interrupted, skip storing compaction hash value")
		}
		s.views.close() // a view made during the removal pins what it removed
	}()
	return done
}

// wait waits for the latest removal started, for tests.
func (c *compactor) wait() {
	c.lastMu.Lock()
	last := c.last
	c.lastMu.Unlock()
	if last != nil {
		<-last
	}
}

// stop makes running removals return at their next batch, and waits.
func (c *compactor) stop() {
	c.once.Do(func() { close(c.stopc) })
	c.wg.Wait()
}

// remove deletes the revisions at or below rev not in keep, writing each
// it meets, removed or not, to hasher. It reports whether it finished
// (it stops early when the store closes).
func (c *compactor) remove(s *Store, rev int64, keep map[Revision]struct{}, hasher *kvHasher) (bool, error) {
	end := revisionKey(Revision{Main: rev + 1}, false)
	from := []byte{'r'}
	removed := 0
	start := time.Now()
	for batches := 0; ; batches++ {
		select {
		case <-c.stopc:
			return false, nil
		default:
		}
		if c.crashAfterBatches > 0 && batches == c.crashAfterBatches {
			return false, nil
		}
		var doomed, records [][]byte
		view := s.b.NewReadView()
		err := view.ScanWithRecords(from, end, func(k, v []byte) bool {
			if backend.IsRecord(k) {
				// The backend's records of the consistent index
				// before rev: newer ones (the compaction's own
				// at least) stay. Not history: not hashed.
				if backend.Position(k) < uint64(rev) {
					records = append(records, bytes.Clone(k))
				}
			} else {
				r, _, err := parseRevisionKey(k)
				if err != nil {
					return true // Open reported it; leave it
				}
				if err := hasher.write(k, v); err != nil {
					panic(err) // parsed above
				}
				if _, ok := keep[r]; !ok {
					doomed = append(doomed, bytes.Clone(k))
				}
			}
			from = append(bytes.Clone(k), 0)
			return len(doomed)+len(records) < c.batchKeys
		})
		view.Close()
		if err != nil {
			return false, err
		}
		batchStart := time.Now()
		batch := s.b.NewBatch()
		for _, k := range doomed {
			batch.Delete(k)
		}
		for _, k := range records {
			batch.DeleteRecord(k)
		}
		last := len(doomed)+len(records) < c.batchKeys
		if last {
			batch.Set(finishedCompactKey, binary.BigEndian.AppendUint64(nil, uint64(rev)))
		}
		if err := batch.CommitMaintenance(); err != nil {
			return false, err
		}
		// etcd's pause is how long a batch of deletions holds its
		// writers; here, how long one removal batch takes to commit.
		s.metrics.dbCompactionPauseMs.Observe(float64(time.Since(batchStart)) / float64(time.Millisecond))
		s.metrics.dbCompactionKeys.Add(float64(len(doomed)))
		removed += len(doomed)
		if last {
			s.metrics.dbCompactionTotalMs.Observe(float64(time.Since(start)) / float64(time.Millisecond))
			s.metrics.dbCompactionLast.Set(float64(time.Now().Unix()))
			// etcd's words, which etcd's tests wait for.
			s.logger.Info("finished scheduled compaction", zap.Int64("compact-revision", rev),
				zap.Int("number-of-keys-compacted", removed), zap.Uint32("hash", hasher.sum().Hash))
			return true, nil
		}
	}
}

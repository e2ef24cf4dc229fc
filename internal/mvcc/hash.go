package mvcc

import (
	"hash/crc32"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns a hash of the store's history up to revision rev (0: the
// current one), with the current and compaction revisions. Members that
// applied the same log have equal hashes, whether or not the removal of
// what their last compaction made unreadable has finished: revisions the
// compaction dropped are left out.
func (s *Store) HashKV(rev int64) (hash uint32, current, compacted int64, err error) {
	start := time.Now()
	defer func() { s.metrics.hashRevSeconds.Observe(time.Since(start).Seconds()) }()
	for {
		hash, current, compacted, err = s.hashKV(rev)
		if err != nil || s.CompactRev() == compacted {
			return hash, current, compacted, err
		}
		// A compaction ran meanwhile: the index and the revision read
		// may disagree. Again.
	}
}

func (s *Store) hashKV(rev int64) (hash uint32, current, compacted int64, err error) {
	s.mu.RLock()
	current, compacted = s.mu.currentRev, s.mu.compactRev
	s.mu.RUnlock()
	switch {
	case rev <= 0:
		rev = current
	case rev > current:
		return 0, current, compacted, ErrFutureRev
	case rev < compacted:
		return 0, current, compacted, ErrCompacted
	}
	kept := s.index.keptAt(compacted)
	view := s.b.NewReadView()
	defer view.Close()
	h := crc32.New(castagnoli)
	end := revisionKey(Revision{Main: rev + 1}, false)
	err = view.Scan([]byte{'r'}, end, func(k, v []byte) bool {
		r, _, perr := parseRevisionKey(k)
		if perr != nil {
			err = perr
			return false
		}
		if r.Main <= compacted {
			// Left out unless the index still has it (a put still read,
			// or a delete at the compaction revision).
			if _, ok := kept[r]; !ok {
				return true
			}
		}
		h.Write(k)
		h.Write(v)
		return true
	})
	return h.Sum32(), current, compacted, err
}

// Hash returns a hash of everything the store keeps in the backend, as
// stored (etcd's Maintenance.Hash): unlike HashKV it changes as a
// compaction's removal runs. It also returns the current revision.
func (s *Store) Hash() (uint32, int64, error) {
	start := time.Now()
	defer func() { s.metrics.hashSeconds.Observe(time.Since(start).Seconds()) }()
	view := s.b.NewReadView()
	defer view.Close()
	rev := s.Rev()
	h := crc32.New(castagnoli)
	err := view.Scan([]byte{'m'}, revisionPrefixEnd, func(k, v []byte) bool {
		h.Write(k)
		h.Write(v)
		return true
	})
	return h.Sum32(), rev, err
}

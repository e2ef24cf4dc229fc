package mvcc

import (
	"cmp"
	"encoding/binary"
	"hash"
	"hash/crc32"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// KeyValueHash is a hash of the store's history up to Revision, taken
// when the last compaction was at CompactRevision (-1: none): etcd's
// HashKV answer.
type KeyValueHash struct {
	Hash            uint32
	CompactRevision int64
	Revision        int64
}

// storedHashesMax is how many compaction hashes the store remembers
// (etcd's hashStorageMaxSize).
const storedHashesMax = 10

// etcdKeyBucket is the name of etcd's bbolt bucket of revisions, which
// etcd's hash begins with.
var etcdKeyBucket = []byte("key")

// kvHasher computes etcd's HashKV value from Cairn's records, so that a
// Cairn member and an etcd member that applied the same history answer
// the same hash. etcd hashes its "key" bucket: the bucket's name, then,
// in revision order, each revision's bbolt key and the stored
// mvccpb.KeyValue. Cairn stores the same KeyValue bytes; only the key
// differs, and is rewritten in etcd's form:
//
//	Cairn:  'r' | main u64 BE | sub u64 BE | ['t']
//	etcd:         main u64 BE | '_' | sub u64 BE | ['t']   (17 or 18 bytes)
//
// Which revisions count are etcd's rules, for a hash at revision rev
// with the last compaction at compactRev:
//   - none above rev;
//   - at or below compactRev, only those in keep (etcd's index Keep(rev):
//     per key, its latest revision at or below rev unless that is a
//     delete), unless keep is empty: then all that the compaction left;
//   - never a delete at exactly compactRev (etcd 3.5.15 stopped removing
//     those at compaction; the hash skips them so that old and new etcds
//     agree).
//
// An example: put a@2, put a@3, put b@4, delete b@5, put a@6, compact(5).
// A compaction at 5 leaves a@3 (a's value at 5) and b's delete at 5.
// HashKV(6): a@3 is not in keep (a's latest at 6 is 6): skipped; b@5 is
// the delete at the compaction revision: skipped; a@6 counts.
type kvHasher struct {
	h          hash.Hash32
	compactRev int64
	rev        int64
	keep       map[Revision]struct{}
	// left, if not nil, are the revisions at or below compactRev that a
	// finished compaction leaves: while a removal is under way the
	// backend still has others, which etcd's file (whose compaction is
	// one transaction per batch, hashed as it goes) would not.
	left map[Revision]struct{}
	key  [18]byte
}

func newKVHasher(compactRev, rev int64, keep, left map[Revision]struct{}) *kvHasher {
	h := crc32.New(castagnoli)
	h.Write(etcdKeyBucket)
	return &kvHasher{h: h, compactRev: compactRev, rev: rev, keep: keep, left: left}
}

// write adds the revision stored under Cairn's key k with value v.
func (h *kvHasher) write(k, v []byte) error {
	r, tombstone, err := parseRevisionKey(k)
	if err != nil {
		return err
	}
	if r.Main > h.rev {
		return nil
	}
	if r.Main <= h.compactRev {
		if _, ok := h.left[r]; h.left != nil && !ok {
			return nil
		}
		if _, ok := h.keep[r]; len(h.keep) > 0 && !ok {
			return nil
		}
	}
	if tombstone && r.Main == h.compactRev {
		return nil
	}
	n := 17
	binary.BigEndian.PutUint64(h.key[0:], uint64(r.Main))
	h.key[8] = '_'
	binary.BigEndian.PutUint64(h.key[9:], uint64(r.Sub))
	if tombstone {
		h.key[17] = 't'
		n = 18
	}
	h.h.Write(h.key[:n])
	h.h.Write(v)
	return nil
}

func (h *kvHasher) sum() KeyValueHash {
	return KeyValueHash{Hash: h.h.Sum32(), CompactRevision: h.compactRev, Revision: h.rev}
}

// hashes are the hashes the store took at its compactions (etcd's
// HashStorage): HashByRev answers from them, and the leader's
// compaction-hash check compares them with its peers'. They are kept in
// memory only, as etcd does: a restart forgets them.
type hashes struct {
	mu sync.Mutex
	// list is sorted by Revision, at most storedHashesMax long.
	list []KeyValueHash
}

func (hs *hashes) store(h KeyValueHash) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.list = append(hs.list, h)
	slices.SortFunc(hs.list, func(a, b KeyValueHash) int { return cmp.Compare(a.Revision, b.Revision) })
	if len(hs.list) > storedHashesMax {
		hs.list = slices.Delete(hs.list, 0, len(hs.list)-storedHashesMax)
	}
}

func (hs *hashes) at(rev int64) (KeyValueHash, bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.list {
		if h.Revision == rev {
			return h, true
		}
	}
	return KeyValueHash{}, false
}

// CompactionHashes returns the hashes taken at the latest compactions
// (up to 10), oldest first.
func (s *Store) CompactionHashes() []KeyValueHash {
	s.hashes.mu.Lock()
	defer s.hashes.mu.Unlock()
	return slices.Clone(s.hashes.list)
}

// HashByRev is etcd's HashKV: the hash taken at a compaction at rev if
// the store remembers one, else HashKV(rev). It also returns the current
// revision.
func (s *Store) HashByRev(rev int64) (KeyValueHash, int64, error) {
	if h, ok := s.hashes.at(rev); ok {
		return h, s.Rev(), nil
	}
	return s.HashKV(rev)
}

// HashKV returns etcd's hash of the store's history up to revision rev
// (0: the current one; see kvHasher), with the current revision. Members
// that applied the same log have equal hashes, whether or not the removal
// of what their last compaction made unreadable has finished, and equal
// to what etcd answers for the same history. A rev below the compaction
// fails with ErrCompacted, one above the current revision with
// ErrFutureRev.
func (s *Store) HashKV(rev int64) (KeyValueHash, int64, error) {
	start := time.Now()
	defer func() { s.metrics.hashRevSeconds.Observe(time.Since(start).Seconds()) }()
	for {
		h, current, compactRev, err := s.hashKV(rev)
		if err != nil || s.CompactRev() == compactRev {
			return h, current, err
		}
		// A compaction ran meanwhile: the index and the backend read
		// may disagree. Again.
	}
}

// hashKV is HashKV, once; it also returns the compaction revision it
// read (0 for none).
func (s *Store) hashKV(rev int64) (h KeyValueHash, current, compactRev int64, err error) {
	s.mu.RLock()
	current, compactRev = s.mu.currentRev, s.mu.compactRev
	etcdCompactRev := compactRev
	if !s.mu.compacted {
		etcdCompactRev = -1 // etcd's store starts there
	}
	s.mu.RUnlock()
	// etcd's checks, in its order; a negative rev passes them and
	// hashes nothing.
	switch {
	case rev > 0 && rev < etcdCompactRev:
		return KeyValueHash{}, 0, compactRev, ErrCompacted
	case rev > 0 && rev > current:
		return KeyValueHash{}, current, compactRev, ErrFutureRev
	case rev == 0:
		rev = current
	}
	var left map[Revision]struct{}
	if etcdCompactRev > 0 {
		left = s.index.keptAt(etcdCompactRev)
	}
	hasher := newKVHasher(etcdCompactRev, rev, s.index.hashKeep(rev), left)
	if rev > 0 {
		view := s.b.NewReadView()
		defer view.Close()
		var werr error
		err = view.Scan([]byte{'r'}, revisionKey(Revision{Main: rev + 1}, false), func(k, v []byte) bool {
			werr = hasher.write(k, v)
			return werr == nil
		})
		if err == nil {
			err = werr
		}
	}
	return hasher.sum(), current, compactRev, err
}

// logStoredHash says that a compaction's hash is kept, in etcd's words.
func (s *Store) logStoredHash(h KeyValueHash) {
	s.logger.Info("storing new hash", zap.Uint32("hash", h.Hash), zap.Int64("revision", h.Revision),
		zap.Int64("compact-revision", h.CompactRevision))
}

// Hash returns a hash of everything the store keeps in the backend, as
// stored, and the current revision: the revisions, the compaction marks,
// and the lessor's and the membership's records that share the backend;
// not the backend's own metadata (the consistent index, which differs
// between members). Unlike HashKV it changes as a compaction's removal
// runs. etcd's Maintenance.Hash is a CRC over its bbolt file's buckets,
// which Cairn has not: the values cannot match etcd's.
func (s *Store) Hash() (uint32, int64, error) {
	start := time.Now()
	defer func() { s.metrics.hashSeconds.Observe(time.Since(start).Seconds()) }()
	// Under writeMu the backend and the revision agree: a WriteGroup's
	// commit moves the revision one transaction at a time after its batch.
	s.writeMu.Lock()
	view := s.b.NewReadView()
	rev := s.Rev()
	s.writeMu.Unlock()
	defer view.Close()
	h := crc32.New(castagnoli)
	err := view.Scan([]byte{0x01}, []byte{0xff}, func(k, v []byte) bool {
		h.Write(k)
		h.Write(v)
		return true
	})
	return h.Sum32(), rev, err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

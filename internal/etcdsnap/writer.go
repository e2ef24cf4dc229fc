package etcdsnap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/invariants"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// Meta is what a snapshot holds besides keys, leases, members and alarms.
type Meta struct {
	// ConsistentIndex and Term are the raft index last applied to the
	// store and its term (meta's consistent_index and term; 0: absent).
	ConsistentIndex, Term uint64
	// ConfState is raft's configuration as of ConsistentIndex.
	ConfState raftpb.ConfState
	// ScheduledCompact is the last compaction asked for, FinishedCompact
	// the last one whose removal of history is done; 0: no compaction.
	// Invariant: FinishedCompact <= ScheduledCompact (etcd resumes the
	// removal on start when the scheduled one is ahead).
	ScheduledCompact, FinishedCompact int64
	// StorageVersion is meta's storageVersion as etcd's file holds it. The
	// writer writes StorageVersion ("3.7.0", what etcd 3.7.3 writes) and
	// accepts only that or ""; the reader returns "" if the key is absent
	// (files of etcd 3.5).
	StorageVersion string
	// ClusterVersion is the cluster bucket's clusterVersion, e.g. "3.7.0"
	// ("": absent, and not written).
	ClusterVersion string
}

// batchBytes is how many bytes of keys and values a Writer puts in one
// bbolt transaction before committing it: a write transaction keeps every
// page it changed in memory until it commits.
const batchBytes = 4 << 20

// keyFillPercent packs the key bucket's pages full: the writer only
// appends to it (bbolt's default, 0.5, would leave half of every page empty).
const keyFillPercent = 1.0

// ErrClosed is a Writer used after Finish, Abort or a failed write.
var ErrClosed = errors.New("etcdsnap: writer closed")

// A Writer makes a new snapshot file. It is not safe for concurrent use.
// After any error, the file is unusable: call Abort.
type Writer struct {
	path string
	db   *bolt.DB
	// tx is the open write transaction; nil once the writer is closed.
	tx *bolt.Tx
	// keys is the key bucket of tx, with keyFillPercent set.
	keys *bolt.Bucket
	// pending counts the bytes of keys and values put in tx.
	// Invariant: pending < batchBytes between calls.
	pending int
	// last is the last revision put, if any: PutRevision requires order.
	last    Revision
	hasLast bool
	// commits counts the transactions committed (the tests check batching).
	commits int
	// err is the first error, returned by every call after it.
	err error
	// auth is the auth bucket's state PutAuth gave (nil: a fresh etcd's).
	auth *authHeader
}

// authHeader is the auth bucket: the enabled flag and the auth revision.
type authHeader struct {
	enabled  bool
	revision uint64
}

// Create makes a new snapshot file at path; an existing file is refused.
// Every bucket etcd 3.7.3 has is created, empty.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcdsnap: creating %s: %w", path, err)
	}
	f.Close()
	// The file is synced once, in Finish: until then it is a scratch file
	// nobody reads, and a crash leaves it to be removed.
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoGrowSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("etcdsnap: creating %s: %w", path, err)
	}
	w := &Writer{path: path, db: db}
	if err := w.begin(); err != nil {
		w.Abort()
		return nil, err
	}
	for _, name := range allBuckets {
		if _, err := w.tx.CreateBucket(name); err != nil {
			w.Abort()
			return nil, fmt.Errorf("etcdsnap: creating bucket %s: %w", name, err)
		}
	}
	if err := w.begin(); err != nil { // the new key bucket in w.keys
		w.Abort()
		return nil, err
	}
	return w, nil
}

// begin commits the open transaction, if any, and opens the next.
func (w *Writer) begin() error {
	if w.tx != nil {
		if err := w.tx.Commit(); err != nil {
			w.tx = nil
			return w.fail(fmt.Errorf("etcdsnap: committing to %s: %w", w.path, err))
		}
		w.commits++
	}
	tx, err := w.db.Begin(true)
	if err != nil {
		w.tx = nil
		return w.fail(fmt.Errorf("etcdsnap: writing %s: %w", w.path, err))
	}
	w.tx, w.pending = tx, 0
	w.keys = tx.Bucket(bucketKey)
	if w.keys != nil {
		w.keys.FillPercent = keyFillPercent
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// put puts k -> v in bucket b of the open transaction, and commits it once
// it holds batchBytes.
func (w *Writer) put(b *bolt.Bucket, name, k, v []byte) error {
	// bbolt copies the key but keeps v itself until the commit; the
	// caller may reuse its buffer (an iterator's value) once we return.
	if err := b.Put(k, bytes.Clone(v)); err != nil {
		return w.fail(fmt.Errorf("etcdsnap: putting %x in %s: %w", k, name, err))
	}
	w.pending += len(k) + len(v)
	if w.pending >= batchBytes {
		return w.begin()
	}
	return nil
}

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.tx == nil {
		return ErrClosed
	}
	return nil
}

// PutRevision adds the change at r, kv being its marshaled
// mvccpb.KeyValue (Cairn's mvcc stores the same bytes). Revisions must come
// in strictly increasing (Main, Sub) order, Main >= 1 and Sub >= 0.
func (w *Writer) PutRevision(r Revision, kv []byte) error {
	if err := w.usable(); err != nil {
		return err
	}
	if r.Main < 1 || r.Sub < 0 {
		return w.fail(fmt.Errorf("etcdsnap: revision %d.%d out of range", r.Main, r.Sub))
	}
	if w.hasLast && !w.last.less(r) {
		return w.fail(fmt.Errorf("etcdsnap: revision %d.%d after %d.%d: out of order", r.Main, r.Sub, w.last.Main, w.last.Sub))
	}
	if invariants.Enabled {
		checkKeyValue(r, kv)
	}
	w.last, w.hasLast = r, true
	return w.put(w.keys, bucketKey, appendRevisionKey(make([]byte, 0, markedRevisionKeyLen), r), kv)
}

// PutLease adds a lease (or replaces the one with its ID).
func (w *Writer) PutLease(l Lease) error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.put(w.tx.Bucket(bucketLease), bucketLease, leaseKey(l.ID), marshalLease(l))
}

// PutMember adds a member (or replaces the one with its ID). Note that
// etcdutl's restore replaces the members with those of the new cluster.
func (w *Writer) PutMember(m membership.Member) error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.put(w.tx.Bucket(bucketMembers), bucketMembers, memberKey(m.ID), marshalMember(m))
}

// PutRemoved records that the member id was removed from the cluster.
func (w *Writer) PutRemoved(id uint64) error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.put(w.tx.Bucket(bucketMembersRemoved), bucketMembersRemoved, memberKey(id), removedValue)
}

// PutAlarm adds a raised alarm.
func (w *Writer) PutAlarm(a Alarm) error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.put(w.tx.Bucket(bucketAlarm), bucketAlarm, marshalAlarm(a), []byte{})
}

// PutAuth records the auth bucket's state (written by Finish): auth
// enabled or not, and the auth revision.
func (w *Writer) PutAuth(enabled bool, revision uint64) error {
	if err := w.usable(); err != nil {
		return err
	}
	w.auth = &authHeader{enabled: enabled, revision: max(revision, 1)}
	return nil
}

// PutUser adds a user (etcd's authUsers bucket: name -> authpb.User).
func (w *Writer) PutUser(u *authpb.User) error {
	if err := w.usable(); err != nil {
		return err
	}
	v, err := proto.Marshal(u)
	if err != nil {
		return w.fail(err)
	}
	return w.put(w.tx.Bucket(bucketAuthUsers), bucketAuthUsers, u.Name, v)
}

// PutRole adds a role (etcd's authRoles bucket: name -> authpb.Role).
func (w *Writer) PutRole(r *authpb.Role) error {
	if err := w.usable(); err != nil {
		return err
	}
	v, err := proto.Marshal(r)
	if err != nil {
		return w.fail(err)
	}
	return w.put(w.tx.Bucket(bucketAuthRoles), bucketAuthRoles, r.Name, v)
}

// Finish writes m into the meta and cluster buckets and etcd's empty auth
// state (auth disabled, no users or roles: authRevision 1 and no
// authEnabled key, as a fresh etcd 3.7.3 has it), commits, cuts the file to
// the database's size, fsyncs it and its directory, and closes the writer.
// On error, the writer is unusable: Abort it.
func (w *Writer) Finish(m Meta) error {
	if err := w.usable(); err != nil {
		return err
	}
	if m.StorageVersion != "" && m.StorageVersion != StorageVersion {
		return w.fail(fmt.Errorf("etcdsnap: storage version %q: only %q can be written", m.StorageVersion, StorageVersion))
	}
	if m.FinishedCompact > m.ScheduledCompact || m.FinishedCompact < 0 {
		return w.fail(fmt.Errorf("etcdsnap: finished compaction %d beyond scheduled %d", m.FinishedCompact, m.ScheduledCompact))
	}
	type kv struct{ bucket, k, v []byte }
	puts := []kv{
		{bucketMeta, keyConfState, marshalConfState(m.ConfState)},
		{bucketMeta, keyStorageVersion, []byte(StorageVersion)},
		{bucketAuth, keyAuthRevision, u64Value(1)},
	}
	if w.auth != nil {
		puts[2].v = u64Value(w.auth.revision)
		if w.auth.enabled {
			puts = append(puts, kv{bucketAuth, keyAuthEnabled, []byte{1}})
		}
	}
	// etcd never writes a consistent index or term of 0, nor compaction
	// marks before a compaction.
	if m.ConsistentIndex != 0 {
		puts = append(puts, kv{bucketMeta, keyConsistentIndex, u64Value(m.ConsistentIndex)})
	}
	if m.Term != 0 {
		puts = append(puts, kv{bucketMeta, keyTerm, u64Value(m.Term)})
	}
	if m.ScheduledCompact != 0 {
		puts = append(puts, kv{bucketMeta, keyScheduledCompact, compactValue(m.ScheduledCompact)})
	}
	if m.FinishedCompact != 0 {
		puts = append(puts, kv{bucketMeta, keyFinishedCompact, compactValue(m.FinishedCompact)})
	}
	if m.ClusterVersion != "" {
		puts = append(puts, kv{bucketCluster, keyClusterVersion, []byte(m.ClusterVersion)})
	}
	for _, p := range puts {
		if err := w.put(w.tx.Bucket(p.bucket), p.bucket, p.k, p.v); err != nil {
			return err
		}
	}
	if err := w.tx.Commit(); err != nil {
		w.tx = nil
		return w.fail(fmt.Errorf("etcdsnap: committing to %s: %w", w.path, err))
	}
	w.tx = nil
	w.commits++
	var size int64
	if err := w.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return w.fail(fmt.Errorf("etcdsnap: reading %s: %w", w.path, err))
	}
	if err := w.db.Close(); err != nil {
		return w.fail(fmt.Errorf("etcdsnap: closing %s: %w", w.path, err))
	}
	w.db = nil
	if err := syncFile(w.path, size); err != nil {
		return w.fail(err)
	}
	w.err = ErrClosed
	return nil
}

// syncFile cuts the file at path to size bytes and makes it and its name
// durable.
func syncFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("etcdsnap: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("etcdsnap: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("etcdsnap: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("etcdsnap: closing %s: %w", path, err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("etcdsnap: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("etcdsnap: syncing %s: %w", filepath.Dir(path), err)
	}
	return nil
}

// Abort closes the writer, if Finish has not, and removes the file.
// It may be called after Finish failed; after Finish succeeded it does
// nothing.
func (w *Writer) Abort() {
	if w.err == ErrClosed && w.db == nil {
		return // finished
	}
	if w.tx != nil {
		w.tx.Rollback()
		w.tx = nil
	}
	if w.db != nil {
		w.db.Close()
		w.db = nil
	}
	os.Remove(w.path)
	w.err = ErrClosed
}

// AppendHash appends to the file at path the SHA-256 of its content, as
// etcd's server ends the snapshot stream it sends, and syncs it. The file
// must be a finished snapshot without a trailer.
func AppendHash(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("etcdsnap: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("etcdsnap: reading %s: %w", path, err)
	}
	if hasTrailer(n) {
		return fmt.Errorf("etcdsnap: %s already ends with a hash (%d bytes)", path, n)
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("etcdsnap: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("etcdsnap: syncing %s: %w", path, err)
	}
	return f.Close()
}

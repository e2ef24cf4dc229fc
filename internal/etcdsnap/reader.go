package etcdsnap

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/membership"
)

// Why Open refuses a file. ErrMissingHash's text is etcdutl's, and a hash
// mismatch reads as etcdutl's ("expected sha256 [...], got [...]"), so that
// cairnutl can print them as etcdutl does.
var (
	// ErrMissingHash: the file has no SHA-256 trailer and verifyHash was
	// asked (a database copied from a data dir has none: skip the check).
	ErrMissingHash = errors.New("snapshot missing hash but --skip-hash-check=false")
	// ErrHashMismatch: the trailer is not the SHA-256 of the content.
	ErrHashMismatch = errors.New("etcdsnap: sha256 mismatch")
	// ErrTruncated: the file is shorter than the database it starts with.
	ErrTruncated = errors.New("etcdsnap: snapshot file truncated")
	// ErrNotSnapshot: not a bbolt database, or one without etcd's key and
	// meta buckets.
	ErrNotSnapshot = errors.New("etcdsnap: not an etcd snapshot file")
	// ErrCorrupt: a bbolt database whose structure (bbolt's check) or
	// content (a key or value etcd could not have written) is broken.
	ErrCorrupt = errors.New("etcdsnap: corrupt snapshot")
	// ErrLocked: a process holds the file open for writing (a running
	// etcd on its own database?).
	ErrLocked = errors.New("etcdsnap: snapshot file locked by another process")
)

// HashMismatchError is ErrHashMismatch with both hashes; its text is
// etcdutl's.
type HashMismatchError struct{ Want, Got []byte }

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("expected sha256 %v, got %v", e.Want, e.Got)
}

// Is makes errors.Is(err, ErrHashMismatch) hold.
func (e *HashMismatchError) Is(target error) bool { return target == ErrHashMismatch }

// lockTimeout bounds the wait for bbolt's shared lock on the file.
const lockTimeout = 2 * time.Second

// hasTrailer is etcd's rule: a file whose size modulo 512 is 32 ends with
// the SHA-256 of the rest (a database is whole pages, multiples of 512).
func hasTrailer(size int64) bool { return size%512 == sha256.Size }

// A Reader reads a snapshot file. Its methods may be called concurrently;
// each reads in a bbolt read transaction of its own. The byte slices its
// callbacks get point into the file's read-only mapping: valid only until
// the callback returns, and never to be written.
type Reader struct {
	path string
	db   *bolt.DB
}

// Open opens the snapshot file at path for reading, without modifying it
// (bbolt read-only: O_RDONLY and a shared lock; no temporary copy, see the
// package doc). With verifyHash, the SHA-256 trailer must be there and
// match (etcdutl restore's rules; skip the check for a database copied
// from a data dir). Then the file must hold every page of its database,
// pass bbolt's structural check, and have etcd's key and meta buckets.
// Open reads the whole file once or twice (hash, check) before returning.
//
// Where etcdutl restore says "snapshot missing hash" of any file without a
// trailer (random bytes, a truncated file), Open says what is wrong first:
// ErrNotSnapshot or ErrTruncated, and ErrMissingHash only of a whole
// database without a trailer.
func Open(path string, verifyHash bool) (*Reader, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("etcdsnap: %w", err)
	}
	size := info.Size()
	trailer := hasTrailer(size)
	if verifyHash && trailer {
		if err := checkHash(path, size); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, size)
	if err != nil {
		return nil, err
	}
	contentSize := size
	if trailer {
		contentSize -= sha256.Size
	}
	if err := db.View(func(tx *bolt.Tx) error { return checkDB(tx, path, contentSize) }); err != nil {
		db.Close()
		return nil, err
	}
	if verifyHash && !trailer {
		// Whole and well-formed, but without a hash to check it by.
		db.Close()
		return nil, ErrMissingHash
	}
	return &Reader{path: path, db: db}, nil
}

// checkHash compares the trailer of the file at path (of size bytes) with
// the SHA-256 of what precedes it.
func checkHash(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("etcdsnap: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return fmt.Errorf("etcdsnap: reading %s: %w", path, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fmt.Errorf("etcdsnap: reading %s: %w", path, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return &HashMismatchError{Want: want, Got: got}
	}
	return nil
}

// openBolt opens the file read-only, naming bbolt's refusals for what
// they mean here.
func openBolt(path string, size int64) (*bolt.DB, error) {
	if size == 0 {
		// bbolt would try to initialize an empty file (and fail, read-only).
		return nil, fmt.Errorf("%w: %s is empty", ErrNotSnapshot, path)
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	case strings.HasPrefix(err.Error(), "file size too small"):
		// Its first page is a valid bbolt meta page (bbolt read the page
		// size from it), but the file ends before the second.
		return nil, fmt.Errorf("%w: %s is %d bytes, less than a database's two meta pages", ErrTruncated, path, size)
	default:
		return nil, fmt.Errorf("%w: %s is not a bbolt database (%v)", ErrNotSnapshot, path, err)
	}
}

// checkDB refuses a database the file does not hold whole, one that fails
// bbolt's check, and one without etcd's key and meta buckets.
func checkDB(tx *bolt.Tx, path string, contentSize int64) error {
	// Before any page past the meta pages is touched: reading a mapped
	// page beyond the end of the file would kill the process (SIGBUS).
	if dbSize := tx.Size(); dbSize > contentSize {
		return fmt.Errorf("%w: %s holds %d bytes of a %d-byte database", ErrTruncated, path, contentSize, dbSize)
	}
	var problems []string
	for err := range tx.Check() {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		return fmt.Errorf("%w: %s fails bbolt's check: %s", ErrCorrupt, path, strings.Join(problems, "; "))
	}
	for _, name := range [][]byte{bucketKey, bucketMeta} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: %s has no %q bucket", ErrNotSnapshot, path, name)
		}
	}
	return nil
}

// Close closes the file.
func (r *Reader) Close() error {
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("etcdsnap: closing %s: %w", r.path, err)
	}
	return nil
}

// forEach calls fn for each key and value of the named bucket, in key
// order; a bucket the file lacks is empty (files of older etcds may lack
// some).
func (r *Reader) forEach(name []byte, fn func(k, v []byte) error) error {
	return r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		return b.ForEach(fn)
	})
}

// Meta reads the meta and cluster buckets.
func (r *Reader) Meta() (Meta, error) {
	var m Meta
	err := r.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var err error
		if v := meta.Get(keyConsistentIndex); v != nil {
			if m.ConsistentIndex, err = parseU64(bucketMeta, keyConsistentIndex, v); err != nil {
				return err
			}
		}
		if v := meta.Get(keyTerm); v != nil {
			if m.Term, err = parseU64(bucketMeta, keyTerm, v); err != nil {
				return err
			}
		}
		if v := meta.Get(keyConfState); v != nil {
			if m.ConfState, err = unmarshalConfState(v); err != nil {
				return err
			}
		}
		if v := meta.Get(keyScheduledCompact); v != nil {
			if m.ScheduledCompact, err = parseCompactValue(keyScheduledCompact, v); err != nil {
				return err
			}
		}
		if v := meta.Get(keyFinishedCompact); v != nil {
			if m.FinishedCompact, err = parseCompactValue(keyFinishedCompact, v); err != nil {
				return err
			}
		}
		m.StorageVersion = string(meta.Get(keyStorageVersion))
		if c := tx.Bucket(bucketCluster); c != nil {
			m.ClusterVersion = string(c.Get(keyClusterVersion))
		}
		return nil
	})
	return m, err
}

// Revisions calls fn with each revision of the key bucket and its
// marshaled mvccpb.KeyValue, in revision order, until fn returns an error
// (returned as is).
func (r *Reader) Revisions(fn func(Revision, []byte) error) error {
	return r.forEach(bucketKey, func(k, v []byte) error {
		rev, err := parseRevisionKey(k)
		if err != nil {
			return err
		}
		return fn(rev, v)
	})
}

// Leases calls fn with each lease, in ID order (as unsigned 64-bit
// numbers, as etcd keys them), until fn returns an error.
func (r *Reader) Leases(fn func(Lease) error) error {
	return r.forEach(bucketLease, func(k, v []byte) error {
		l, err := unmarshalLease(v)
		if err != nil {
			return fmt.Errorf("lease %x: %w", k, err)
		}
		if !bytes.Equal(k, leaseKey(l.ID)) {
			return fmt.Errorf("%w: lease %d stored under key %x", ErrCorrupt, l.ID, k)
		}
		return fn(l)
	})
}

// Members returns the members and the IDs of removed members, each
// ordered by ID.
func (r *Reader) Members() (members []membership.Member, removed []uint64, err error) {
	err = r.forEach(bucketMembers, func(k, v []byte) error {
		id, err := parseMemberKey(k)
		if err != nil {
			return err
		}
		var em etcdMember
		if err := json.Unmarshal(v, &em); err != nil {
			return fmt.Errorf("%w: member %s: %v", ErrCorrupt, k, err)
		}
		if em.ID != id {
			return fmt.Errorf("%w: member %d stored under key %s", ErrCorrupt, em.ID, k)
		}
		members = append(members, membership.Member{ID: em.ID, Name: em.Name, PeerURLs: em.PeerURLs,
			ClientURLs: em.ClientURLs, IsLearner: em.IsLearner})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = r.forEach(bucketMembersRemoved, func(k, _ []byte) error {
		id, err := parseMemberKey(k)
		if err != nil {
			return err
		}
		removed = append(removed, id)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(members, func(a, b membership.Member) int { return compareU64(a.ID, b.ID) })
	slices.Sort(removed)
	return members, removed, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Alarms returns the raised alarms, in the alarm bucket's order.
func (r *Reader) Alarms() ([]Alarm, error) {
	var alarms []Alarm
	err := r.forEach(bucketAlarm, func(k, _ []byte) error {
		a, err := unmarshalAlarm(k)
		if err != nil {
			return fmt.Errorf("alarm %x: %w", k, err)
		}
		alarms = append(alarms, a)
		return nil
	})
	return alarms, err
}

// Auth is a file's auth state: the auth bucket, users and roles.
type Auth struct {
	Enabled  bool
	Revision uint64
	Users    []*authpb.User
	Roles    []*authpb.Role
}

// Auth reads the auth state (users and roles in name order).
func (r *Reader) Auth() (Auth, error) {
	var a Auth
	err := r.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAuth); b != nil {
			a.Enabled = bytes.Equal(b.Get(keyAuthEnabled), []byte{1})
			if v := b.Get(keyAuthRevision); v != nil {
				if len(v) != 8 {
					return fmt.Errorf("etcdsnap: auth revision %x", v)
				}
				a.Revision = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	if err != nil {
		return a, err
	}
	err = r.forEach(bucketAuthUsers, func(k, v []byte) error {
		u := &authpb.User{}
		if err := proto.Unmarshal(v, u); err != nil {
			return fmt.Errorf("etcdsnap: user %q: %w", k, err)
		}
		a.Users = append(a.Users, u)
		return nil
	})
	if err != nil {
		return a, err
	}
	err = r.forEach(bucketAuthRoles, func(k, v []byte) error {
		ro := &authpb.Role{}
		if err := proto.Unmarshal(v, ro); err != nil {
			return fmt.Errorf("etcdsnap: role %q: %w", k, err)
		}
		a.Roles = append(a.Roles, ro)
		return nil
	})
	return a, err
}

// HasAuth reports whether the file holds auth state: auth enabled, or
// any user or role (a store where auth was enabled once and disabled
// keeps its users and roles).
func (r *Reader) HasAuth() (bool, error) {
	var has bool
	err := r.db.View(func(tx *bolt.Tx) error {
		if a := tx.Bucket(bucketAuth); a != nil && bytes.Equal(a.Get(keyAuthEnabled), []byte{1}) {
			has = true
		}
		for _, name := range [][]byte{bucketAuthUsers, bucketAuthRoles} {
			if b := tx.Bucket(name); b != nil {
				if k, _ := b.Cursor().First(); k != nil {
					has = true
				}
			}
		}
		return nil
	})
	return has, err
}

// checkKeyValue panics unless kv is what etcd stores at r: a KeyValue
// whose ModRevision is r.Main for a put, with only Key set for a delete.
// (An invariant check of the writer's callers: Cairn's mvcc hands over
// what it stored.)
func checkKeyValue(r Revision, kv []byte) {
	var m mvccpb.KeyValue
	if err := proto.Unmarshal(kv, &m); err != nil {
		panic(fmt.Sprintf("etcdsnap: revision %d.%d: value is not a KeyValue: %v", r.Main, r.Sub, err))
	}
	if len(m.Key) == 0 {
		panic(fmt.Sprintf("etcdsnap: revision %d.%d: KeyValue without a key", r.Main, r.Sub))
	}
	if r.Tombstone {
		if m.CreateRevision != 0 || m.ModRevision != 0 || m.Version != 0 || m.Value != nil || m.Lease != 0 {
			panic(fmt.Sprintf("etcdsnap: delete at %d.%d carries more than its key: %v", r.Main, r.Sub, &m))
		}
		return
	}
	if m.ModRevision != r.Main || m.CreateRevision < 1 || m.CreateRevision > m.ModRevision || m.Version < 1 {
		panic(fmt.Sprintf("etcdsnap: put at %d.%d holds %v", r.Main, r.Sub, &m))
	}
}

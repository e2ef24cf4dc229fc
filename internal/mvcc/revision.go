package mvcc

import (
	"encoding/binary"
	"fmt"
)

// Revision is a point in the store's history: Main counts write
// transactions that changed something (the first is 2: an empty store is
// at revision 1, as in etcd), Sub numbers the changes inside one.
type Revision struct {
	Main int64
	Sub  int64
}

// Less orders revisions.
func (r Revision) Less(o Revision) bool {
	return r.Main < o.Main || (r.Main == o.Main && r.Sub < o.Sub)
}

func (r Revision) String() string { return fmt.Sprintf("%d.%d", r.Main, r.Sub) }

// revisionKeyBytes is the size of a revision's backend key: the 'r'
// prefix, main and sub big-endian (so key order is revision order), and an
// optional tombstone mark.
const revisionKeyBytes = 1 + 8 + 8

// revisionKey returns the backend key of the change at rev: see doc.go.
func revisionKey(rev Revision, tombstone bool) []byte {
	k := make([]byte, revisionKeyBytes, revisionKeyBytes+1)
	k[0] = 'r'
	binary.BigEndian.PutUint64(k[1:], uint64(rev.Main))
	binary.BigEndian.PutUint64(k[9:], uint64(rev.Sub))
	if tombstone {
		k = append(k, 't')
	}
	return k
}

// parseRevisionKey decodes a backend key made by revisionKey.
func parseRevisionKey(k []byte) (rev Revision, tombstone bool, err error) {
	if len(k) < revisionKeyBytes || len(k) > revisionKeyBytes+1 || k[0] != 'r' ||
		(len(k) == revisionKeyBytes+1 && k[revisionKeyBytes] != 't') {
		return Revision{}, false, fmt.Errorf("%w: bad revision key %x", ErrCorrupt, k)
	}
	rev = Revision{Main: int64(binary.BigEndian.Uint64(k[1:])), Sub: int64(binary.BigEndian.Uint64(k[9:]))}
	return rev, len(k) == revisionKeyBytes+1, nil
}

// revisionKeyPrefix starts every revision key; revisionPrefixEnd bounds
// them from above.
var (
	revisionKeyPrefix = []byte{'r'}
	revisionPrefixEnd = []byte{'r' + 1}
)

package raftnode

import (
	"fmt"

	"github.com/cairn-db/cairn/internal/wal"
)

// Limits are the size bounds of a member's raft loop. They are written
// once, here: the server, the command line and the simulator take them
// from DefaultLimits, and Check tells whether they fit together with the
// largest request a member accepts.
type Limits struct {
	// MaxSizePerMsg bounds the entry bytes in one MsgApp (one entry always
	// goes, whatever its size).
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds the MsgApps in flight to one follower.
	MaxInflightMsgs int
	// MaxUncommittedBytes bounds the entry bytes a leader holds appended
	// and not yet committed; proposals past it are refused.
	MaxUncommittedBytes uint64
	// MaxCommittedSizePerReady bounds the committed entry bytes one Ready
	// hands to the applier (one entry always goes).
	MaxCommittedSizePerReady uint64
	// MaxApplyBytes bounds the committed entry bytes handed to the applier
	// and not yet applied: the loop waits for the applier beyond it.
	MaxApplyBytes int64
	// SnapshotCatchUpEntries is how many entries before a snapshot stay
	// in memory for slow followers.
	SnapshotCatchUpEntries uint64
	// SnapshotCatchUpBytes bounds those entries' data in bytes: with
	// large values fewer stay (5,000 entries of 1 MiB would be 5 GiB).
	SnapshotCatchUpBytes uint64
}

// DefaultLimits are etcd's where etcd has the limit (1 MiB messages, 512
// in flight, 5000 catch-up entries), and otherwise chosen so that one
// member holds at most a few hundred MiB of entries in memory (etcd has
// no bound in bytes on its catch-up entries).
var DefaultLimits = Limits{
	MaxSizePerMsg:            1 << 20,
	MaxInflightMsgs:          512,
	MaxUncommittedBytes:      1 << 30,
	MaxCommittedSizePerReady: 64 << 20,
	MaxApplyBytes:            256 << 20,
	SnapshotCatchUpEntries:   5000,
	SnapshotCatchUpBytes:     512 << 20,
}

// entryOverheadBytes is what a WAL record adds to a request's bytes: the
// entry's term, index and type, and the record's own framing.
const entryOverheadBytes = 1 << 10

// MaxRequestBytesLimit is the largest request a member can accept: its
// entry must fit in one WAL record.
const MaxRequestBytesLimit = wal.MaxRecordBytes - entryOverheadBytes

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxSizePerMsg == 0 {
		l.MaxSizePerMsg = d.MaxSizePerMsg
	}
	if l.MaxInflightMsgs == 0 {
		l.MaxInflightMsgs = d.MaxInflightMsgs
	}
	if l.MaxUncommittedBytes == 0 {
		l.MaxUncommittedBytes = d.MaxUncommittedBytes
	}
	if l.MaxCommittedSizePerReady == 0 {
		l.MaxCommittedSizePerReady = d.MaxCommittedSizePerReady
	}
	if l.MaxApplyBytes == 0 {
		l.MaxApplyBytes = d.MaxApplyBytes
	}
	if l.SnapshotCatchUpEntries == 0 {
		l.SnapshotCatchUpEntries = d.SnapshotCatchUpEntries
	}
	if l.SnapshotCatchUpBytes == 0 {
		l.SnapshotCatchUpBytes = d.SnapshotCatchUpBytes
	}
	return l
}

// Check tells whether l (defaults filled in) fits a member that accepts
// requests of up to maxRequestBytes. A request too large for a WAL record
// would be appended and sent by the leader, then refused by every
// member's WAL, a fatal error: such a combination is refused at start-up.
func (l Limits) Check(maxRequestBytes int) error {
	l = l.WithDefaults()
	switch {
	case maxRequestBytes <= 0:
		return fmt.Errorf("--max-request-bytes must be positive, not %d", maxRequestBytes)
	case maxRequestBytes > MaxRequestBytesLimit:
		return fmt.Errorf("--max-request-bytes=%d is over %d, the largest entry a WAL record holds (%d bytes, less %d of framing)",
			maxRequestBytes, MaxRequestBytesLimit, wal.MaxRecordBytes, entryOverheadBytes)
	case l.MaxUncommittedBytes < uint64(maxRequestBytes):
		return fmt.Errorf("the uncommitted-entry bound (%d bytes) is below --max-request-bytes=%d: the largest request could never be proposed",
			l.MaxUncommittedBytes, maxRequestBytes)
	case l.MaxApplyBytes < int64(l.MaxCommittedSizePerReady):
		return fmt.Errorf("the apply bound (%d bytes) is below one Ready's committed entries (%d bytes)",
			l.MaxApplyBytes, l.MaxCommittedSizePerReady)
	}
	return nil
}

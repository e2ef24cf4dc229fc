package mvcc

import "errors"

var (
	// ErrCompacted is a read below the compaction revision. The message
	// is etcd's (the server adds "etcdserver: ").
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev is a read above the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrLeaseNotFound is a put attaching a lease that does not exist
	// (see TxnWrite.LeaseExists). The message is etcd's.
	ErrLeaseNotFound = errors.New("lease not found")
	// ErrWriteInReadTxn is a write in a txn run by ReadTxnRequest.
	ErrWriteInReadTxn = errors.New("mvcc: write in a read-only txn")
	// ErrCorrupt is stored data that does not decode.
	ErrCorrupt = errors.New("mvcc: corrupt")
)

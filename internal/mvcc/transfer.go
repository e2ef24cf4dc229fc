package mvcc

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn/internal/backend"
)

// History moves out of and into a backend as it is stored (a backup, a
// restore, a migration from etcd): every revision with its KeyValue bytes
// unchanged, and the two compaction marks. The bytes are etcd's too
// (see the package doc), so nothing is decoded and encoded again on the
// way.

// ScanHistory calls fn with every revision the view holds, in revision
// order: the revision, whether it is a delete, and its stored
// mvccpb.KeyValue. fn must not keep kv past its return.
func ScanHistory(view *backend.ReadView, fn func(rev Revision, tombstone bool, kv []byte) error) error {
	var fnErr error
	err := view.Scan([]byte{'r'}, revisionPrefixEnd, func(k, v []byte) bool {
		rev, tombstone, perr := parseRevisionKey(k)
		if perr != nil {
			fnErr = perr
			return false
		}
		fnErr = fn(rev, tombstone, v)
		return fnErr == nil
	})
	if err != nil {
		return err
	}
	return fnErr
}

// Compaction returns the view's compaction marks: the last compaction
// scheduled and the last whose removal finished (0: none).
func Compaction(view *backend.ReadView) (scheduled, finished int64, err error) {
	if scheduled, err = getRev(view, scheduledCompactKey); err != nil {
		return 0, 0, err
	}
	finished, err = getRev(view, finishedCompactKey)
	return scheduled, finished, err
}

// importBatchBytes is how much an Importer writes in one batch.
const importBatchBytes = 4 << 20

// Importer writes a history into an empty backend, in batches that
// record no raft index (the backend's consistent index stays 0, so a new
// member's founding entries are applied over the history as over an empty
// store). Revisions must come in increasing order, each a decodable
// KeyValue with its key: what Open would refuse later is refused here.
type Importer struct {
	b     *backend.Backend
	batch *backend.Batch
	bytes int
	last  Revision
	any   bool
	// Revisions counts what was written.
	Revisions int64
}

// NewImporter starts importing into b, which must hold no history.
func NewImporter(b *backend.Backend) (*Importer, error) {
	view := b.NewReadView()
	defer view.Close()
	empty := true
	if err := view.Scan([]byte{'m'}, revisionPrefixEnd, func(_, _ []byte) bool {
		empty = false
		return false
	}); err != nil {
		return nil, err
	}
	if !empty {
		return nil, fmt.Errorf("mvcc: importing into a backend that already holds a history")
	}
	return &Importer{b: b, batch: b.NewBatch()}, nil
}

// Put writes one revision: its KeyValue as stored (for a delete, a
// KeyValue with only the key).
func (im *Importer) Put(rev Revision, tombstone bool, kv []byte) error {
	if rev.Main < 1 || rev.Sub < 0 {
		return fmt.Errorf("mvcc: import: invalid revision %d.%d", rev.Main, rev.Sub)
	}
	if im.any && !im.last.Less(rev) {
		return fmt.Errorf("mvcc: import: revision %d.%d after %d.%d", rev.Main, rev.Sub, im.last.Main, im.last.Sub)
	}
	var m mvccpb.KeyValue
	if err := unmarshalKV(kv, &m); err != nil {
		return fmt.Errorf("mvcc: import: revision %d.%d: %w", rev.Main, rev.Sub, err)
	}
	if len(m.Key) == 0 {
		return fmt.Errorf("mvcc: import: revision %d.%d has no key", rev.Main, rev.Sub)
	}
	if !tombstone && (m.ModRevision != rev.Main || m.CreateRevision < 1 || m.CreateRevision > rev.Main || m.Version < 1) {
		return fmt.Errorf("mvcc: import: revision %d.%d of %q: create %d, mod %d, version %d do not fit",
			rev.Main, rev.Sub, m.Key, m.CreateRevision, m.ModRevision, m.Version)
	}
	im.batch.Set(revisionKey(rev, tombstone), kv)
	im.last, im.any = rev, true
	im.Revisions++
	im.bytes += len(kv) + revisionKeyBytes
	if im.bytes >= importBatchBytes {
		return im.flush()
	}
	return nil
}

func (im *Importer) flush() error {
	err := im.batch.CommitMaintenance()
	im.batch, im.bytes = im.b.NewBatch(), 0
	return err
}

// Finish writes the compaction marks and what is left of the batch.
// A scheduled compaction may be past the last revision (etcdutl's
// --bump-revision): the store's revision then starts there.
func (im *Importer) Finish(scheduled, finished int64) error {
	if scheduled < 0 || finished < 0 || finished > scheduled {
		im.batch.Close()
		return fmt.Errorf("mvcc: import: compaction marks scheduled %d, finished %d", scheduled, finished)
	}
	if scheduled > 0 {
		im.batch.Set(scheduledCompactKey, binary.BigEndian.AppendUint64(nil, uint64(scheduled)))
	}
	if finished > 0 {
		im.batch.Set(finishedCompactKey, binary.BigEndian.AppendUint64(nil, uint64(finished)))
	}
	return im.batch.CommitMaintenance()
}

package mvcc

import (
	"sync"

	"github.com/cairn-db/cairn/internal/backend"
)

// viewCache shares one backend read view among all the reads of one
// revision. A pebble snapshot costs a list insertion to make and a
// compaction check to close, a tenth of a one-key read's CPU; under a read
// load with no writes, every read now uses the same one.
//
// A view is good for reads at revision rev if it was made after rev was
// committed: the revisions at or below rev never change afterwards, except
// by compaction, and reads below the compaction revision are refused
// anyway. So views are keyed by the current revision when made, under the
// store's mu (read), which End holds (write) to move the revision.
type viewCache struct {
	mu sync.Mutex
	// cur is the view for the newest revision asked about, or nil.
	cur *sharedView
}

type sharedView struct {
	view *backend.ReadView
	rev  int64
	// refs counts the readers using it, plus one while it is the cache's
	// cur. Guarded by viewCache.mu; the view closes at zero.
	refs int
}

// acquire returns a view for reads at rev, the current revision.
// REQUIRES: the store's mu held (read or write), so rev is current.
func (c *viewCache) acquire(b *backend.Backend, rev int64) *sharedView {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.cur; v != nil && v.rev == rev {
		v.refs++
		return v
	}
	v := &sharedView{view: b.NewReadView(), rev: rev, refs: 2}
	if old := c.cur; old != nil {
		c.releaseLocked(old)
	}
	c.cur = v
	return v
}

// release ends one reader's use of v.
func (c *viewCache) release(v *sharedView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(v)
}

// REQUIRES: c.mu held.
func (c *viewCache) releaseLocked(v *sharedView) {
	v.refs--
	if v.refs == 0 {
		v.view.Close()
	}
}

// close drops the cached view (readers still holding it close it last);
// the next read makes a new one.
func (c *viewCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.releaseLocked(c.cur)
		c.cur = nil
	}
}

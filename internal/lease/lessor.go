package lease

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// MaxTTL is the longest TTL a lease may be granted, in seconds (etcd's).
const MaxTTL = 9_000_000_000

// Errors, as etcd's lessor's.
var (
	ErrNotFound    = errors.New("lease: lease not found")
	ErrExists      = errors.New("lease: lease already exists")
	ErrTTLTooLarge = errors.New("lease: too large lease TTL")
	// ErrNotPrimary: this lessor keeps no time (not, or no longer, the
	// leader's); the caller asks the leader.
	ErrNotPrimary = errors.New("lease: not the primary lessor")
)

// Prefix is the backend key space of lease records.
const Prefix = 'l'

// Key is the backend key of lease id's record.
func Key(id int64) []byte {
	k := make([]byte, 9)
	k[0] = Prefix
	binary.BigEndian.PutUint64(k[1:], uint64(id))
	return k
}

// Record is a lease as stored.
type Record struct {
	ID, TTL, RemainingTTL int64
}

// Encode is r's stored value.
func (r Record) Encode() []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(r.TTL))
	binary.BigEndian.PutUint64(v[8:], uint64(r.RemainingTTL))
	return v
}

// DecodeRecord reads a stored lease.
func DecodeRecord(key, value []byte) (Record, error) {
	if len(key) != 9 || key[0] != Prefix || len(value) != 16 {
		return Record{}, fmt.Errorf("lease: malformed record %x = %x", key, value)
	}
	return Record{ID: int64(binary.BigEndian.Uint64(key[1:])), TTL: int64(binary.BigEndian.Uint64(value)),
		RemainingTTL: int64(binary.BigEndian.Uint64(value[8:]))}, nil
}

type lease struct {
	Record
	keys map[string]struct{}
	// expiry is when the lease expires: set only on the primary.
	expiry time.Time
	// index is the lease's place in the expiry heap, -1 if not in it.
	index int
	// revoking is set once the lease expired on this primary: its revoke
	// is under way, and it is renewed no more.
	revoking bool
}

// Lessor holds the leases. Its methods are safe for concurrent use.
//
// Invariants (under mu): every key in keyLease is in its lease's keys and
// the other way round; a lease is in the heap exactly when primary.
type Lessor struct {
	minTTL  int64
	now     func() time.Time
	metrics *Metrics

	mu       sync.Mutex
	leases   map[int64]*lease
	keyLease map[string]int64
	primary  bool
	expiries expiryHeap

	// betweenChunks, if set (by tests), runs between two chunks of a
	// Remaining walk, without the lock.
	betweenChunks func()
}

// New returns an empty lessor granting at least minTTL seconds.
func New(minTTL int64, m *Metrics) *Lessor {
	if m == nil {
		m = NewMetrics()
	}
	return &Lessor{minTTL: minTTL, now: time.Now, metrics: m, leases: map[int64]*lease{}, keyLease: map[string]int64{}}
}

// SetClock makes the lessor read the time from now instead of time.Now:
// the member simulator's clock follows its ticks.
func (le *Lessor) SetClock(now func() time.Time) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.now = now
}

// Reset replaces every lease with records, and the keys with keys (key ->
// lease), as rebuilt from a backend. Keys naming an unknown lease are
// left out. The lessor stays primary or not; a primary restarts every
// lease's clock as Promote does.
func (le *Lessor) Reset(records []Record, keys map[string]int64, extend time.Duration) {
	le.mu.Lock()
	defer le.mu.Unlock()
	for _, l := range le.expiries {
		l.index = -1 // out of the heap, for a Remaining walking it
	}
	le.leases, le.keyLease = map[int64]*lease{}, map[string]int64{}
	le.expiries = nil
	for _, r := range records {
		le.leases[r.ID] = &lease{Record: r, keys: map[string]struct{}{}, index: -1}
	}
	for k, id := range keys {
		if l, ok := le.leases[id]; ok {
			l.keys[k] = struct{}{}
			le.keyLease[k] = id
		}
	}
	if le.primary {
		le.startClocksLocked(extend)
	}
}

// Exists reports whether lease id exists.
func (le *Lessor) Exists(id int64) bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	_, ok := le.leases[id]
	return ok
}

// Grant adds lease id (applied from the log); ttl below the minimum is
// raised to it. It returns the record to store.
func (le *Lessor) Grant(id, ttl int64) (Record, error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if _, ok := le.leases[id]; ok {
		return Record{}, ErrExists
	}
	if ttl > MaxTTL {
		return Record{}, ErrTTLTooLarge
	}
	l := &lease{Record: Record{ID: id, TTL: max(ttl, le.minTTL)}, keys: map[string]struct{}{}, index: -1}
	le.leases[id] = l
	le.metrics.granted.Inc()
	le.metrics.ttls.Observe(float64(l.TTL))
	if le.primary {
		l.expiry = le.now().Add(time.Duration(l.TTL) * time.Second)
		heap.Push(&le.expiries, l)
	}
	return l.Record, nil
}

// Keys returns the keys lease id holds, sorted.
func (le *Lessor) Keys(id int64) ([]string, error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return nil, ErrNotFound
	}
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// Revoke removes lease id (applied from the log, after its keys were
// deleted).
func (le *Lessor) Revoke(id int64) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return ErrNotFound
	}
	for k := range l.keys {
		delete(le.keyLease, k)
	}
	if l.index >= 0 {
		heap.Remove(&le.expiries, l.index)
	}
	delete(le.leases, id)
	le.metrics.revoked.Inc()
	return nil
}

// Checkpoint records lease id's remaining TTL (applied from the log). It
// returns the record to store.
func (le *Lessor) Checkpoint(id, remaining int64) (Record, error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	l.RemainingTTL = remaining
	return l.Record, nil
}

// Follow keeps the keys each lease holds in step with a committed
// transaction's changes (applied from the log): a put holds its key by its
// lease (by none for 0, or a lease that does not exist), a delete releases
// it. One lock for the whole transaction: every write comes through here.
func (le *Lessor) Follow(events []*mvccpb.Event) {
	le.mu.Lock()
	defer le.mu.Unlock()
	for _, ev := range events {
		key := string(ev.Kv.Key)
		le.detachLocked(key)
		if ev.Type != mvccpb.PUT || ev.Kv.Lease == 0 {
			continue
		}
		if l, ok := le.leases[ev.Kv.Lease]; ok {
			l.keys[key] = struct{}{}
			le.keyLease[key] = ev.Kv.Lease
		}
	}
}

func (le *Lessor) detachLocked(key string) {
	if id, ok := le.keyLease[key]; ok {
		delete(le.leases[id].keys, key)
		delete(le.keyLease, key)
	}
}

// Promote makes this lessor the primary, if stillLeader (asked under the
// lessor's lock, so a Demote for a leader change that came first is not
// undone): every lease's clock starts at its remaining TTL (checkpointed,
// else granted) plus extend.
func (le *Lessor) Promote(extend time.Duration, stillLeader func() bool) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !stillLeader() {
		return
	}
	le.primary = true
	le.startClocksLocked(extend)
}

func (le *Lessor) startClocksLocked(extend time.Duration) {
	now := le.now()
	le.expiries = make(expiryHeap, 0, len(le.leases))
	for _, l := range le.leases {
		ttl := l.TTL
		if l.RemainingTTL > 0 {
			ttl = l.RemainingTTL
		}
		l.expiry = now.Add(extend + time.Duration(ttl)*time.Second)
		l.revoking = false
		l.index = len(le.expiries)
		le.expiries = append(le.expiries, l)
	}
	heap.Init(&le.expiries)
}

// Demote stops tracking expiry: this member no longer leads.
func (le *Lessor) Demote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.primary = false
	for _, l := range le.expiries {
		l.index, l.expiry = -1, time.Time{}
	}
	le.expiries = nil
}

// Primary reports whether this lessor tracks expiry.
func (le *Lessor) Primary() bool {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.primary
}

// Renew restarts lease id's clock at its full TTL, on the primary. It
// returns the TTL, and whether the lease had a checkpointed remaining TTL
// (which the caller clears through raft). An expired lease, whose revoke
// is under way, is not found.
func (le *Lessor) Renew(id int64) (ttl int64, checkpointed bool, err error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return 0, false, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok || l.index < 0 || l.revoking || !l.expiry.After(le.now()) {
		return 0, false, ErrNotFound
	}
	l.expiry = le.now().Add(time.Duration(l.TTL) * time.Second)
	heap.Fix(&le.expiries, l.index)
	le.metrics.renewed.Inc()
	return l.TTL, l.RemainingTTL > 0, nil
}

// TimeToLive returns lease id's granted and remaining TTL (whole seconds,
// rounded down, as etcd), and its keys if asked, sorted. Only the primary
// keeps time: elsewhere it fails with ErrNotPrimary.
func (le *Lessor) TimeToLive(id int64, keys bool) (granted, remaining int64, ks []string, err error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return 0, 0, nil, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok {
		return 0, 0, nil, ErrNotFound
	}
	granted, remaining = l.TTL, 0
	if l.index >= 0 && !l.revoking {
		remaining = max(0, int64(l.expiry.Sub(le.now()).Seconds()))
	}
	if keys {
		for k := range l.keys {
			ks = append(ks, k)
		}
		slices.Sort(ks)
	}
	return granted, remaining, ks, nil
}

// Leases returns every lease ID, sorted.
func (le *Lessor) Leases() []int64 {
	le.mu.Lock()
	defer le.mu.Unlock()
	ids := make([]int64, 0, len(le.leases))
	for id := range le.leases {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Expired returns up to limit leases whose time is up, on the primary,
// and gives each retry more time before it is returned again (its revoke
// is being proposed; if that fails, it is tried again then).
func (le *Lessor) Expired(limit int, retry time.Duration) []int64 {
	le.mu.Lock()
	defer le.mu.Unlock()
	now := le.now()
	var ids []int64
	for len(ids) < limit && len(le.expiries) > 0 && !le.expiries[0].expiry.After(now) {
		l := le.expiries[0]
		ids = append(ids, l.ID)
		l.revoking = true
		l.expiry = now.Add(retry)
		heap.Fix(&le.expiries, 0)
	}
	return ids
}

// Remaining returns, on the primary, every lease's remaining TTL in whole
// seconds (rounded up, at least 1) where it is below the granted TTL: the
// checkpoints to propose, by lease ID. Keep-alives and every applied write
// (Follow) take the lessor's lock, so the walk takes it remainingChunk
// leases at a time, and sorts outside it. With 100,000 leases, the
// longest a keep-alive waited over five walks (BenchmarkRemaining): 60-100
// ms with the whole walk and its sort under the lock, 25-36 ms with the
// sort out of it, and since the chunks 4.1-4.6 ms in four runs of eight,
// 6-11 ms in three and 32 ms in one (a collection or the machine: one
// walk's waits are about 0.5 ms, up to 5 ms when a collection runs).
//
// The leases walked are those of the expiry heap when the walk starts: a
// lease granted meanwhile is left for the next checkpoint, one revoked
// meanwhile is skipped, and a lease renewed meanwhile is read as it is
// when its chunk is walked. If this lessor stops being the primary
// meanwhile, it returns nothing: a checkpoint is for the leader to decide.
func (le *Lessor) Remaining() []Record {
	le.mu.Lock()
	if !le.primary {
		le.mu.Unlock()
		return nil
	}
	leases := slices.Clone(le.expiries)
	le.mu.Unlock()
	out := make([]Record, 0, len(leases))
	for start := 0; start < len(leases); start += remainingChunk {
		if start > 0 {
			// Lets a keep-alive woken by the last unlock take the lock
			// (else it waits, parked, for the mutex's starvation mode:
			// about 1.5 ms, against 0.5).
			runtime.Gosched()
			if le.betweenChunks != nil {
				le.betweenChunks()
			}
		}
		var ok bool
		out, ok = le.remainingOf(leases[start:min(start+remainingChunk, len(leases))], out)
		if !ok {
			return nil
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// remainingChunk is how many leases Remaining walks under one hold of the
// lessor's lock: 1,024 take some 0.3 ms.
const remainingChunk = 1024

// remainingOf appends the checkpoints of leases to out; false if this
// lessor is no longer the primary.
func (le *Lessor) remainingOf(leases []*lease, out []Record) ([]Record, bool) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil, false
	}
	now := le.now()
	for _, l := range leases {
		// index < 0: revoked since the walk started (or the heap was
		// rebuilt by a Reset, whose leases the next walk sees).
		if l.index < 0 || l.revoking {
			continue
		}
		rem := max(1, int64(math.Ceil(l.expiry.Sub(now).Seconds())))
		if rem < l.TTL && rem != l.RemainingTTL {
			out = append(out, Record{ID: l.ID, TTL: l.TTL, RemainingTTL: rem})
		}
	}
	return out, true
}

// expiryHeap orders leases by expiry, soonest first.
type expiryHeap []*lease

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiry.Before(h[j].expiry) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	l := x.(*lease)
	l.index = len(*h)
	*h = append(*h, l)
}
func (h *expiryHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.index = -1
	*h = old[:len(old)-1]
	return l
}

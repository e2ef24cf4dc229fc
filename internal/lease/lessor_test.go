package lease

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// fakeClock is the lessor's clock in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func yes() bool { return true }

func newTestLessor(minTTL int64) (*Lessor, *fakeClock) {
	le := New(minTTL, nil)
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	le.now = c.now
	return le, c
}

// Grants keep etcd's rules: the minimum TTL, the maximum, no duplicates.
func TestGrant(t *testing.T) {
	le, _ := newTestLessor(5)
	if r, err := le.Grant(1, 2); err != nil || r.TTL != 5 {
		t.Fatalf("below the minimum: %+v %v", r, err)
	}
	if _, err := le.Grant(1, 10); err != ErrExists {
		t.Fatalf("twice: %v", err)
	}
	if _, err := le.Grant(2, MaxTTL+1); err != ErrTTLTooLarge {
		t.Fatalf("too long: %v", err)
	}
}

// Keys follow puts and deletes: a key is held by the lease of its last
// put, and revoking returns them sorted.
func TestKeys(t *testing.T) {
	le, _ := newTestLessor(1)
	le.Grant(1, 10)
	le.Grant(2, 10)
	put := func(key string, lease int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Lease: lease}}
	}
	del := func(key string) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key)}}
	}
	le.Follow([]*mvccpb.Event{put("b", 1), put("a", 1), put("c", 1)})
	le.Follow([]*mvccpb.Event{put("c", 2), put("d", 2)}) // c moved to lease 2
	le.Follow([]*mvccpb.Event{del("d"), put("e", 0)})    // e: no lease
	if keys, _ := le.Keys(1); fmt.Sprint(keys) != "[a b]" {
		t.Fatalf("lease 1: %v", keys)
	}
	if keys, _ := le.Keys(2); fmt.Sprint(keys) != "[c]" {
		t.Fatalf("lease 2: %v", keys)
	}
	le.Revoke(1)
	le.Follow([]*mvccpb.Event{put("a", 1)}) // a put naming a revoked lease holds nothing
	if _, err := le.Keys(1); err != ErrNotFound {
		t.Fatal(err)
	}
}

// Only the primary keeps time. Expired returns what is due, soonest
// first, at most limit at a time, and each again only after retry.
func TestExpiry(t *testing.T) {
	le, clock := newTestLessor(1)
	for i := int64(1); i <= 5; i++ {
		le.Grant(i, i*10)
	}
	if got := le.Expired(10, time.Second); len(got) != 0 {
		t.Fatalf("a follower expired %v", got)
	}
	le.Promote(0, yes)
	clock.advance(25 * time.Second)
	if got := le.Expired(10, time.Minute); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("at 25s: %v", got)
	}
	if got := le.Expired(10, time.Minute); len(got) != 0 {
		t.Fatalf("again before the retry: %v", got)
	}
	// A renewal restarts the clock; an expired lease is not renewed.
	if ttl, _, err := le.Renew(3); err != nil || ttl != 30 {
		t.Fatalf("renew: %d %v", ttl, err)
	}
	if _, _, err := le.Renew(1); err != ErrNotFound {
		t.Fatalf("renewing an expired lease: %v", err)
	}
	clock.advance(26 * time.Second) // 51s
	if got := le.Expired(1, time.Minute); fmt.Sprint(got) != "[4]" {
		t.Fatalf("at 51s, one at a time: %v", got)
	}
	if got := le.Expired(1, time.Minute); fmt.Sprint(got) != "[5]" {
		t.Fatalf("at 51s, the next: %v", got)
	}
	// Demoted: nothing expires, nothing renews.
	le.Demote()
	clock.advance(time.Hour)
	if got := le.Expired(10, time.Minute); len(got) != 0 {
		t.Fatalf("demoted, expired %v", got)
	}
	if _, _, err := le.Renew(3); err != ErrNotPrimary {
		t.Fatalf("demoted, renewed: %v", err)
	}
	// A promotion for a leadership already lost changes nothing.
	le.Promote(0, func() bool { return false })
	if le.Primary() {
		t.Fatal("promoted without leading")
	}
}

// A new leader starts each lease at its checkpointed remaining TTL (else
// its full TTL) plus the extension; Remaining reports what to checkpoint.
func TestPromoteFromCheckpoint(t *testing.T) {
	le, clock := newTestLessor(1)
	le.Grant(1, 100)
	le.Grant(2, 100)
	le.Promote(0, yes)
	clock.advance(40 * time.Second)
	rem := le.Remaining()
	if len(rem) != 2 || rem[0].RemainingTTL != 60 {
		t.Fatalf("remaining: %+v", rem)
	}
	le.Checkpoint(1, 60) // applied from the log
	le.Demote()
	le.Promote(2*time.Second, yes) // a new leader
	if _, remaining, _, _ := le.TimeToLive(1, false); remaining != 62 {
		t.Fatalf("lease 1 after the leader change: %d, want 62", remaining)
	}
	if _, remaining, _, _ := le.TimeToLive(2, false); remaining != 102 {
		t.Fatalf("lease 2 (never checkpointed): %d, want 102", remaining)
	}
	clock.advance(62*time.Second + time.Millisecond)
	if got := le.Expired(10, time.Minute); fmt.Sprint(got) != "[1]" {
		t.Fatalf("expired: %v", got)
	}
}

// Remaining walks the leases a chunk at a time, letting keep-alives and
// applied entries in between: what changes meanwhile is read as it is
// when its chunk is walked, a lease revoked meanwhile is left out (its
// checkpoint would name a lease that is gone), one granted meanwhile waits
// for the next walk, and a lessor that stops leading returns nothing.
func TestRemainingBetweenChunks(t *testing.T) {
	const n = 3*remainingChunk + 10
	setup := func() (*Lessor, *fakeClock) {
		le, clock := newTestLessor(1)
		for i := int64(1); i <= n; i++ {
			le.Grant(i, 100)
		}
		le.Promote(0, yes)
		clock.advance(30 * time.Second)
		return le, clock
	}

	le, _ := setup()
	rem := le.Remaining()
	if len(rem) != n || rem[0].ID != 1 || rem[n-1].ID != n || rem[n/2].RemainingTTL != 70 {
		t.Fatalf("without changes: %d checkpoints (first %+v, last %+v), want %d at 70 s", len(rem), rem[0], rem[n-1], n)
	}

	le, clock := setup()
	walked, first := 0, map[int64]bool{} // first: the leases of the first chunk
	le.betweenChunks = func() {
		walked++
		if walked > 1 {
			return
		}
		for _, l := range le.expiries[:remainingChunk] { // the heap's order, not IDs'
			first[l.ID] = true
		}
		// Between the first chunk and the rest: half the leases are
		// revoked, one is granted, one renewed, and 10 s pass.
		for i := int64(1); i <= n; i += 2 {
			if err := le.Revoke(i); err != nil {
				t.Fatal(err)
			}
		}
		le.Grant(n+1, 100)
		clock.advance(10 * time.Second)
		if _, _, err := le.Renew(2); err != nil {
			t.Fatal(err)
		}
	}
	rem = le.Remaining()
	if walked != 3 {
		t.Fatalf("%d pauses between chunks, want 3", walked)
	}
	got := map[int64]int64{}
	for _, r := range rem {
		got[r.ID] = r.RemainingTTL
	}
	for id := int64(1); id <= n+1; id++ {
		want, ok := int64(0), false // no checkpoint
		switch {
		case first[id]:
			want, ok = 70, true // walked before the changes
		case id == 2 || id%2 == 1:
			// Renewed (full TTL: nothing to checkpoint), revoked, or
			// granted during the walk.
		default:
			want, ok = 60, true // walked after 10 s more
		}
		if ttl, has := got[id]; has != ok || ttl != want {
			t.Errorf("lease %d (in the first chunk: %v): checkpoint %v at %d s, want %v at %d s", id, first[id], has, ttl, ok, want)
		}
	}
	if len(first) != remainingChunk {
		t.Fatalf("first chunk: %d leases", len(first))
	}

	le, _ = setup()
	le.betweenChunks = le.Demote
	if rem := le.Remaining(); rem != nil {
		t.Fatalf("%d checkpoints from a lessor that stopped leading during the walk", len(rem))
	}

	le, _ = setup()
	le.betweenChunks = func() {
		le.Reset([]Record{{ID: 7, TTL: 100}}, nil, 0) // a snapshot restored
	}
	if rem := le.Remaining(); len(rem) > remainingChunk {
		t.Fatalf("%d checkpoints: leases a restore replaced were walked on", len(rem))
	}
}

// 100,000 leases: finding the expired ones costs what expired, not what
// exists.
func TestManyLeasesExpireByHeap(t *testing.T) {
	le, clock := newTestLessor(1)
	const n = 100000
	for i := int64(1); i <= n; i++ {
		le.Grant(i, 1+i%1000)
	}
	le.Promote(0, yes)
	start := time.Now()
	for range 1000 {
		if got := le.Expired(100, time.Minute); len(got) != 0 {
			t.Fatal("expired too soon")
		}
	}
	perCheck := time.Since(start) / 1000
	clock.advance(2 * time.Second) // TTLs 1 and 2: 200 leases
	var got []int64
	for {
		ids := le.Expired(100, time.Hour)
		if len(ids) == 0 {
			break
		}
		got = append(got, ids...)
	}
	if len(got) != 200 {
		t.Fatalf("%d expired, want 200", len(got))
	}
	t.Logf("a check with nothing expired among %d leases: %v", n, perCheck)
	if perCheck > time.Millisecond {
		t.Fatalf("a check took %v: a scan, not a heap", perCheck)
	}
}

func BenchmarkExpiredNone(b *testing.B) {
	le, _ := newTestLessor(1)
	for i := int64(1); i <= 100000; i++ {
		le.Grant(i, 60)
	}
	le.Promote(0, yes)
	for b.Loop() {
		le.Expired(100, time.Minute)
	}
}

// BenchmarkRemaining: the checkpoints of 100,000 leases granted in random
// order (what the primary proposes every LeaseCheckpointInterval), and the
// longest a keep-alive (Renew) waited for the lessor's lock meanwhile.
//
//	go test ./internal/lease -run '^$' -bench Remaining -benchtime 5x
func BenchmarkRemaining(b *testing.B) {
	le, clock := newTestLessor(1)
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(100_000) {
		le.Grant(int64(i+1), 60)
	}
	le.Promote(0, yes)
	clock.advance(10 * time.Second)
	var longest time.Duration
	for b.Loop() {
		done := make(chan []Record)
		go func() { done <- le.Remaining() }()
		for waiting := true; waiting; {
			select {
			case recs := <-done:
				if len(recs) < 99_999 { // all but lease 1, which the loop renews
					b.Fatalf("%d checkpoints, want 99999", len(recs))
				}
				waiting = false
			default:
				start := time.Now()
				le.Renew(1)
				longest = max(longest, time.Since(start))
			}
		}
	}
	b.ReportMetric(float64(longest.Microseconds())/1000, "longest-renew-ms")
}

package diff

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// hashSide is one server of TestHashKVDifferential.
type hashSide struct {
	kv    pb.KVClient
	lease pb.LeaseClient
	maint pb.MaintenanceClient
}

func newHashSide(t *testing.T, binary string) hashSide {
	conn := startServer(t, binary)
	return hashSide{pb.NewKVClient(conn), pb.NewLeaseClient(conn), pb.NewMaintenanceClient(conn)}
}

// hashKV prints a HashKV answer, the member's identity left out.
func (h hashSide) hashKV(ctx context.Context, rev int64) string {
	resp, err := h.maint.HashKV(ctx, &pb.HashKVRequest{Revision: rev})
	if err != nil {
		return result(resp, err)
	}
	return fmt.Sprintf("hash %d compact_revision %d hash_revision %d header revision %d",
		resp.Hash, resp.CompactRevision, resp.HashRevision, resp.Header.Revision)
}

// TestHashKVDifferential applies the same history to Cairn and to stock
// etcd (puts, some with a lease, deletes, transactions, physical
// compactions, the lease's revocation) and requires HashKV to answer the
// same at every revision still readable, before and after each
// compaction: Cairn computes etcd's hash, with etcd's rules for what a
// compaction keeps and what the hash skips (a delete at the compaction
// revision; revisions compacted away that a later one supersedes, unless
// no key is left), and answers from the hash it stored at a compaction,
// as etcd does.
func TestHashKVDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	for seed := range seeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			sides := []hashSide{newHashSide(t, cairn), newHashSide(t, etcd)}
			r := rand.New(rand.NewPCG(uint64(seed), 1))
			ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
			defer cancel()
			const leaseID = 0x7a11
			var rev, compacted int64 = 1, 0
			do := func(desc string, fn func(h hashSide) (fmt.Stringer, error)) {
				t.Helper()
				var outs []string
				for _, h := range sides {
					outs = append(outs, result(fn(h)))
				}
				if outs[0] != outs[1] {
					t.Fatalf("%s\ncairn: %s\netcd:  %s", desc, outs[0], outs[1])
				}
				if i := strings.Index(outs[1], "revision:"); i >= 0 {
					fmt.Sscan(strings.TrimLeft(outs[1][i+len("revision:"):], " "), &rev)
				}
			}
			// checkHashes compares HashKV at every revision from the
			// compaction on, at 0, and just outside that range.
			checkHashes := func(when string) {
				t.Helper()
				revs := []int64{0, compacted - 1, rev + 1}
				for at := max(compacted, 1); at <= rev; at++ {
					revs = append(revs, at)
				}
				for _, at := range revs {
					a, b := sides[0].hashKV(ctx, at), sides[1].hashKV(ctx, at)
					if a != b {
						t.Fatalf("%s: HashKV(%d)\ncairn: %s\netcd:  %s", when, at, a, b)
					}
				}
			}
			do("lease grant", func(h hashSide) (fmt.Stringer, error) {
				return h.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: leaseID, TTL: 600})
			})
			checkHashes("empty store")
			leaseAlive := true
			for i := range 60 {
				var desc string
				var fn func(h hashSide) (fmt.Stringer, error)
				switch k := r.IntN(20); {
				case k < 7:
					req := randPut(r)
					if req.Lease == 42 {
						req.Lease = 0
					}
					if leaseAlive && r.IntN(3) == 0 {
						req.Lease = leaseID
					}
					desc = fmt.Sprintf("put %v", req)
					fn = func(h hashSide) (fmt.Stringer, error) { return h.kv.Put(ctx, req) }
				case k < 11:
					key, end := randRange(r)
					req := &pb.DeleteRangeRequest{Key: key, RangeEnd: end}
					desc = fmt.Sprintf("delete %v", req)
					fn = func(h hashSide) (fmt.Stringer, error) { return h.kv.DeleteRange(ctx, req) }
				case k < 16:
					req := randTxn(r, rev, 0)
					desc = fmt.Sprintf("txn %v", req)
					fn = func(h hashSide) (fmt.Stringer, error) { return h.kv.Txn(ctx, req) }
				case k < 19 || !leaseAlive:
					// Often at the current revision (a delete's, say).
					at := rev - int64(r.IntN(3))
					if at <= compacted {
						continue
					}
					req := &pb.CompactionRequest{Revision: at, Physical: true}
					desc = fmt.Sprintf("compact %v", req)
					fn = func(h hashSide) (fmt.Stringer, error) { return h.kv.Compact(ctx, req) }
					checkHashes(fmt.Sprintf("op %d, before compacting at %d", i, at))
					compacted = at
				default:
					desc = "revoke the lease"
					fn = func(h hashSide) (fmt.Stringer, error) {
						return h.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: leaseID})
					}
					leaseAlive = false
				}
				do(fmt.Sprintf("op %d: %s", i, desc), fn)
				checkHashes(fmt.Sprintf("op %d, after %s", i, desc))
			}
			// Delete everything (no key left: etcd's hash then counts
			// every revision the compaction left), then compact there.
			do("delete all", func(h hashSide) (fmt.Stringer, error) {
				return h.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
			})
			checkHashes("after deleting every key")
			do("compact at the delete", func(h hashSide) (fmt.Stringer, error) {
				return h.kv.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: true})
			})
			compacted = rev
			checkHashes("after compacting at the delete of every key")
		})
	}
}

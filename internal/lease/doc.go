// Package lease is the lessor: the leases a member knows, the keys each
// holds, and, on the leader, when each expires.
//
// # What is replicated and what is not
//
// Grants, revokes and checkpoints are raft entries: the applier calls
// Grant, Revoke and Checkpoint on every member, in log order, and records
// each lease in the backend in the same batch, so every member holds the
// same leases and the same keys under each (Follow keeps up with the
// store's puts and deletes). Renewals and expiry are not replicated: only
// the leader (the primary lessor, after Promote) tracks expiry times, in
// memory, in a heap ordered by expiry, so finding what expired costs
// O(log n) per lease, never a scan. The leader proposes a revoke for each
// lease that expired; followers never revoke on their own, and a member
// that stepped down (Demote) stops at once.
//
// # Leader changes
//
// A new leader's clock starts each lease at its remaining TTL: the last
// checkpointed one if any, else the granted TTL, plus the election timeout
// (a keep-alive sent to the old leader may have been lost with it). The
// leader checkpoints every lease's remaining TTL through raft
// periodically, so leader changes do not renew leases forever; a renewal
// clears the checkpoint (the lease is back to its full TTL).
//
// # Backend layout
//
//	'l' | lease ID (8B BE)  ->  TTL (8B BE) | remaining TTL (8B BE), seconds
//
// The keys a lease holds are not stored: they are the store's live keys
// whose KeyValue names the lease, rebuilt at Open and after a restore.
package lease

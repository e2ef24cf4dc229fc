// Package member holds the deterministic parts of a member that sit
// between the raft loop (package raftnode) and the state machine (package
// apply): opening and recovering its storage (Open), applying what raft
// commits and taking snapshots (Pipeline), and serving and storing
// snapshot images (Images). None of it keeps a goroutine running (an
// image is written through a pipe by one that OpenImage waits for) or
// decides anything by the clock (it reads one only to time writes for
// metrics), so the same code runs in production, where package server
// drives it from its goroutines, and in the member simulator (package
// membersim), which drives it from a seeded scheduler on in-memory file
// systems.
//
// Recovery (Open on an existing member):
//
//  1. the newest snapshot file the WAL accepts as a start;
//  2. the backend, replaced by that snapshot's image if it is older (a
//     crash during an install);
//  3. the WAL after the snapshot, into raft's in-memory storage, with a
//     commit index of at least what the backend applied.
//
// With ForceNewCluster (etcd's --force-new-cluster), step 3 keeps only the
// committed entries and appends, committed, the configuration changes that
// leave this member the only voter (see forceNewCluster).
//
// A crash at any instant loses no acknowledged write: the WAL holds every
// entry before it is acknowledged, and the backend's consistent index
// says which the state machine already holds.
package member

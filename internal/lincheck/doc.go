// Package lincheck checks a live etcd-API cluster (Cairn or etcd) for
// linearizability from the outside, as a client sees it: it is
// `cairnctl check linearizable`.
//
// # What it does
//
// Run drives the cluster with several workers for a while, each on its own
// client pinned to one endpoint (worker i uses endpoint i mod n, so reads
// go to every member, followers included). Each worker picks one of a few
// keys under a private prefix and either puts a value no other put writes
// or reads the key linearizably, and records the call, the answer and when
// each happened. Then:
//
//  1. The history is checked with porcupine against a model of one register
//     per key (Model): a read returns the value of the last put before it,
//     with that put's revision as its mod revision; a put's revision is above
//     the revision of every put before it. A put whose client heard no
//     answer (a timeout, a lost connection) may have taken effect at any
//     time after its call, or never.
//  2. The audit watches the prefix from the revision before the first
//     operation to the revision after the last: every acknowledged put
//     must appear there, at the revision its answer gave, with its value,
//     and nothing else may have written under the prefix.
//
// A violation of either is a failure; porcupine's visualisation of a
// non-linearizable history (an HTML file) shows the operations of the key
// that failed and the longest orders the checker could find.
//
// # Worked example
//
// Worker 0 (endpoint A) puts k=v1 and hears revision 5; then worker 1
// (endpoint B, a follower) reads k and gets "" with mod revision 0, having
// called after worker 0's answer. No order puts the read after the put
// while giving "" back: porcupine reports the history illegal, and the
// visualisation shows the two operations on the time line of k. This is
// the stale read of a follower that answers from its own state without
// asking the leader (a ReadIndex): what the check exists to catch.
package lincheck

// Package gctune keeps Go's garbage collector from running many times a
// second while a member's live heap is small.
//
// Go starts a collection when the heap has grown by GOGC percent (100 by
// default) of what the last one found live. A member holding 100,000
// small keys has a live heap of about 20 MiB, so with 100 clients writing
// it collects every 40 MiB of garbage: 3-5 times a second on a leader at
// 8,000 puts/s, which measured 15-17% of every member's CPU (#21). The
// cost of a collection is set by the live heap, the number of collections
// by the headroom above it: the tuner raises GOGC while the live heap is
// small so that the headroom is at least Headroom bytes, and leaves it at
// 100 once the live heap alone is that large.
//
//	live heap 20 MiB, Headroom 64 MiB: GOGC 320, next collection at 84 MiB
//	live heap 32 MiB:                  GOGC 200, next collection at 96 MiB
//	live heap 512 MiB:                 GOGC 100, next collection at 1 GiB (Go's default)
//
// The price is memory: a small member's heap may hold up to Headroom of
// garbage between collections, where Go's default would hold as much as
// is live. A large one is unchanged. GOMEMLIMIT still bounds the heap (Go
// collects early as it nears the limit), and a GOGC set in the
// environment turns the tuner off: the operator's choice stands.
//
// The tuner looks at the live heap of the last collection (the runtime's
// /gc/heap/live:bytes) a few times a second, from one goroutine that Stop
// ends; it changes the process-wide GOGC, so one process runs one tuner
// (cairn's main starts it, tests of other packages do not).
package gctune

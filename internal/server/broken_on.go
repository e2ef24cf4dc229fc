//go:build cairn_broken_reads

package server

import "time"

// brokenStaleReads makes a deliberately broken server, for tests that must
// see a consistency check fail (`cairnctl check linearizable`, tests/e2e):
// built with -tags cairn_broken_reads, a member answers linearizable
// reads from its own state, without a ReadIndex round, and a follower
// applies each batch of committed entries brokenApplyDelay late. Its
// followers then serve stale reads, certainly so under concurrent writes.
// Never in a release: nothing but those tests sets the tag.
const brokenStaleReads = true

// brokenApplyDelay is how late a follower of a broken build applies.
const brokenApplyDelay = 30 * time.Millisecond

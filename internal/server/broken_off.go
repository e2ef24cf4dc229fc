//go:build !cairn_broken_reads

package server

import "time"

// brokenStaleReads is false in every real build: see broken_on.go.
const brokenStaleReads = false

// brokenApplyDelay is unused in real builds.
const brokenApplyDelay time.Duration = 0

package raft

import (
	"errors"
	"fmt"
)

// Rand is the core's only source of randomness (election timeouts), passed
// in so that a seed reproduces a run. *math/rand/v2.Rand satisfies it.
type Rand interface {
	IntN(n int) int
}

// Config configures one member's raft core.
type Config struct {
	// ID is this member's id; never 0.
	ID uint64
	// ElectionTicks is the election timeout in ticks: a follower that hears
	// from no leader for a randomized [ElectionTicks, 2*ElectionTicks) ticks
	// campaigns. Must exceed HeartbeatTicks (etcd: 10 ticks of 100 ms).
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval in ticks.
	HeartbeatTicks int
	// Storage is the durable log; the caller writes it, the core reads it.
	Storage Storage
	// Applied is the last index already applied to the state machine, on a
	// restart. Committed entries up to it are not handed out again.
	Applied uint64
	// MaxSizePerMsg bounds the entry payload in one MsgApp (at least one
	// entry is always sent). Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxCommittedSizePerReady bounds the committed entry payload in one
	// Ready. Default 64 MiB.
	MaxCommittedSizePerReady uint64
	// MaxUncommittedEntriesSize bounds the payload a leader holds appended
	// but not yet applied; further proposals get ErrTooManyRequests.
	// Default 64 MiB.
	MaxUncommittedEntriesSize uint64
	// MaxInflightMsgs bounds the MsgApps in flight to one follower in
	// StateReplicate. Default 256.
	MaxInflightMsgs int
	// MaxInflightBytes bounds their payload bytes (0: only the count
	// bounds). Default 32 MiB.
	MaxInflightBytes uint64
	// MaxPendingReads bounds the ReadIndex requests a leader holds. Default
	// 16384.
	MaxPendingReads int
	// CheckQuorum: a leader that has not heard from a quorum for an election
	// timeout steps down, and members that heard from a leader within the
	// election timeout ignore vote requests (the leader lease).
	CheckQuorum bool
	// PreVote: campaign only after a pre-vote round shows a quorum would
	// vote for us (§9.6), so a rejoining member never bumps the term.
	PreVote bool
	// Rand draws election timeouts.
	Rand Rand
	// Logger hears the core's account of elections, role and
	// configuration changes, in etcd raft's words ("%x became leader at
	// term %d"), which operators and tools grep for. Nil discards it. It
	// is called from inside Tick, Step and the proposal methods, on the
	// caller's goroutine, and must not call back into the core.
	Logger Logger
}

// Logger is where the core's log lines go; *zap.SugaredLogger satisfies
// it. Lines are printf-style, as etcd raft's are.
type Logger interface {
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
}

// discardLogger is the Logger of a Config that has none.
type discardLogger struct{}

func (discardLogger) Infof(string, ...any) {}
func (discardLogger) Warnf(string, ...any) {}

func (c *Config) validate() error {
	switch {
	case c.ID == None:
		return errors.New("raft: config: id must not be 0")
	case c.HeartbeatTicks <= 0:
		return fmt.Errorf("raft: config: heartbeat ticks must be positive, got %d", c.HeartbeatTicks)
	case c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("raft: config: election ticks (%d) must exceed heartbeat ticks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	case c.Storage == nil:
		return errors.New("raft: config: storage is required")
	case c.Rand == nil:
		return errors.New("raft: config: rand is required")
	case c.MaxInflightMsgs < 0 || c.MaxPendingReads < 0:
		return errors.New("raft: config: negative limit")
	}
	if c.Logger == nil {
		c.Logger = discardLogger{}
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxCommittedSizePerReady == 0 {
		c.MaxCommittedSizePerReady = 64 << 20
	}
	if c.MaxUncommittedEntriesSize == 0 {
		c.MaxUncommittedEntriesSize = 64 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = 32 << 20
	}
	if c.MaxPendingReads == 0 {
		c.MaxPendingReads = 16384
	}
	return nil
}

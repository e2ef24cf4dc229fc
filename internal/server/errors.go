package server

import (
	"errors"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/transport"
)

// Errors with etcd's messages (v3rpc maps them to etcd's gRPC codes).
var (
	ErrStopped         = errors.New("etcdserver: server stopped")
	ErrCanceled        = errors.New("etcdserver: request cancelled")
	ErrTimeout         = errors.New("etcdserver: request timed out")
	ErrNoLeader        = errors.New("etcdserver: no leader")
	ErrTooManyRequests = errors.New("etcdserver: too many requests")
	ErrRequestTooLarge = errors.New("etcdserver: request is too large")
	// ErrNoSpace and ErrCorrupt are the applier's: an alarm's refusal
	// and the quota's say the same.
	ErrNoSpace = apply.ErrNoSpace
	ErrCorrupt = apply.ErrCorrupt
)

// Errors of membership changes and leadership moves, with etcd's
// messages (the membership package's own are membership.Err*).
var (
	ErrNotEnoughStartedMembers = errors.New("etcdserver: re-configuration failed due to not enough started members")
	ErrUnhealthy               = errors.New("etcdserver: unhealthy cluster")
	ErrLearnerNotReady         = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	ErrNotLeader               = errors.New("etcdserver: not leader")
	ErrBadLeaderTransferee     = errors.New("etcdserver: bad leader transferee")
	ErrTimeoutLeaderTransfer   = errors.New("etcdserver: request timed out, leader transfer took too long")
	// ErrMemberRemoved is the transport's: a peer's refusal and this
	// member's own removal say the same.
	ErrMemberRemoved = transport.ErrMemberRemoved
)

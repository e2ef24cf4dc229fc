package server

import "errors"

// Errors with etcd's messages (v3rpc maps them to etcd's gRPC codes).
var (
	ErrStopped         = errors.New("etcdserver: server stopped")
	ErrCanceled        = errors.New("etcdserver: request cancelled")
	ErrTimeout         = errors.New("etcdserver: request timed out")
	ErrNoLeader        = errors.New("etcdserver: no leader")
	ErrTooManyRequests = errors.New("etcdserver: too many requests")
	ErrRequestTooLarge = errors.New("etcdserver: request is too large")
	ErrNoSpace         = errors.New("etcdserver: mvcc: database space exceeded")
)

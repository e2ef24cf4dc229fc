//go:build !linux

package transport

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: a
// vanished peer is then noticed by the write deadline and TCP's own
// retransmission limit.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }

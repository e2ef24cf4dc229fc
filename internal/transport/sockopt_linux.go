package transport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// userTimeout bounds how long data sent on a raw message connection may
// stay unacknowledged before the kernel ends the connection: TCP's
// keep-alives are not sent while data is in flight, and its
// retransmissions would go on for a quarter of an hour.
const userTimeoutMillis = 5000

// setUserTimeout sets TCP_USER_TIMEOUT on a TCP socket being dialled (a
// net.Dialer's Control); other sockets are left as they are.
func setUserTimeout(network, _ string, c syscall.RawConn) error {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, userTimeoutMillis)
	})
	if err != nil {
		return err
	}
	return serr
}

package server

import (
	"os"
	"syscall"
)

// fdUsed is how many file descriptors the process has open (0 where the
// system does not say, as etcd).
func fdUsed() int {
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	// ReadDir opened one descriptor of its own for the listing.
	return len(names) - 1
}

// FDLimit is the process's soft limit on open file descriptors.
func FDLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Cur
}

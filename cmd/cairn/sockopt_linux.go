package main

import "syscall"

// soReusePort is Linux's SO_REUSEPORT, which package syscall does not
// name.
const soReusePort = 0xf

func setReuseAddress(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
}

func setReusePort(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
}

// mlockAll locks the process's current and future pages in RAM (etcd's
// --memory-mlock).
func mlockAll() error {
	return syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE)
}

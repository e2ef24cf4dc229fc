//go:build !linux

package main

import "errors"

var errNotLinux = errors.New("not supported on this platform (Linux only)")

func setReuseAddress(uintptr) error { return errNotLinux }
func setReusePort(uintptr) error    { return errNotLinux }
func mlockAll() error               { return errNotLinux }

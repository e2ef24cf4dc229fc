package vfs

import (
	"os"
	"syscall"
)

// syncData is fdatasync: it flushes the data and whatever metadata reading
// it back needs (the size, if it changed), skipping timestamps.
func syncData(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// preallocate extends f, shorter than size, to size bytes with fallocate,
// so later writes neither allocate blocks nor change the size. File
// systems without fallocate get a sparse extension instead.
func preallocate(f *os.File, size int64) error {
	var err error
	for {
		err = syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.ENOTSUP || err == syscall.EOPNOTSUPP || err == syscall.ENOSYS {
		return f.Truncate(size)
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}

// dropCache is posix_fadvise(POSIX_FADV_DONTNEED): clean pages in the range
// are dropped at once (dirty ones would be written back first; callers
// drop only synced ranges).
func dropCache(f *os.File, off, n int64) error {
	_, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), uintptr(off), uintptr(n), fadvDontNeed, 0, 0)
	if errno != 0 {
		return &os.PathError{Op: "fadvise", Path: f.Name(), Err: errno}
	}
	return nil
}

// fadvDontNeed is POSIX_FADV_DONTNEED on Linux.
const fadvDontNeed = 4

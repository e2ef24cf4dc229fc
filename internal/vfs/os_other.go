//go:build !linux

package vfs

import "os"

func syncData(f *os.File) error { return f.Sync() }

// preallocate extends f to size bytes; without fallocate the extension is
// sparse, which still keeps later writes from changing the size.
func preallocate(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}

//go:build !linux

package vfs

import "os"

func syncData(f *os.File) error { return f.Sync() }

// preallocate extends f, shorter than size, to size bytes; without
// fallocate the extension is sparse, which still keeps later writes from
// changing the size.
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// dropCache does nothing: the hint is Linux's.
func dropCache(*os.File, int64, int64) error { return nil }

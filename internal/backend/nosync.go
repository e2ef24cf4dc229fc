package backend

import "github.com/cockroachdb/pebble/v2/vfs"

// NoSyncFS wraps fs (vfs.Default if nil) so that every sync of its files
// and directories does nothing: Backend.Sync and Close, and pebble's own
// WAL, flushes, compactions and manifest writes alike. A power failure can
// then lose or tear anything. For tests (etcd's --unsafe-no-fsync). Every
// way pebble opens a file goes through one of the methods below; a
// directory is synced through OpenDir.
func NoSyncFS(fs vfs.FS) vfs.FS {
	if fs == nil {
		fs = vfs.Default
	}
	return noSyncFS{fs}
}

type noSyncFS struct{ vfs.FS }

func (fs noSyncFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return noSync(fs.FS.Create(name, category))
}

func (fs noSyncFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return noSync(fs.FS.Open(name, opts...))
}

func (fs noSyncFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return noSync(fs.FS.OpenReadWrite(name, category, opts...))
}

func (fs noSyncFS) OpenDir(name string) (vfs.File, error) { return noSync(fs.FS.OpenDir(name)) }

func (fs noSyncFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return noSync(fs.FS.ReuseForWrite(oldname, newname, category))
}

func noSync(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                       { return nil }
func (noSyncFile) SyncData() error                   { return nil }
func (noSyncFile) SyncTo(length int64) (bool, error) { return true, nil }

package vfs

// NoSync wraps fs so that File.Sync does nothing, on files and directories
// alike: what is written reaches the disk when the kernel decides, and a
// power failure can lose any of it, acknowledged or not. It is for tests
// that want speed over durability (etcd's --unsafe-no-fsync); it breaks
// every durability rule in the package doc.
func NoSync(fs FS) FS { return noSyncFS{fs} }

type noSyncFS struct{ FS }

func (n noSyncFS) Create(name string) (File, error)        { return noSync(n.FS.Create(name)) }
func (n noSyncFS) Open(name string) (File, error)          { return noSync(n.FS.Open(name)) }
func (n noSyncFS) OpenReadWrite(name string) (File, error) { return noSync(n.FS.OpenReadWrite(name)) }
func (n noSyncFS) OpenDir(name string) (File, error)       { return noSync(n.FS.OpenDir(name)) }

func noSync(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

type noSyncFile struct{ File }

func (noSyncFile) Sync() error { return nil }

package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/internal/invariants"
)

// ErrStaleHandle is the error every operation on a MemFS file handle
// returns once the file system has crashed: the process that held it is
// gone.
var ErrStaleHandle = errors.New("vfs: file handle from before a crash")

// errDirRename is returned by MemFS.Rename for a directory. Moving a
// subtree would let a crash (which restores each directory's entries
// independently) put a directory under two parents, or under itself.
var errDirRename = errors.New("vfs: MemFS does not rename directories")

const (
	// sectorBytes is the unit a disk writes atomically: CrashRandom keeps
	// or loses not-yet-durable file contents a whole sector at a time.
	sectorBytes = 512
	// maxFileBytes bounds a MemFS file, so that a bogus offset fails with
	// EFBIG instead of exhausting memory.
	maxFileBytes = 1 << 30
)

// MemFS is an in-memory FS that models what survives a power loss. It is
// safe for concurrent use.
//
// Every file and directory is an inode with two versions: the current one,
// which all operations read and change, and the durable one, which is what
// a crash leaves. File.Sync on a file copies its current bytes to its
// durable bytes. File.Sync on a directory (from OpenDir) copies its current
// entries, the map from names to inodes, to its durable entries; the
// children's bytes are not touched. Nothing else makes anything durable:
// Create, Rename, Remove, RemoveAll and MkdirAll change only the current
// entries of a directory, and a directory made by MkdirAll starts with no
// durable entries and is itself a name that is durable only once its parent
// is synced. Crash keeps exactly the durable versions, walking from the
// root (always present) through durable entries only, so an inode whose
// name was never made durable is lost however well its bytes were synced.
//
// A worked example, starting from /wal durable and empty:
//
//	f := Create("/wal/1"); f.Write("abc")
//	    /wal {1} durable {}              1 "abc" durable ""
//	f.Sync()
//	    /wal {1} durable {}              1 "abc" durable "abc"
//	Crash()
//	    /wal {} durable {}               the name 1 was never durable: the
//	                                     file is gone, synced bytes and all
//	f = Create("/wal/1"); f.Write("abc"); f.Sync(); SyncDir("/wal")
//	    /wal {1} durable {1}             1 "abc" durable "abc"
//	f.Write("de"); Rename("/wal/1", "/wal/2")
//	    /wal {2} durable {1}             the same inode, "abcde" durable "abc"
//	Crash()
//	    /wal {1} durable {1}             1 "abc" durable "abc": back under its
//	                                     old name, with only its synced bytes;
//	                                     f now fails with ErrStaleHandle
//
// CrashRandom is Crash on a disk that reorders writes, where some of what
// was not yet durable may also have reached it (see CrashRandom).
//
// Each directory's entries survive independently, so a file renamed into
// another directory, with only the destination synced, survives a crash
// under both names, as one inode (a hard link). ext4 and XFS journal a
// rename as one change and would not do this; code that renames across
// directories must cope with it until both directories are synced.
//
// Errors are *os.PathError (*os.LinkError from Rename, as from os.Rename)
// wrapping the errno the os package returns on Linux, so
// errors.Is(err, os.ErrNotExist) or errors.Is(err, syscall.ENOTEMPTY)
// answers as on the real disk (testdata/parity.txt runs the same script on
// both). MemFS is stricter than Linux in three places: Open of a directory
// fails with EISDIR, OpenDir of a file with ENOTDIR, and directories
// cannot be renamed (see errDirRename). It has no permissions (MkdirAll
// ignores perm), modification times, links or symlinks. Names are
// cleaned, and relative names resolve against "/".
type MemFS struct {
	// Lock order: memFile.mu, then MemFS.mu.
	mu struct {
		sync.Mutex
		// root is the directory "/"; it always exists and is durable.
		root *inode
		// generation counts crashes. A handle opened in an earlier
		// generation belongs to a process that died with the power: every
		// operation on it fails with ErrStaleHandle.
		generation uint64
	}
}

var _ FS = (*MemFS)(nil)

// inode is a file or a directory. All its fields are guarded by the
// MemFS.mu of the file system it belongs to.
type inode struct {
	// isDir never changes.
	isDir bool

	// A file: data is its current contents, durable its contents as of
	// the last successful Sync. They never share memory.
	data    []byte
	durable []byte
	// [unsyncedLo, unsyncedHi) covers every byte written since the last
	// Sync (empty when unsyncedLo == unsyncedHi), so Sync copies only
	// that range, not a whole preallocated segment.
	// Invariant: data[i] == durable[i] for every i < min(len(data),
	// len(durable)) outside [unsyncedLo, unsyncedHi).
	unsyncedLo, unsyncedHi int

	// A directory: entries are its current names, durableEntries its
	// names as of its last Sync. Both are non-nil.
	entries        map[string]*inode
	durableEntries map[string]*inode
}

// NewMem returns an empty in-memory file system: only "/", durable.
func NewMem() *MemFS {
	fs := &MemFS{}
	fs.mu.root = newDir()
	return fs
}

func newDir() *inode {
	return &inode{isDir: true, entries: map[string]*inode{}, durableEntries: map[string]*inode{}}
}

// components returns the names along the cleaned, absolute form of name:
// none for "/". An empty name is an error, as for the OS.
func components(name string) ([]string, error) {
	if name == "" {
		return nil, syscall.ENOENT
	}
	p := path.Clean("/" + filepath.ToSlash(name))
	if p == "/" {
		return nil, nil
	}
	return strings.Split(p[1:], "/"), nil
}

// resolveLocked walks to name. It returns the directory holding name's last
// component (nil for the root), that component, and the inode it names (nil
// if absent). err is set only when the walk cannot reach the last
// component's directory.
// REQUIRES: fs.mu held.
func (fs *MemFS) resolveLocked(name string) (parent *inode, base string, n *inode, err error) {
	comps, err := components(name)
	if err != nil {
		return nil, "", nil, err
	}
	n = fs.mu.root
	for i, c := range comps {
		if !n.isDir {
			return nil, "", nil, syscall.ENOTDIR
		}
		child := n.entries[c]
		if child == nil && i < len(comps)-1 {
			return nil, "", nil, syscall.ENOENT
		}
		parent, base, n = n, c, child
	}
	return parent, base, n, nil
}

// existingLocked resolves name to an inode that must exist.
// REQUIRES: fs.mu held.
func (fs *MemFS) existingLocked(name string) (*inode, error) {
	_, _, n, err := fs.resolveLocked(name)
	if err == nil && n == nil {
		err = syscall.ENOENT
	}
	return n, err
}

// dirLocked resolves name to a directory that must exist.
// REQUIRES: fs.mu held.
func (fs *MemFS) dirLocked(name string) (*inode, error) {
	n, err := fs.existingLocked(name)
	if err == nil && !n.isDir {
		err = syscall.ENOTDIR
	}
	return n, err
}

func (fs *MemFS) Create(name string) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent, base, n, err := fs.resolveLocked(name)
	switch {
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	case n == nil:
		n = &inode{}
		parent.entries[base] = n
	case n.isDir:
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	default:
		n.resizeLocked(0)
	}
	fs.checkLocked(false)
	return fs.newHandleLocked(n, name, handleReadWrite), nil
}

func (fs *MemFS) Open(name string) (File, error) {
	return fs.openFile(name, handleReadOnly)
}

func (fs *MemFS) OpenReadWrite(name string) (File, error) {
	return fs.openFile(name, handleReadWrite)
}

func (fs *MemFS) openFile(name string, kind handleKind) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.existingLocked(name)
	if err == nil && n.isDir {
		err = syscall.EISDIR
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fs.newHandleLocked(n, name, kind), nil
}

func (fs *MemFS) OpenDir(name string) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.dirLocked(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fs.newHandleLocked(n, name, handleDir), nil
}

func (fs *MemFS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent, base, n, err := fs.resolveLocked(name)
	switch {
	case err != nil:
	case n == nil:
		err = syscall.ENOENT
	case parent == nil:
		err = syscall.EBUSY
	case n.isDir && len(n.entries) > 0:
		err = syscall.ENOTEMPTY
	default:
		delete(parent.entries, base)
		fs.checkLocked(false)
		return nil
	}
	return &os.PathError{Op: "remove", Path: name, Err: err}
}

func (fs *MemFS) RemoveAll(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent, base, n, err := fs.resolveLocked(name)
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && n == nil):
		return nil
	case err != nil:
	case parent == nil:
		err = syscall.EBUSY
	default:
		// The subtree goes with its name: nothing below it is reachable
		// any more, and its durable entries still describe it for a crash.
		delete(parent.entries, base)
		fs.checkLocked(false)
		return nil
	}
	return &os.PathError{Op: "removeall", Path: name, Err: err}
}

func (fs *MemFS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	err := fs.renameLocked(oldname, newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	fs.checkLocked(false)
	return nil
}

// REQUIRES: fs.mu held.
func (fs *MemFS) renameLocked(oldname, newname string) error {
	oldParent, oldBase, n, err := fs.resolveLocked(oldname)
	switch {
	case err != nil:
		return err
	case n == nil:
		return syscall.ENOENT
	case oldParent == nil:
		return syscall.EBUSY
	case n.isDir:
		return errDirRename
	}
	newParent, newBase, replaced, err := fs.resolveLocked(newname)
	switch {
	case err != nil:
		return err
	case replaced == n:
		// The same file under both names: POSIX says do nothing.
		return nil
	case replaced != nil && replaced.isDir:
		// Not rename(2)'s EISDIR: os.Rename looks first and says EEXIST.
		return syscall.EEXIST
	}
	delete(oldParent.entries, oldBase)
	newParent.entries[newBase] = n
	return nil
}

// MkdirAll creates dir and any missing parents. perm is ignored: MemFS has
// no permissions.
func (fs *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	comps, err := components(dir)
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	n := fs.mu.root
	for _, c := range comps {
		child := n.entries[c]
		if child == nil {
			child = newDir()
			n.entries[c] = child
		}
		if !child.isDir {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		n = child
	}
	fs.checkLocked(false)
	return nil
}

func (fs *MemFS) List(dir string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.dirLocked(dir)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return slices.Sorted(maps.Keys(n.entries)), nil
}

func (fs *MemFS) Stat(name string) (os.FileInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.existingLocked(name)
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	return n.statLocked(name), nil
}

// Crash simulates a power loss that keeps only what was durable: every
// directory reachable from the root through durable entries gets back its
// durable entries, every file so reached its durable bytes, and everything
// else is gone. Handles opened before the crash fail with ErrStaleHandle
// from then on.
func (fs *MemFS) Crash() {
	fs.crash(func() bool { return false })
}

// CrashRandom simulates a power loss on a disk that reorders writes and
// writes each 512-byte sector atomically, so that any part of what was not
// yet durable may have reached it:
//
//   - each directory keeps either its durable entries or its current ones,
//     a coin flip per directory whose two differ;
//   - each file's length is either its durable or its current length, a
//     coin flip if they differ, and then each sector whose durable and
//     current bytes differ (reading missing bytes as zeros) holds either,
//     a coin flip per sector. Equal sectors are kept.
//
// As with Crash, only inodes reachable through the surviving entries
// remain, and old handles fail with ErrStaleHandle. The outcome is a
// function of the rng's state and the operations since NewMem: the walk
// visits names in sorted order.
func (fs *MemFS) CrashRandom(rng *rand.Rand) {
	fs.crash(func() bool { return rng.IntN(2) == 1 })
}

// crash simulates a power loss. keepUnsynced is asked, in a deterministic
// order, whether each piece of not-yet-durable state (a directory's
// entries, a file's length, one sector of a file) reached the disk.
func (fs *MemFS) crash(keepUnsynced func() bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.checkLocked(true)
	visited := map[*inode]bool{}
	var visit func(n *inode)
	visit = func(n *inode) {
		// A file can sit under two names (see the MemFS comment); it
		// crashes once.
		if visited[n] {
			return
		}
		visited[n] = true
		if !n.isDir {
			n.data = crashContents(n, keepUnsynced)
			n.durable = slices.Clone(n.data)
			n.unsyncedLo, n.unsyncedHi = 0, 0
			return
		}
		survivors := n.durableEntries
		if !maps.Equal(n.entries, n.durableEntries) && keepUnsynced() {
			survivors = n.entries
		}
		n.entries, n.durableEntries = maps.Clone(survivors), maps.Clone(survivors)
		for _, name := range slices.Sorted(maps.Keys(n.entries)) {
			visit(n.entries[name])
		}
	}
	visit(fs.mu.root)
	fs.mu.generation++
	fs.checkLocked(true)
	if invariants.Enabled {
		for n := range visited {
			if !bytes.Equal(n.data, n.durable) || !maps.Equal(n.entries, n.durableEntries) {
				panic("vfs: invariant violated: an inode is not durable right after a crash")
			}
		}
	}
}

// crashContents returns what file n reads after a power loss (see
// CrashRandom).
// REQUIRES: MemFS.mu held.
func crashContents(n *inode, keepUnsynced func() bool) []byte {
	size := len(n.durable)
	if len(n.data) != size && keepUnsynced() {
		size = len(n.data)
	}
	out := make([]byte, size)
	copy(out, n.durable)
	// By the invariant on unsyncedLo, only sectors touching the unsynced
	// range or the bytes past the shorter version can differ.
	shorter := min(len(n.data), len(n.durable))
	for lo := 0; lo < size; lo += sectorBytes {
		hi := min(lo+sectorBytes, size)
		if hi <= shorter && (hi <= n.unsyncedLo || lo >= n.unsyncedHi) {
			continue
		}
		current := n.data[min(lo, len(n.data)):min(hi, len(n.data))]
		if sectorHolds(out[lo:hi], current) || !keepUnsynced() {
			continue
		}
		copy(out[lo:hi], current)
		clear(out[lo+len(current) : hi])
	}
	return out
}

// sectorHolds reports whether sector reads as prefix followed by zeros.
func sectorHolds(sector, prefix []byte) bool {
	return bytes.Equal(sector[:len(prefix)], prefix) && !slices.ContainsFunc(sector[len(prefix):], func(b byte) bool { return b != 0 })
}

// checkLocked panics if the tree is inconsistent. withData also checks
// each file's unsynced range against its bytes, which costs a pass over
// every file, so it runs only around crashes.
// REQUIRES: fs.mu held.
func (fs *MemFS) checkLocked(withData bool) {
	if !invariants.Enabled {
		return
	}
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("vfs: invariant violated: "+format, args...))
	}
	if !fs.mu.root.isDir {
		fail("the root is a file")
	}
	// Directories form a tree across current and durable entries alike
	// (MkdirAll makes each in one place, and they are never renamed), so
	// every directory is met exactly once.
	dirs := map[*inode]bool{}
	var walk func(p string, n *inode)
	walk = func(p string, n *inode) {
		if !n.isDir {
			if n.entries != nil || n.durableEntries != nil {
				fail("file %s has directory entries", p)
			}
			if withData && !n.syncedOutsideUnsynced() {
				fail("file %s differs from its durable bytes outside [%d, %d)", p, n.unsyncedLo, n.unsyncedHi)
			}
			return
		}
		if dirs[n] {
			fail("directory %s is reachable twice", p)
		}
		dirs[n] = true
		if n.entries == nil || n.durableEntries == nil || n.data != nil || n.durable != nil {
			fail("directory %s has nil entries or file data", p)
		}
		for name, child := range n.entries {
			walk(path.Join(p, name), child)
		}
		for name, child := range n.durableEntries {
			if n.entries[name] != child {
				walk(path.Join(p, name), child)
			}
		}
	}
	walk("/", fs.mu.root)
}

// syncedOutsideUnsynced checks the invariant on unsyncedLo.
// REQUIRES: MemFS.mu held.
func (n *inode) syncedOutsideUnsynced() bool {
	shorter := min(len(n.data), len(n.durable))
	lo, hi := min(n.unsyncedLo, shorter), min(n.unsyncedHi, shorter)
	if n.unsyncedLo == n.unsyncedHi {
		lo, hi = shorter, shorter
	}
	return bytes.Equal(n.data[:lo], n.durable[:lo]) && bytes.Equal(n.data[hi:shorter], n.durable[hi:shorter])
}

// String draws the current tree, sorted, for test failures. Names that a
// crash would lose are marked [new name], names a crash would bring back
// [removed], and files whose bytes are not all durable [unsynced: ...]:
//
//	/
//	  wal/
//	    1 size=4096
//	    2 size=4096 [new name] [unsynced: durable size=0]
//	    old size=10 [removed]
func (fs *MemFS) String() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var b strings.Builder
	b.WriteString("/\n")
	writeDirLocked(&b, fs.mu.root, "  ")
	return b.String()
}

// REQUIRES: MemFS.mu held.
func writeDirLocked(b *strings.Builder, dir *inode, indent string) {
	names := slices.Sorted(maps.Keys(dir.entries))
	for name := range dir.durableEntries {
		if _, ok := dir.entries[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		current, durable := dir.entries[name], dir.durableEntries[name]
		if current != nil {
			note := ""
			if durable != current {
				note = " [new name]"
			}
			writeEntryLocked(b, name, current, note, indent)
		}
		if durable != nil && durable != current {
			writeEntryLocked(b, name, durable, " [removed]", indent)
		}
	}
}

// REQUIRES: MemFS.mu held.
func writeEntryLocked(b *strings.Builder, name string, n *inode, note, indent string) {
	if n.isDir {
		fmt.Fprintf(b, "%s%s/%s\n", indent, name, note)
		writeDirLocked(b, n, indent+"  ")
		return
	}
	fmt.Fprintf(b, "%s%s size=%d%s", indent, name, len(n.data), note)
	if !bytes.Equal(n.data, n.durable) {
		fmt.Fprintf(b, " [unsynced: durable size=%d]", len(n.durable))
	}
	b.WriteString("\n")
}

// resizeLocked sets the file's length, zero-filling any growth.
// REQUIRES: MemFS.mu held.
func (n *inode) resizeLocked(size int) {
	old := len(n.data)
	if size <= old {
		n.data = n.data[:size]
		return
	}
	n.data = slices.Grow(n.data, size-old)[:size]
	// Truncated bytes may linger in the capacity.
	clear(n.data[old:])
	n.markUnsyncedLocked(old, size)
}

// REQUIRES: MemFS.mu held.
func (n *inode) markUnsyncedLocked(lo, hi int) {
	switch {
	case lo >= hi:
	case n.unsyncedLo == n.unsyncedHi:
		n.unsyncedLo, n.unsyncedHi = lo, hi
	default:
		n.unsyncedLo, n.unsyncedHi = min(n.unsyncedLo, lo), max(n.unsyncedHi, hi)
	}
}

// REQUIRES: MemFS.mu held.
func (n *inode) writeAtLocked(p []byte, off int64) error {
	if off < 0 {
		return syscall.EINVAL
	}
	if off+int64(len(p)) > maxFileBytes {
		return syscall.EFBIG
	}
	if len(p) == 0 {
		// Writing nothing past the end does not extend the file.
		return nil
	}
	end := int(off) + len(p)
	if end > len(n.data) {
		n.resizeLocked(end)
	}
	copy(n.data[off:], p)
	n.markUnsyncedLocked(int(off), end)
	return nil
}

// readAtLocked copies the bytes at off into p and returns how many it
// copied.
// REQUIRES: MemFS.mu held.
func (n *inode) readAtLocked(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if off >= int64(len(n.data)) {
		return 0, nil
	}
	return copy(p, n.data[off:]), nil
}

// REQUIRES: MemFS.mu held.
func (n *inode) syncLocked() {
	if n.isDir {
		n.durableEntries = maps.Clone(n.entries)
		return
	}
	if len(n.durable) > len(n.data) {
		n.durable = n.durable[:len(n.data)]
	}
	if hi := min(n.unsyncedHi, len(n.durable)); n.unsyncedLo < hi {
		copy(n.durable[n.unsyncedLo:hi], n.data[n.unsyncedLo:hi])
	}
	n.durable = append(n.durable, n.data[len(n.durable):]...)
	n.unsyncedLo, n.unsyncedHi = 0, 0
}

// REQUIRES: MemFS.mu held.
func (n *inode) statLocked(name string) os.FileInfo {
	base := "/"
	if comps, _ := components(name); len(comps) > 0 {
		base = comps[len(comps)-1]
	}
	return memFileInfo{name: base, size: int64(len(n.data)), isDir: n.isDir}
}

type memFileInfo struct {
	name  string
	size  int64
	isDir bool
}

func (fi memFileInfo) Name() string       { return fi.name }
func (fi memFileInfo) Size() int64        { return fi.size }
func (fi memFileInfo) ModTime() time.Time { return time.Time{} }
func (fi memFileInfo) IsDir() bool        { return fi.isDir }
func (fi memFileInfo) Sys() any           { return nil }

func (fi memFileInfo) Mode() os.FileMode {
	if fi.isDir {
		return os.ModeDir | 0o755
	}
	return 0o644
}

// handleKind is what a handle was opened for.
type handleKind int

const (
	handleReadOnly  handleKind = iota // Open
	handleReadWrite                   // Create, OpenReadWrite
	handleDir                         // OpenDir: Sync, Stat and Close only
)

// memFile is a handle on a MemFS inode.
type memFile struct {
	fs   *MemFS
	n    *inode
	name string // as opened, for errors and Stat
	kind handleKind
	// generation is the MemFS generation the handle was opened in.
	generation uint64

	mu struct {
		sync.Mutex
		// offset is where Read and Write start.
		offset int64
		closed bool
	}
}

// REQUIRES: fs.mu held.
func (fs *MemFS) newHandleLocked(n *inode, name string, kind handleKind) *memFile {
	return &memFile{fs: fs, n: n, name: name, kind: kind, generation: fs.mu.generation}
}

// access is what an operation needs from a handle.
type access int

const (
	accessAny   access = iota // Sync, Stat
	accessRead                // a file's bytes
	accessWrite               // a file's bytes, opened for writing
)

// do runs fn with f.mu and the file system's lock held, once it has
// checked that the handle is open, not from before a crash, and opened for
// what op needs. Errors other than io.EOF come back as *os.PathError.
func (f *memFile) do(op string, need access, fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	var err error
	switch {
	case f.mu.closed:
		err = os.ErrClosed
	case f.generation != f.fs.mu.generation:
		err = ErrStaleHandle
	case need != accessAny && f.kind == handleDir:
		err = syscall.EISDIR
	case need == accessWrite && f.kind == handleReadOnly:
		err = syscall.EBADF
	default:
		err = fn()
	}
	if err == nil || err == io.EOF {
		return err
	}
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

func (f *memFile) Read(p []byte) (int, error) {
	var n int
	err := f.do("read", accessRead, func() error {
		var err error
		n, err = f.n.readAtLocked(p, f.mu.offset)
		f.mu.offset += int64(n)
		if err == nil && n == 0 && len(p) > 0 {
			err = io.EOF
		}
		return err
	})
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	var n int
	err := f.do("read", accessRead, func() error {
		var err error
		n, err = f.n.readAtLocked(p, off)
		if err == nil && n < len(p) {
			err = io.EOF
		}
		return err
	})
	return n, err
}

func (f *memFile) Write(p []byte) (int, error) {
	var n int
	err := f.do("write", accessWrite, func() error {
		if err := f.n.writeAtLocked(p, f.mu.offset); err != nil {
			return err
		}
		n = len(p)
		f.mu.offset += int64(n)
		return nil
	})
	return n, err
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	var n int
	err := f.do("write", accessWrite, func() error {
		if err := f.n.writeAtLocked(p, off); err != nil {
			return err
		}
		n = len(p)
		return nil
	})
	return n, err
}

func (f *memFile) Truncate(size int64) error {
	// accessRead, because ftruncate on a read-only descriptor fails with
	// EINVAL, not EBADF.
	return f.do("truncate", accessRead, func() error {
		switch {
		case f.kind == handleReadOnly || size < 0:
			return syscall.EINVAL
		case size > maxFileBytes:
			return syscall.EFBIG
		}
		f.n.resizeLocked(int(size))
		return nil
	})
}

func (f *memFile) Preallocate(size int64) error {
	return f.do("preallocate", accessWrite, func() error {
		switch {
		case size < 0:
			return syscall.EINVAL
		case size > maxFileBytes:
			return syscall.EFBIG
		case int(size) > len(f.n.data):
			f.n.resizeLocked(int(size))
		}
		return nil
	})
}

func (f *memFile) Sync() error {
	return f.do("sync", accessAny, func() error {
		f.n.syncLocked()
		return nil
	})
}

func (f *memFile) Stat() (os.FileInfo, error) {
	var fi os.FileInfo
	err := f.do("stat", accessAny, func() error {
		fi = f.n.statLocked(f.name)
		return nil
	})
	return fi, err
}

// Close closes the handle. A handle from before a crash is closed too, but
// reports ErrStaleHandle.
func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	f.mu.closed = true
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.generation != f.fs.mu.generation {
		return &os.PathError{Op: "close", Path: f.name, Err: ErrStaleHandle}
	}
	return nil
}

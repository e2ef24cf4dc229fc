package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cairn-db/cairn/internal/datadriven"
)

// TestParity runs testdata/parity.txt against the real file system (in a
// temporary directory) and MemFS side by side: every command must print
// the same on both, and what the script expects.
func TestParity(t *testing.T) {
	osScript := newScriptFS(OS(), t.TempDir())
	memScript := newScriptFS(NewMem(), "/")
	datadriven.RunTest(t, "testdata/parity.txt", func(t *testing.T, d *datadriven.TestData) string {
		osOut := osScript.run(t, d)
		memOut := memScript.run(t, d)
		if osOut != memOut {
			t.Errorf("%s: %s: the OS and MemFS disagree\nOS:\n%s\nMemFS:\n%s", d.Pos, d.Cmd, osOut, memOut)
		}
		return memOut
	})
}

// TestMemCrash runs testdata/crash.txt: what MemFS keeps across crashes.
func TestMemCrash(t *testing.T) {
	s := newScriptFS(NewMem(), "/")
	datadriven.RunTest(t, "testdata/crash.txt", s.run)
}

// scriptFS runs script commands against one FS. Paths in a script are
// relative to root; open handles are named by their path, or by as=name.
type scriptFS struct {
	fs      FS
	root    string
	handles map[string]File
}

func newScriptFS(fs FS, root string) *scriptFS {
	return &scriptFS{fs: fs, root: root, handles: map[string]File{}}
}

// run executes one command and describes its result.
//
//	mkdirall d | create f [as=h] | open f [as=h] | open-rw f [as=h] | open-dir d [as=h]
//	write h data=text | write-at h off=n data=text | read h n=n | read-at h off=n n=n
//	truncate h size=n | preallocate h size=n | sync h | close h | stat-handle h
//	stat p | list d | cat f | remove p | remove-all p | rename old new | sync-dir d
//	MemFS only: crash | crash-random seed=n | tree
func (s *scriptFS) run(t *testing.T, d *datadriven.TestData) string {
	var args []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			args = append(args, a.Key)
		}
	}
	arg := func(i int) string {
		if i >= len(args) {
			t.Fatalf("%s: %s wants %d arguments", d.Pos, d.Cmd, i+1)
		}
		return args[i]
	}
	p := func(i int) string { return filepath.Join(s.root, arg(i)) }
	handle := func() File {
		f := s.handles[arg(0)]
		if f == nil {
			t.Fatalf("%s: no handle %s", d.Pos, arg(0))
		}
		return f
	}
	num := func(key string) int64 { return int64(d.Uint(t, key, 0)) }
	data := []byte(d.Str(t, "data", ""))
	open := func(f File, err error) string {
		if err == nil {
			s.handles[d.Str(t, "as", arg(0))] = f
		}
		return s.result(t, err)
	}
	count := func(n int, err error) string {
		return strings.TrimSuffix(fmt.Sprintf("n=%d %s", n, s.result(t, err)), " ok")
	}
	read := func(buf []byte, n int, err error) string {
		return strings.TrimSuffix(fmt.Sprintf("n=%d %q %s", n, buf[:n], s.result(t, err)), " ok")
	}
	mem := func() *MemFS {
		m, ok := s.fs.(*MemFS)
		if !ok {
			t.Fatalf("%s: %s is for MemFS only", d.Pos, d.Cmd)
		}
		return m
	}

	switch d.Cmd {
	case "mkdirall":
		return s.result(t, s.fs.MkdirAll(p(0), 0o755))
	case "create":
		return open(s.fs.Create(p(0)))
	case "open":
		return open(s.fs.Open(p(0)))
	case "open-rw":
		return open(s.fs.OpenReadWrite(p(0)))
	case "open-dir":
		return open(s.fs.OpenDir(p(0)))
	case "write":
		return count(handle().Write(data))
	case "write-at":
		return count(handle().WriteAt(data, num("off")))
	case "read":
		buf := make([]byte, num("n"))
		n, err := handle().Read(buf)
		return read(buf, n, err)
	case "read-at":
		buf := make([]byte, num("n"))
		n, err := handle().ReadAt(buf, num("off"))
		return read(buf, n, err)
	case "truncate":
		return s.result(t, handle().Truncate(num("size")))
	case "preallocate":
		return s.result(t, handle().Preallocate(num("size")))
	case "sync":
		return s.result(t, handle().Sync())
	case "close":
		return s.result(t, handle().Close())
	case "stat-handle":
		fi, err := handle().Stat()
		return s.describe(t, fi, err)
	case "stat":
		fi, err := s.fs.Stat(p(0))
		return s.describe(t, fi, err)
	case "list":
		names, err := s.fs.List(p(0))
		if err != nil {
			return s.result(t, err)
		}
		return fmt.Sprint(names)
	case "cat":
		f, err := s.fs.Open(p(0))
		if err != nil {
			return s.result(t, err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return s.result(t, err)
		}
		return fmt.Sprintf("%q", b)
	case "remove":
		return s.result(t, s.fs.Remove(p(0)))
	case "remove-all":
		return s.result(t, s.fs.RemoveAll(p(0)))
	case "rename":
		return s.result(t, s.fs.Rename(p(0), p(1)))
	case "sync-dir":
		return s.result(t, SyncDir(s.fs, p(0)))
	case "crash":
		mem().Crash()
		return ""
	case "crash-random":
		mem().CrashRandom(rand.New(rand.NewPCG(d.Uint(t, "seed", 0), 0)))
		return ""
	case "tree":
		return mem().String()
	}
	t.Fatalf("%s: unknown command %s", d.Pos, d.Cmd)
	return ""
}

func (s *scriptFS) describe(t *testing.T, fi os.FileInfo, err error) string {
	switch {
	case err != nil:
		return s.result(t, err)
	case fi.IsDir() != fi.Mode().IsDir():
		t.Fatalf("%s: IsDir %v but mode %v", fi.Name(), fi.IsDir(), fi.Mode())
	case fi.IsDir():
		// A real directory's size depends on the file system.
		return "dir " + fi.Name()
	}
	return fmt.Sprintf("file %s size=%d", fi.Name(), fi.Size())
}

// result names err by what errors.Is says of it, which is what callers
// may rely on; it also checks that the error is wrapped as the os package
// wraps it.
func (s *scriptFS) result(t *testing.T, err error) string {
	if err == nil {
		return "ok"
	}
	if err == io.EOF {
		return "EOF"
	}
	var pathErr *os.PathError
	var linkErr *os.LinkError
	if !errors.As(err, &pathErr) && !errors.As(err, &linkErr) {
		t.Errorf("%v (%T) is neither an *os.PathError nor an *os.LinkError", err, err)
	}
	kinds := []struct {
		target error
		name   string
	}{
		// ENOTEMPTY first: errors.Is also counts it as os.ErrExist.
		{syscall.ENOTEMPTY, "not empty"},
		{os.ErrNotExist, "not exist"},
		{os.ErrExist, "exist"},
		{syscall.ENOTDIR, "not a directory"},
		{syscall.EISDIR, "is a directory"},
		{syscall.EBADF, "bad file descriptor"},
		{syscall.EINVAL, "invalid argument"},
		{os.ErrClosed, "closed"},
		{ErrStaleHandle, "stale handle"},
		{errDirRename, "directory rename"},
		{ErrInjected, "injected"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.target) {
			return "error: " + k.name
		}
	}
	return "unexpected error: " + strings.ReplaceAll(err.Error(), s.root, "")
}

// memCat returns a file's contents, failing the test if it cannot be read.
func memCat(t *testing.T, fs FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mustWriteFile creates name with data, syncs it and, with syncDir, its
// directory.
func mustWriteFile(t *testing.T, fs FS, name string, data []byte, syncDir bool) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if syncDir {
		if err := SyncDir(fs, filepath.Dir(name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMemStaleHandles: after a crash every operation on every kind of
// handle opened before it fails, and new handles work.
func TestMemStaleHandles(t *testing.T) {
	fs := NewMem()
	mustWriteFile(t, fs, "/f", []byte("hello"), true)
	rw, err := fs.OpenReadWrite("/f")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := fs.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := fs.OpenDir("/")
	if err != nil {
		t.Fatal(err)
	}
	fs.Crash()

	for name, f := range map[string]File{"read-write": rw, "read-only": ro, "dir": dir} {
		buf := make([]byte, 1)
		ops := map[string]error{}
		_, ops["Read"] = f.Read(buf)
		_, ops["ReadAt"] = f.ReadAt(buf, 0)
		_, ops["Write"] = f.Write(buf)
		_, ops["WriteAt"] = f.WriteAt(buf, 0)
		ops["Truncate"] = f.Truncate(0)
		ops["Preallocate"] = f.Preallocate(10)
		ops["Sync"] = f.Sync()
		_, ops["Stat"] = f.Stat()
		ops["Close"] = f.Close()
		for op, err := range ops {
			if !errors.Is(err, ErrStaleHandle) {
				t.Errorf("%s handle: %s after a crash: %v, want ErrStaleHandle", name, op, err)
			}
		}
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s handle: second Close: %v, want os.ErrClosed", name, err)
		}
	}
	if got := memCat(t, fs, "/f"); got != "hello" {
		t.Fatalf("after the crash /f reads %q", got)
	}
	if err := SyncDir(fs, "/"); err != nil {
		t.Fatal(err)
	}
}

// TestMemStricterThanOS covers what MemFS refuses although Linux allows
// it, and the names only MemFS can be asked about.
func TestMemStricterThanOS(t *testing.T) {
	fs := NewMem()
	if err := fs.MkdirAll("/d/e", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWriteFile(t, fs, "/d/f", nil, false)
	for _, tc := range []struct {
		what string
		err  error
		want error
	}{
		{"Open of a directory", second(fs.Open("/d")), syscall.EISDIR},
		{"OpenReadWrite of a directory", second(fs.OpenReadWrite("/d")), syscall.EISDIR},
		{"Create of the root", second(fs.Create("/")), syscall.EISDIR},
		{"OpenDir of a file", second(fs.OpenDir("/d/f")), syscall.ENOTDIR},
		{"Rename of a directory", fs.Rename("/d/e", "/e"), errDirRename},
		{"Remove of the root", fs.Remove("/"), syscall.EBUSY},
		{"RemoveAll of the root", fs.RemoveAll("/"), syscall.EBUSY},
		{"Stat of an empty name", second(fs.Stat("")), os.ErrNotExist},
		{"Create under a file", second(fs.Create("/d/f/g")), syscall.ENOTDIR},
		{"RemoveAll under a file", fs.RemoveAll("/d/f/g"), syscall.ENOTDIR},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, tc.err, tc.want)
		}
	}
	if names, _ := fs.List("/d"); !slices.Equal(names, []string{"e", "f"}) {
		t.Fatalf("a refused operation changed /d: %v", names)
	}
	fi, err := fs.Stat("/")
	if err != nil || !fi.IsDir() || fi.Name() != "/" {
		t.Fatalf("Stat(/) = %v, %v", fi, err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestMemPaths: names are cleaned, and relative names resolve against the
// root.
func TestMemPaths(t *testing.T) {
	fs := NewMem()
	if err := fs.MkdirAll("a/b/", 0o755); err != nil {
		t.Fatal(err)
	}
	mustWriteFile(t, fs, "a/./b/../b/f", []byte("x"), false)
	for _, name := range []string{"/a/b/f", "a/b/f", "/a//b/f", "/../a/b/f", "a/b/c/../f"} {
		if got := memCat(t, fs, name); got != "x" {
			t.Errorf("%s reads %q", name, got)
		}
	}
	if err := fs.Rename("a/b/f", "/a/g"); err != nil {
		t.Fatal(err)
	}
	if names, err := fs.List("a"); err != nil || !slices.Equal(names, []string{"b", "g"}) {
		t.Fatalf("List(a) = %v, %v", names, err)
	}
}

// TestMemCrashRestoresDurableBytes: Crash restores exactly the durable
// bytes of a file several sectors long that was overwritten in the middle,
// shrunk and grown again.
func TestMemCrashRestoresDurableBytes(t *testing.T) {
	fs := NewMem()
	durable := bytes.Repeat([]byte("0123456789"), 300) // 3000 bytes, 6 sectors minus a bit
	mustWriteFile(t, fs, "/f", durable, true)
	f, err := fs.OpenReadWrite("/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), 1000); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2000); err != nil {
		t.Fatal(err)
	}
	if err := f.Preallocate(5000); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	if got := memCat(t, fs, "/f"); got != string(durable) {
		t.Fatalf("after the crash /f has %d bytes, differing from the durable %d", len(got), len(durable))
	}
}

// memModel is the obvious, slow model of one MemFS file: whole copies.
type memModel struct {
	data, durable []byte
}

// TestMemFileAgainstModel drives one MemFS file through random writes,
// truncations, preallocations, syncs and crashes, and checks it against
// memModel after every step. It covers the unsynced-range bookkeeping that
// lets Sync copy only what changed.
func TestMemFileAgainstModel(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		fs := NewMem()
		mustWriteFile(t, fs, "/f", nil, true)
		f, err := fs.OpenReadWrite("/f")
		if err != nil {
			t.Fatal(err)
		}
		var m memModel
		var trace []string
		for step := range 60 {
			switch op := rng.IntN(10); {
			case op < 4:
				off := rng.IntN(3 * sectorBytes)
				p := bytes.Repeat([]byte{byte('a' + step%26)}, 1+rng.IntN(sectorBytes))
				trace = append(trace, fmt.Sprintf("write-at off=%d len=%d", off, len(p)))
				if _, err := f.WriteAt(p, int64(off)); err != nil {
					t.Fatal(err)
				}
				if end := off + len(p); end > len(m.data) {
					m.data = append(m.data, make([]byte, end-len(m.data))...)
				}
				copy(m.data[off:], p)
			case op < 5:
				size := rng.IntN(3 * sectorBytes)
				trace = append(trace, fmt.Sprintf("truncate %d", size))
				if err := f.Truncate(int64(size)); err != nil {
					t.Fatal(err)
				}
				if size < len(m.data) {
					m.data = m.data[:size:size]
				} else {
					m.data = append(m.data, make([]byte, size-len(m.data))...)
				}
			case op < 6:
				size := rng.IntN(4 * sectorBytes)
				trace = append(trace, fmt.Sprintf("preallocate %d", size))
				if err := f.Preallocate(int64(size)); err != nil {
					t.Fatal(err)
				}
				if size > len(m.data) {
					m.data = append(m.data, make([]byte, size-len(m.data))...)
				}
			case op < 9:
				trace = append(trace, "sync")
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				m.durable = slices.Clone(m.data)
			default:
				trace = append(trace, "crash")
				fs.Crash()
				if f, err = fs.OpenReadWrite("/f"); err != nil {
					t.Fatal(err)
				}
				m.data = slices.Clone(m.durable)
			}
			if got := memCat(t, fs, "/f"); got != string(m.data) {
				t.Fatalf("seed %d: after %s\nthe file has %d bytes, the model %d, or they differ", seed, strings.Join(trace, "\n"), len(got), len(m.data))
			}
		}
	}
}

// versions is a file's durable and current contents before a crash.
type versions struct{ durable, current []byte }

// crashRandomScenario builds the same small tree with unsynced state of
// every kind on a new MemFS: a durable file overwritten in places and
// grown (/d/wal), one overwritten and shrunk (/d/shrunk), a new file, a
// rename, a removal and a new directory. It returns the two files'
// versions.
func crashRandomScenario(t *testing.T) (*MemFS, map[string]versions) {
	fs := NewMem()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(fs, "/"); err != nil {
		t.Fatal(err)
	}
	files := map[string]versions{}
	// writeAt writes size bytes of c at off in name, keeping files[name]
	// up to date.
	writeAt := func(f File, name string, off, size int, c byte) {
		p := bytes.Repeat([]byte{c}, size)
		if _, err := f.WriteAt(p, int64(off)); err != nil {
			t.Fatal(err)
		}
		v := files[name]
		v.current = append(v.current, make([]byte, max(0, off+size-len(v.current)))...)
		copy(v.current[off:], p)
		files[name] = v
	}
	for name, size := range map[string]int{"/d/wal": 4*sectorBytes + 100, "/d/shrunk": 3 * sectorBytes} {
		durable := bytes.Repeat([]byte{'d'}, size)
		mustWriteFile(t, fs, name, durable, true)
		files[name] = versions{durable: durable, current: slices.Clone(durable)}
	}
	mustWriteFile(t, fs, "/d/old", []byte("old"), true)
	mustWriteFile(t, fs, "/d/gone", []byte("gone"), true)

	// /d/wal: sectors 0, 2, 4 and 5 are written, 6 is preallocated.
	wal, err := fs.OpenReadWrite("/d/wal")
	if err != nil {
		t.Fatal(err)
	}
	writeAt(wal, "/d/wal", 10, 300, 'c')
	writeAt(wal, "/d/wal", 2*sectorBytes+7, 300, 'c')
	writeAt(wal, "/d/wal", 4*sectorBytes+50, 600, 'c')
	if err := wal.Preallocate(7 * sectorBytes); err != nil {
		t.Fatal(err)
	}
	v := files["/d/wal"]
	v.current = append(v.current, make([]byte, 7*sectorBytes-len(v.current))...)
	files["/d/wal"] = v

	// /d/shrunk: sector 0 is written, then the file is cut in sector 1.
	shrunk, err := fs.OpenReadWrite("/d/shrunk")
	if err != nil {
		t.Fatal(err)
	}
	writeAt(shrunk, "/d/shrunk", 0, 10, 'c')
	if err := shrunk.Truncate(sectorBytes + 100); err != nil {
		t.Fatal(err)
	}
	v = files["/d/shrunk"]
	v.current = v.current[:sectorBytes+100]
	files["/d/shrunk"] = v

	mustWriteFile(t, fs, "/d/new", []byte("new"), false)
	if err := fs.Rename("/d/old", "/d/renamed"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("/d/gone"); err != nil {
		t.Fatal(err)
	}
	if err := fs.MkdirAll("/e", 0o755); err != nil {
		t.Fatal(err)
	}
	return fs, files
}

// TestCrashRandomDeterministic: the same seed and the same operations give
// the same outcome, and different seeds give different ones.
func TestCrashRandomDeterministic(t *testing.T) {
	outcome := func(seed uint64) string {
		fs, _ := crashRandomScenario(t)
		fs.CrashRandom(rand.New(rand.NewPCG(seed, 0)))
		return fmt.Sprintf("%s%q%q", fs, memCat(t, fs, "/d/wal"), memCat(t, fs, "/d/shrunk"))
	}
	seen := map[string]bool{}
	for seed := range uint64(20) {
		first := outcome(seed)
		if again := outcome(seed); again != first {
			t.Fatalf("seed %d gave two outcomes:\n%s\n%s", seed, first, again)
		}
		seen[first] = true
	}
	if len(seen) < 10 {
		t.Fatalf("20 seeds gave only %d outcomes", len(seen))
	}
}

// TestCrashRandomSectors: CrashRandom leaves each sector of a file holding
// either its durable or its current bytes (a version shorter than the
// sector reading as zeros past its end), the length being one of the two;
// a directory keeps all its durable or all its current entries; and over
// many seeds each choice is made both ways.
func TestCrashRandomSectors(t *testing.T) {
	// pad returns b cut or zero-extended to size.
	pad := func(b []byte, size int) []byte {
		out := make([]byte, size)
		copy(out, b)
		return out
	}
	type outcome struct{ durable, current bool }
	type sector struct {
		file  string
		index int
	}
	sectors := map[sector]*outcome{}
	lengths := map[string]*outcome{"/d/wal": {}, "/d/shrunk": {}}
	var names outcome
	const seeds = 200
	for seed := range uint64(seeds) {
		fs, files := crashRandomScenario(t)
		fs.CrashRandom(rand.New(rand.NewPCG(seed, 0)))
		for name, v := range files {
			got := []byte(memCat(t, fs, name))
			switch len(got) {
			case len(v.durable):
				lengths[name].durable = true
			case len(v.current):
				lengths[name].current = true
			default:
				t.Fatalf("seed %d: %s has length %d, want %d or %d", seed, name, len(got), len(v.durable), len(v.current))
			}
			d, c := pad(v.durable, len(got)), pad(v.current, len(got))
			for lo := 0; lo < len(got); lo += sectorBytes {
				hi := min(lo+sectorBytes, len(got))
				isDurable, isCurrent := bytes.Equal(got[lo:hi], d[lo:hi]), bytes.Equal(got[lo:hi], c[lo:hi])
				if !isDurable && !isCurrent {
					t.Fatalf("seed %d: %s sector %d is neither durable nor current:\n%q", seed, name, lo/sectorBytes, got[lo:hi])
				}
				if isDurable && isCurrent {
					continue
				}
				o := sectors[sector{name, lo / sectorBytes}]
				if o == nil {
					o = &outcome{}
					sectors[sector{name, lo / sectorBytes}] = o
				}
				o.durable = o.durable || isDurable
				o.current = o.current || isCurrent
			}
		}

		list, err := fs.List("/d")
		if err != nil {
			t.Fatal(err)
		}
		switch fmt.Sprint(list) {
		case "[gone old shrunk wal]":
			names.durable = true
		case "[new renamed shrunk wal]":
			names.current = true
		default:
			t.Fatalf("seed %d: /d holds %v", seed, list)
		}
		if strings.Contains(fs.String(), "[") {
			t.Fatalf("seed %d: not everything is durable after the crash:\n%s", seed, fs)
		}
	}
	for name, o := range lengths {
		if !o.durable || !o.current {
			t.Errorf("over %d seeds %s's length was always one way: %+v", seeds, name, *o)
		}
	}
	if !names.durable || !names.current {
		t.Errorf("over %d seeds /d's entries were always one way: %+v", seeds, names)
	}
	// In /d/wal sectors 1 and 3 were not written, and 6 holds only
	// preallocated zeros, which is what a missing sector reads as. In
	// /d/shrunk sector 1 is cut short and sector 2 cut off.
	differ := []sector{{"/d/wal", 0}, {"/d/wal", 2}, {"/d/wal", 4}, {"/d/wal", 5}, {"/d/shrunk", 0}, {"/d/shrunk", 1}, {"/d/shrunk", 2}}
	for _, s := range differ {
		if o := sectors[s]; o == nil || !o.durable || !o.current {
			t.Errorf("over %d seeds %s sector %d was always one way: %+v", seeds, s.file, s.index, o)
		}
	}
	for s, o := range sectors {
		if !slices.Contains(differ, s) {
			t.Errorf("%s sector %d, equal in both versions, differed: %+v", s.file, s.index, *o)
		}
	}
}

// TestMemConcurrent uses one MemFS from several goroutines (run it with
// -race): each writes and syncs its own file while others list and stat.
func TestMemConcurrent(t *testing.T) {
	fs := NewMem()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("/f%d", i)
			f, err := fs.Create(name)
			if err != nil {
				errs <- err
				return
			}
			for range 100 {
				if _, err := f.Write([]byte("0123456789")); err != nil {
					errs <- err
					return
				}
				if err := f.Sync(); err != nil {
					errs <- err
					return
				}
				if _, err := fs.List("/"); err != nil {
					errs <- err
					return
				}
			}
			if err := f.Close(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 4 {
		fi, err := fs.Stat(fmt.Sprintf("/f%d", i))
		if err != nil || fi.Size() != 1000 {
			t.Fatalf("f%d: %v, %v", i, fi, err)
		}
	}
}

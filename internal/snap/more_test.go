package snap

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/vfs"
)

func all(raftpb.SnapshotMetadata) bool { return true }

// corruptImage saves image at index and flips a byte of it on disk.
func corruptImage(t *testing.T, s *Snapshotter, index uint64, image []byte, at int64) {
	t.Helper()
	if _, err := s.SaveDB(index, bytes.NewReader(image), nil); err != nil {
		t.Fatal(err)
	}
	f, err := s.fs.OpenReadWrite(s.dbPath(index))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{image[at] ^ 1}, at); err != nil {
		t.Fatal(err)
	}
}

// A reader that stops at the image's size (a length-framed body) still
// learns of damage: it comes with the last byte, and again from Close.
func TestImageCheckedWithItsLastByte(t *testing.T) {
	s := mustNew(t, vfs.OS(), t.TempDir(), nil)
	image := bytes.Repeat([]byte("image bytes "), 10000)
	corruptImage(t, s, 1, image, 5000)
	r, info, err := s.OpenDB(1)
	if err != nil {
		t.Fatal(err)
	}
	// The Read that returns the last byte returns the error.
	buf, read := make([]byte, 4096), int64(0)
	for read < info.Size {
		n, err := r.Read(buf[:min(int64(len(buf)), info.Size-read)])
		read += int64(n)
		if read == info.Size && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("the read of the last byte: got %v, want ErrCorrupt", err)
		}
		if read < info.Size && err != nil {
			t.Fatalf("read at %d: %v", read, err)
		}
	}
	r.Close()
	// io.CopyN drops an error that comes with the last byte; Close
	// reports it again.
	r, _, _ = s.OpenDB(1)
	if _, err := io.CopyN(io.Discard, r, info.Size); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Close after io.CopyN: got %v, want ErrCorrupt", err)
	}
}

// An image sent from one member to another is checked end to end: the
// receiver saves it only if it got exactly what the sender's file holds.
func TestTransferIsCheckedEndToEnd(t *testing.T) {
	image := bytes.Repeat([]byte("image bytes "), 10000)
	leader := mustNew(t, vfs.OS(), t.TempDir(), nil)
	if _, err := leader.SaveDB(9, bytes.NewReader(image), nil); err != nil {
		t.Fatal(err)
	}
	send := func(limit int64) (io.Reader, *ImageInfo) {
		r, info, err := leader.OpenDB(9)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return io.LimitReader(r, limit), &info
	}

	followerDir := t.TempDir()
	follower := mustNew(t, vfs.OS(), followerDir, nil)
	// The stream ends early, but cleanly.
	r, info := send(int64(len(image) / 2))
	if _, err := follower.SaveDB(9, r, info); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("half an image: got %v, want ErrCorrupt", err)
	}
	if names, _ := vfs.OS().List(followerDir); len(names) != 0 {
		t.Fatalf("a refused image left %v", names)
	}
	// Whole.
	r, info = send(int64(len(image)))
	if got, err := follower.SaveDB(9, r, info); err != nil || got != *info {
		t.Fatalf("SaveDB = %+v, %v; want %+v", got, err, *info)
	}
	// The sender's own copy rotted: the receiver refuses it (and the
	// sender's reader reports it too).
	corruptImage(t, leader, 9, image, 5000)
	r, info = send(int64(len(image)))
	if _, err := follower.SaveDB(10, r, info); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a rotten image: got %v, want ErrCorrupt", err)
	}
}

// Two transfers of one index at once (a retry overlapping the first) each
// write their own temporary file: the image kept is one of them, whole.
func TestConcurrentSaveDBOfOneIndex(t *testing.T) {
	mem := vfs.NewMem()
	s := mustNew(t, mem, "/snap", nil)
	imgA, imgB := bytes.Repeat([]byte{'a'}, 3<<20), bytes.Repeat([]byte{'b'}, 1<<20)
	gate, resume := make(chan struct{}), make(chan struct{})
	ra := io.MultiReader(bytes.NewReader(imgA[:2<<20]),
		readerFunc(func([]byte) (int, error) { close(gate); <-resume; return 0, io.EOF }),
		bytes.NewReader(imgA[2<<20:]))
	var wg sync.WaitGroup
	var errA error
	wg.Add(1)
	go func() { defer wg.Done(); _, errA = s.SaveDB(5, ra, nil) }()
	<-gate
	_, errB := s.SaveDB(5, bytes.NewReader(imgB), nil)
	close(resume)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("SaveDB: %v, %v", errA, errB)
	}
	r, _, err := s.OpenDB(5)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !(bytes.Equal(got, imgA) || bytes.Equal(got, imgB)) {
		t.Fatalf("image of %d bytes, %v", len(got), err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// Purge counts only snapshots the WAL recorded: one saved just before a
// crash, never recorded, does not take the place of one that was. And it
// removes images and set-aside files older than what it keeps, whether or
// not a snapshot file names them.
func TestPurgeCountsOnlyAvailable(t *testing.T) {
	mem := vfs.NewMem()
	s := mustNew(t, mem, "/snap", nil)
	recorded := map[uint64]bool{}
	save := func(i uint64, rec bool) {
		if _, err := s.SaveDB(i, bytes.NewReader([]byte("image")), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(snapshot(1, i)); err != nil {
			t.Fatal(err)
		}
		recorded[i] = rec
	}
	available := func(m raftpb.SnapshotMetadata) bool { return recorded[m.Index] }
	for _, i := range []uint64{1, 2, 3} { // images of installs never completed
		if _, err := s.SaveDB(i, bytes.NewReader([]byte("GBs")), nil); err != nil {
			t.Fatal(err)
		}
	}
	save(10, true)
	save(20, true)
	save(30, false) // the crash came before the WAL record
	if err := s.Save(snapshot(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := mem.Rename("/snap/"+snapName(1, 5), "/snap/"+snapName(1, 5)+brokenSuffix); err != nil {
		t.Fatal(err)
	}
	save(40, true)
	if _, err := s.Purge(2, available); err != nil {
		t.Fatal(err)
	}
	names, _ := mem.List("/snap")
	want := []string{snapName(1, 20), snapName(1, 30), snapName(1, 40), dbName(20), dbName(30), dbName(40)}
	if !slices.Equal(names, want) {
		t.Fatalf("after Purge: %v, want %v", names, want)
	}
	// The newest is damaged: the other one kept is there to fall back to.
	f, _ := mem.OpenReadWrite("/snap/" + snapName(1, 40))
	f.WriteAt([]byte{0xff}, 25)
	f.Close()
	got, err := s.LoadNewestAvailable(available)
	if err != nil || got.Metadata.Index != 20 {
		t.Fatalf("LoadNewestAvailable = %d, %v; want 20", got.Metadata.Index, err)
	}
}

// failOpenFS fails every Open of a .snap file, as a transient I/O error.
type failOpenFS struct{ vfs.FS }

func (f failOpenFS) Open(name string) (vfs.File, error) {
	if strings.HasSuffix(name, snapSuffix) {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EIO}
	}
	return f.FS.Open(name)
}

// Only damage sets a snapshot aside: an I/O error, or a file from a newer
// version, is reported and the file left alone.
func TestOnlyDamageIsSetAside(t *testing.T) {
	dir := t.TempDir()
	s := mustNew(t, vfs.OS(), dir, nil)
	if err := s.Save(snapshot(1, 10)); err != nil {
		t.Fatal(err)
	}
	failing := mustNew(t, failOpenFS{vfs.OS()}, dir, nil)
	if _, err := failing.Load(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Load with a failing disk: got %v, want EIO", err)
	}

	path := filepath.Join(dir, snapName(1, 10))
	data, _ := os.ReadFile(path)
	data[7] = 2 // a format version from the future
	os.WriteFile(path, data, 0o600)
	if _, err := s.Load(); !errors.Is(err, ErrVersion) {
		t.Fatalf("Load of a newer format: got %v, want ErrVersion", err)
	}
	if names, _ := vfs.OS().List(dir); !slices.Equal(names, []string{snapName(1, 10)}) {
		t.Fatalf("files: %v", names)
	}
}

// crashFS loses power at its nth create, write, sync, rename or remove:
// the operation fails and the MemFS under it crashes (keeping a random
// part of what was not durable), and every later operation fails.
type crashFS struct {
	vfs.FS
	mem  *vfs.MemFS
	rng  *rand.Rand
	n    int
	dead bool
}

func (c *crashFS) step() error {
	if c.dead {
		return errors.New("dead")
	}
	if c.n--; c.n == 0 {
		c.mem.CrashRandom(c.rng)
		c.dead = true
		return errors.New("power loss")
	}
	return nil
}

func (c *crashFS) Create(n string) (vfs.File, error) {
	if err := c.step(); err != nil {
		return nil, err
	}
	f, err := c.FS.Create(n)
	if err != nil {
		return nil, err
	}
	return &crashFile{f, c}, nil
}

func (c *crashFS) OpenDir(n string) (vfs.File, error) {
	f, err := c.FS.OpenDir(n)
	if err != nil {
		return nil, err
	}
	return &crashFile{f, c}, nil
}

func (c *crashFS) Rename(a, b string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.FS.Rename(a, b)
}

func (c *crashFS) Remove(a string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.FS.Remove(a)
}

type crashFile struct {
	vfs.File
	c *crashFS
}

func (f *crashFile) Write(p []byte) (int, error) {
	if err := f.c.step(); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *crashFile) Sync() error {
	if err := f.c.step(); err != nil {
		return err
	}
	return f.File.Sync()
}

// A power loss at every operation in turn of a sequence of image saves,
// snapshot saves and purges: afterwards nothing damaged sits under a final
// name, New clears what was half written, the newest snapshot whose Save
// returned loads, and its image reads back whole.
func TestPowerLossAtEveryStep(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for n := 1; ; n++ {
			mem := vfs.NewMem()
			c := &crashFS{FS: mem, mem: mem, rng: rand.New(rand.NewPCG(seed, uint64(n))), n: n}
			var done uint64
			if s, err := New(c, "/snap", nil, nil); err == nil {
				for i := uint64(1); i <= 4; i++ {
					if _, err = s.SaveDB(i*10, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 3000)), nil); err != nil {
						break
					}
					if err = s.Save(snapshot(1, i*10)); err != nil {
						break
					}
					done = i * 10
					if _, err = s.Purge(2, all); err != nil {
						break
					}
				}
			}
			if !c.dead {
				break // n is past the last operation
			}
			s, err := New(mem, "/snap", nil, nil)
			if err != nil {
				t.Fatalf("seed %d n %d: New: %v", seed, n, err)
			}
			got, err := s.Load()
			if names, _ := mem.List("/snap"); slices.ContainsFunc(names, func(x string) bool { return strings.HasSuffix(x, brokenSuffix) }) {
				t.Fatalf("seed %d n %d: a damaged file under a final name: %v", seed, n, names)
			} else if slices.ContainsFunc(names, func(x string) bool { return strings.HasSuffix(x, tmpSuffix) }) {
				t.Fatalf("seed %d n %d: New left temporary files: %v", seed, n, names)
			}
			if done > 0 && (err != nil || got.Metadata.Index < done) {
				t.Fatalf("seed %d n %d: saved %d, Load = %d, %v", seed, n, done, got.Metadata.Index, err)
			}
			if err == nil {
				r, _, err := s.OpenDB(got.Metadata.Index)
				if err == nil {
					_, err = io.ReadAll(r)
					r.Close()
				}
				if err != nil {
					t.Fatalf("seed %d n %d: image: %v", seed, n, err)
				}
			}
		}
	}
}

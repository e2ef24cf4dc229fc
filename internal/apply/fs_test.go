package apply

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// The tests here run appliers on pebble's crashable in-memory file system,
// as the member simulator does. A power loss is
//
//	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // what the disk kept
//	a.Close()                                      // on the discarded fs
//	a, err = Open(dir, backend.Options{FS: crashed}, ...)
//
// (see the backend package doc, Crashing).

func openOn(t *testing.T, fs vfs.FS, dir string) *Applier {
	t.Helper()
	a, err := Open(dir, backend.Options{FS: fs, CacheBytes: 1 << 20}, 1, Metrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustClose(t *testing.T, a *Applier) {
	t.Helper()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// putAt is the put the entry at index i applies: keys k0..k6 in turn,
// each overwritten every 7 entries.
func putAt(i uint64) (key, value string) {
	return fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d", i)
}

// wantState is dumpState's output for an applier that applied the
// entries 1..index, each putAt's put (revision 1 is the empty store).
func wantState(index uint64) string {
	return wantStateSkipping(index, func(uint64) bool { return false })
}

// wantStateSkipping is wantState where the entries that skip says are
// empty (writing no revision) instead of puts.
func wantStateSkipping(index uint64, skip func(uint64) bool) string {
	latest := map[string]string{}
	rev := uint64(1)
	for i := uint64(1); i <= index; i++ {
		if skip(i) {
			continue
		}
		rev++
		k, v := putAt(i)
		latest[k] = fmt.Sprintf("%s=%s@%d", k, v, rev)
	}
	var kvs []string
	for _, kv := range latest {
		kvs = append(kvs, kv)
	}
	slices.Sort(kvs)
	return fmt.Sprintf("index %d rev %d [%s]", index, rev, strings.Join(kvs, " "))
}

// dumpState is the applier's consistent index, store revision and live
// keys, as "index 9 rev 10 [k0=v7@8 k1=v8@9 ...]".
func dumpState(t *testing.T, a *Applier) string {
	t.Helper()
	var out string
	err := a.View(func(s *mvcc.Store) error {
		res, err := s.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{})
		var kvs []string
		for _, kv := range res.KVs {
			kvs = append(kvs, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision))
		}
		out = fmt.Sprintf("index %d rev %d [%s]", a.ConsistentIndex(), s.Rev(), strings.Join(kvs, " "))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listDir is the sorted names in dir.
func listDir(t *testing.T, fs vfs.FS, dir string) string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// TestPowerLoss cuts the power of a member applying entries (one by one,
// and in runs committed as one group; every fifth entry empty, whose
// backend record overwrites the one before it at the same revision, and
// every thirteenth a compaction, whose removal deletes the records below
// it too) and syncing now and then, five times over: after each crash the
// consistent index is at least the last one synced and at most the last
// one applied, and the store (keys, values, revisions) is exactly that of
// the entries up to it.
// The crashes keep none, some or all of what was written but not synced;
// each case is one seed, and fails the same way every run.
func TestPowerLoss(t *testing.T) {
	for _, unsyncedPercent := range []int{0, 30, 100} {
		t.Run(fmt.Sprintf("unsynced-kept-%d%%", unsyncedPercent), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(unsyncedPercent)))
			compaction := func(i uint64) bool { return i%13 == 0 }
			empty := func(i uint64) bool { return i%5 == 0 || compaction(i) } // no revision
			entryAt := func(i uint64) raftpb.Entry {
				switch {
				case compaction(i):
					// Two revisions below the store's (refused if
					// not above the last compaction).
					rev := int64(1)
					for j := uint64(1); j < i; j++ {
						if !empty(j) {
							rev++
						}
					}
					e := normalEntry(t, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev - 2}})
					e.Index = i
					return e
				case empty(i):
					return raftpb.Entry{Term: 1, Index: i, Type: raftpb.EntryNormal}
				}
				k, v := putAt(i)
				return putEntry(t, i, k, v)
			}
			// A removal runs in the background: each is waited for,
			// so that what a crash keeps depends on the seed alone.
			waitRemoval := func(r Result) {
				if r.Compacted != nil {
					<-r.Compacted
				}
			}
			fs := vfs.NewCrashableMem()
			const dir = "/member/db"
			a := openOn(t, fs, dir)
			var synced, applied uint64
			for round := range 5 {
				for i, end := applied+1, applied+20+rng.Uint64N(80); i <= end; i++ {
					if rng.IntN(2) == 0 {
						r, _, err := a.Apply(entryAt(i))
						if err != nil {
							t.Fatal(err)
						}
						waitRemoval(r)
					} else {
						// A run of entries, committed as one group.
						var run []raftpb.Entry
						for ; len(run) == 0 || i < end && rng.IntN(8) != 0; i++ {
							run = append(run, entryAt(i))
						}
						i--
						results, err := a.ApplyEntries(run, nil)
						if err != nil {
							t.Fatal(err)
						}
						for _, r := range results {
							waitRemoval(r.Result)
						}
					}
					applied = i
					if rng.IntN(10) == 0 {
						if err := a.Sync(); err != nil {
							t.Fatal(err)
						}
						synced = i
					}
				}
				fs = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent, RNG: rng})
				mustClose(t, a)
				a = openOn(t, fs, dir)
				index := a.ConsistentIndex()
				if index < synced || index > applied {
					t.Fatalf("round %d: consistent index %d after a crash, but %d was synced and %d applied",
						round, index, synced, applied)
				}
				if got, want := dumpState(t, a), wantStateSkipping(index, empty); got != want {
					t.Fatalf("round %d: after the crash\n got %s\nwant %s", round, got, want)
				}
				t.Logf("round %d: synced %d, applied %d, recovered %d", round, synced, applied, index)
				// The WAL replays the entries the crash lost; here the next
				// round applies those indexes again.
				synced, applied = index, index
			}
			mustClose(t, a)
		})
	}
}

// An image travels between two members each on its own in-memory disk:
// Checkpoint, WriteTo (the same bytes every time), Restore. The restored
// member holds exactly the sender's state, nothing is left beside either
// database, and the swap survives a power loss at its end, as Restore
// reopens the backend (Restore synced the image and the renames).
func TestImageRoundTripInMemory(t *testing.T) {
	const dir = "/member/db"
	senderFS, receiverFS := vfs.NewCrashableMem(), &crashOnOpenFS{MemFS: vfs.NewCrashableMem(), dir: dir}
	sender, receiver := openOn(t, senderFS, dir), openOn(t, receiverFS, dir)
	defer mustClose(t, sender)
	for i := uint64(1); i <= 50; i++ {
		k, v := putAt(i)
		applyPut(t, sender, i, k, v)
		if i <= 3 {
			applyPut(t, receiver, i, k, v)
		}
	}

	cp, err := sender.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Metadata.Index != 50 || cp.Metadata.Term != 1 {
		t.Fatalf("checkpoint metadata %+v, want index 50 term 1", cp.Metadata)
	}
	var image, again bytes.Buffer
	if _, err := cp.WriteTo(&image); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(image.Bytes(), again.Bytes()) {
		t.Fatal("two images of one checkpoint differ")
	}
	if got := listDir(t, senderFS, "/member"); got != "db db.checkpoint1" {
		t.Fatalf("beside the sender's database: %s", got)
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, senderFS, "/member"); got != "db" {
		t.Fatalf("beside the sender's database after Close: %s", got)
	}

	receiverFS.arm()
	if err := receiver.Restore(&image); err != nil {
		t.Fatal(err)
	}
	want := wantState(50)
	if got := dumpState(t, receiver); got != want {
		t.Fatalf("after Restore\n got %s\nwant %s", got, want)
	}
	if got := listDir(t, receiverFS, "/member"); got != "db" {
		t.Fatalf("beside the receiver's database: %s", got)
	}

	// The replaced database's removal need not be durable: the next
	// Open removes it again.
	crashed := receiverFS.crash(t)
	mustClose(t, receiver)
	receiver = openOn(t, crashed, dir)
	defer mustClose(t, receiver)
	if got := dumpState(t, receiver); got != want {
		t.Fatalf("after Restore and a power loss\n got %s\nwant %s", got, want)
	}
	if got := listDir(t, crashed, "/member"); got != "db" {
		t.Fatalf("beside the receiver's database after a power loss: %s", got)
	}
	// The restored member applies on from the image.
	k, v := putAt(51)
	applyPut(t, receiver, 51, k, v)
	if got, want := dumpState(t, receiver), wantState(51); got != want {
		t.Fatalf("after applying on\n got %s\nwant %s", got, want)
	}
}

// Open finishes or undoes an image swap a crash interrupted, whatever
// state it left beside the database, and durably: a power loss as Open
// opens the backend finds the database where Open put it (removals of
// leftovers need not be durable: the next Open removes them again).
func TestOpenRecoversAnInterruptedSwap(t *testing.T) {
	for _, tc := range []struct {
		name string
		// crash leaves the state a crash in Restore could leave.
		crash func(fs vfs.FS) error
	}{{
		// Between the two renames: db.old, an unpacked db.restore.
		name: "db moved to db.old",
		crash: func(fs vfs.FS) error {
			return firstErr(fs.Rename("/member/db", "/member/db.old"), fs.MkdirAll("/member/db.restore", 0o700))
		},
	}, {
		// After the swap, before db.old was removed.
		name: "db.old beside db",
		crash: func(fs vfs.FS) error {
			return firstErr(fs.MkdirAll("/member/db.old", 0o700), writeFile(fs, "/member/db.old/000001.sst"))
		},
	}, {
		// While unpacking, and while two checkpoints were being sent.
		name: "leftovers",
		crash: func(fs vfs.FS) error {
			return firstErr(fs.MkdirAll("/member/db.restore", 0o700), writeFile(fs, "/member/db.restore/MANIFEST"),
				fs.MkdirAll("/member/db.checkpoint1/db", 0o700), fs.MkdirAll("/member/db.checkpoint12", 0o700))
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			const dir = "/member/db"
			fs := &crashOnOpenFS{MemFS: vfs.NewCrashableMem(), dir: dir}
			a := openOn(t, fs, dir)
			for i := uint64(1); i <= 3; i++ {
				k, v := putAt(i)
				applyPut(t, a, i, k, v)
			}
			mustClose(t, a)
			if err := firstErr(tc.crash(fs), syncDir(fs, "/member")); err != nil {
				t.Fatal(err)
			}

			fs.arm()
			a = openOn(t, fs, dir)
			if got := listDir(t, fs, "/member"); got != "db" {
				t.Fatalf("beside the database after Open: %s", got)
			}
			crashed := fs.crash(t)
			mustClose(t, a)
			if names, err := crashed.List("/member"); err != nil || !slices.Contains(names, "db") {
				t.Fatalf("no db after a power loss as Open opened it: %v %v", names, err)
			}
			a = openOn(t, crashed, dir)
			defer mustClose(t, a)
			if got, want := dumpState(t, a), wantState(3); got != want {
				t.Fatalf("after a power loss as Open opened the backend\n got %s\nwant %s", got, want)
			}
			if got := listDir(t, crashed, "/member"); got != "db" {
				t.Fatalf("beside the database after Open: %s", got)
			}
		})
	}
}

// crashOnOpenFS is a crashable in-memory disk that, once armed, takes a
// power loss (a CrashClone) as pebble starts opening the database in dir
// (pebble's Open makes dir with MkdirAll first). What that crash keeps is
// what the applier made durable itself: pebble syncs dir's parent as it
// opens, which would hide a directory sync the applier forgot.
type crashOnOpenFS struct {
	*vfs.MemFS
	dir string

	mu struct {
		sync.Mutex
		armed bool
		// crashed is the clone, once taken.
		crashed *vfs.MemFS
	}
}

func (fs *crashOnOpenFS) arm() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.mu.armed = true
}

// crash returns the clone taken since arm.
func (fs *crashOnOpenFS) crash(t *testing.T) *vfs.MemFS {
	t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.mu.crashed == nil {
		t.Fatalf("pebble did not MkdirAll %s as it opened", fs.dir)
	}
	return fs.mu.crashed
}

func (fs *crashOnOpenFS) MkdirAll(dir string, perm os.FileMode) error {
	fs.mu.Lock()
	if fs.mu.armed && fs.mu.crashed == nil && dir == fs.dir {
		fs.mu.crashed = fs.MemFS.CrashClone(vfs.CrashCloneCfg{})
	}
	fs.mu.Unlock()
	return fs.MemFS.MkdirAll(dir, perm)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFile(fs vfs.FS, name string) error {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("junk"))
	return firstErr(err, f.Sync(), f.Close())
}

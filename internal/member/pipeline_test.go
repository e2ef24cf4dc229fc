package member

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
)

// gatedFS holds back pebble's new tables (a flush's output) while closed
// is set, until open is closed: a disk slow to take a flush.
type gatedFS struct {
	pebblevfs.FS
	closed atomic.Bool
	open   chan struct{}
}

func (fs *gatedFS) Create(name string, cat pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	if strings.HasSuffix(name, ".sst") && fs.closed.Load() {
		<-fs.open
	}
	return fs.FS.Create(name, cat)
}

// A snapshot falls due every SnapshotCount entries and needs the backend
// flushed first; applying goes on while the flush is held up, and the
// snapshot is taken, at the index and configuration it fell due at, once
// the flush is done (SnapshotFlushed, FinishSnapshot). Another snapshot
// falling due count entries later waits for the first's flush.
func TestSnapshotWaitsForItsFlushNotApplying(t *testing.T) {
	fs := &gatedFS{FS: pebblevfs.Default, open: make(chan struct{})}
	dir := t.TempDir()
	cfg := Config{
		Name: "a", Dir: filepath.Join(dir, "member"), InitialCluster: "a=http://127.0.0.1:1",
		InitialClusterToken: "t", InitialClusterState: "new",
		AdvertisePeerURLs: []string{"http://127.0.0.1:1"}, MinLeaseTTL: 1,
	}
	cfg.Backend.FS = fs
	st := mustOpen(t, cfg)
	defer st.Close()

	type taken struct {
		index  uint64
		voters int
	}
	var snapshots []taken
	const count = 10
	p := NewPipeline(st, PipelineConfig{
		SnapshotCount: count,
		TakeSnapshot: func(index uint64, cs raftpb.ConfState) error {
			snapshots = append(snapshots, taken{index, len(cs.Voters)})
			return nil
		},
	})
	// The log starts with the founding configuration.
	boot, _ := logOf(t, st)
	if _, err := p.Apply(raftnode.ToApply{Entries: boot}); err != nil {
		t.Fatal(err)
	}
	next := boot[len(boot)-1].Index + 1
	put := func(n int) {
		t.Helper()
		var ents []raftpb.Entry
		for range n {
			data, err := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{
				Key: fmt.Appendf(nil, "k%d", next), Value: []byte("v")}})
			if err != nil {
				t.Fatal(err)
			}
			ents = append(ents, raftpb.Entry{Index: next, Term: 1, Type: raftpb.EntryNormal, Data: data})
			next++
		}
		applied, err := p.Apply(raftnode.ToApply{Entries: ents})
		if err != nil {
			t.Fatal(err)
		}
		if applied != next-1 {
			t.Fatalf("applied %d, want %d", applied, next-1)
		}
	}

	fs.closed.Store(true)
	put(count)
	due := next - 1
	if p.SnapshotFlushed() == nil {
		t.Fatalf("no snapshot pending after %d entries", count)
	}
	put(count / 2) // applied while the flush is held up
	select {
	case <-p.SnapshotFlushed():
		t.Fatal("the flush ended while the disk held its table back")
	default:
	}
	if len(snapshots) != 0 {
		t.Fatalf("snapshots %v taken before their flush", snapshots)
	}

	fs.closed.Store(false)
	close(fs.open)
	select {
	case <-p.SnapshotFlushed():
	case <-time.After(time.Minute):
		t.Fatal("the flush did not end in a minute once the disk let it")
	}
	if err := p.FinishSnapshot(false); err != nil {
		t.Fatal(err)
	}
	if want := []taken{{due, 1}}; fmt.Sprint(snapshots) != fmt.Sprint(want) {
		t.Fatalf("snapshots %v, want %v (at the index it fell due at)", snapshots, want)
	}
	if p.SnapIndex() != due || p.SnapshotFlushed() != nil {
		t.Fatalf("snap index %d, pending %v: want %d, none", p.SnapIndex(), p.SnapshotFlushed(), due)
	}
	if ci := st.Applier.ConsistentIndex(); ci != next-1 {
		t.Fatalf("consistent index %d, want %d", ci, next-1)
	}

	// The next falls due count entries after the last taken, and is
	// taken count entries later at the latest (its flush waited for if
	// need be), when the one after starts.
	put(count)
	second := next - 1
	put(count)
	if want := []taken{{due, 1}, {second, 1}}; fmt.Sprint(snapshots) != fmt.Sprint(want) {
		t.Fatalf("snapshots %v, want %v", snapshots, want)
	}
	if p.SnapshotFlushed() == nil {
		t.Fatal("no snapshot pending after the second was taken")
	}
}

// With SnapshotBytes set, a snapshot also falls due once the entries
// applied since the last started hold that much data, however few.
func TestSnapshotDueByBytes(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		Name: "a", Dir: filepath.Join(dir, "member"), InitialCluster: "a=http://127.0.0.1:1",
		InitialClusterToken: "t", InitialClusterState: "new",
		AdvertisePeerURLs: []string{"http://127.0.0.1:1"}, MinLeaseTTL: 1,
	}
	st := mustOpen(t, cfg)
	defer st.Close()
	var taken []uint64
	p := NewPipeline(st, PipelineConfig{
		SnapshotCount: 1000,
		SnapshotBytes: 1 << 20,
		TakeSnapshot: func(index uint64, cs raftpb.ConfState) error {
			taken = append(taken, index)
			return nil
		},
	})
	boot, _ := logOf(t, st)
	if _, err := p.Apply(raftnode.ToApply{Entries: boot}); err != nil {
		t.Fatal(err)
	}
	next := boot[len(boot)-1].Index + 1
	value := make([]byte, 300<<10)
	put := func() {
		t.Helper()
		data, err := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: value}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Apply(raftnode.ToApply{Entries: []raftpb.Entry{{Index: next, Term: 1, Type: raftpb.EntryNormal, Data: data}}}); err != nil {
			t.Fatal(err)
		}
		if err := p.FinishSnapshot(true); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for range 3 { // 900 KiB
		put()
	}
	if len(taken) != 0 {
		t.Fatalf("snapshots %v after 900 KiB, want none", taken)
	}
	put() // 1.2 MiB
	if want := []uint64{next - 1}; fmt.Sprint(taken) != fmt.Sprint(want) {
		t.Fatalf("snapshots %v after 1.2 MiB, want %v", taken, want)
	}
	for range 4 {
		put()
	}
	if want := []uint64{next - 5, next - 1}; fmt.Sprint(taken) != fmt.Sprint(want) {
		t.Fatalf("snapshots %v after 1.2 MiB more, want %v", taken, want)
	}
}

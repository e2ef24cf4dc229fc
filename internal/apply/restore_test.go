package apply

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

func openApplier(t *testing.T) *Applier {
	t.Helper()
	a, err := Open(filepath.Join(t.TempDir(), "db"), backend.Options{CacheBytes: 1 << 20}, 1, Metrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// applyPut applies a put of key=value as the entry at index.
func applyPut(t *testing.T, a *Applier, index uint64, key, value string) {
	t.Helper()
	if _, _, err := a.Apply(putEntry(t, index, key, value)); err != nil {
		t.Fatal(err)
	}
}

// putEntry is the entry at index putting key=value.
func putEntry(t *testing.T, index uint64, key, value string) raftpb.Entry {
	t.Helper()
	e := normalEntry(t, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}})
	e.Index = index
	return e
}

// restoreFrom restores to an image of from's backend, as a lagging member
// installs a snapshot.
func restoreFrom(t *testing.T, to, from *Applier) {
	t.Helper()
	cp, err := from.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var image bytes.Buffer
	if _, err := cp.WriteTo(&image); err != nil {
		t.Fatal(err)
	}
	if err := to.Restore(&image); err != nil {
		t.Fatal(err)
	}
}

func nextWatchResponse(t *testing.T, st *mvcc.WatchStream) mvcc.WatchResponse {
	t.Helper()
	for {
		select {
		case r := <-st.Chan():
			if !r.Created {
				return r
			}
		case <-time.After(10 * time.Second): // a safeguard against a hang
			t.Fatal("no watch response in 10s")
		}
	}
}

// A watcher on a member that restores a snapshot image goes on from the
// restored store: it gets the events the image brought after what it was
// sent, once, then new ones as they are applied.
func TestWatchAcrossRestore(t *testing.T) {
	behind, ahead := openApplier(t), openApplier(t)
	for i := uint64(1); i <= 5; i++ {
		applyPut(t, ahead, i, "k", fmt.Sprint(i))
		if i <= 2 {
			applyPut(t, behind, i, "k", fmt.Sprint(i))
		}
	}
	st := behind.Watchable().NewWatchStream()
	defer st.Close()
	if _, err := st.Watch(mvcc.WatchOptions{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	restoreFrom(t, behind, ahead)
	var got []string
	for len(got) < 3 {
		for _, ev := range nextWatchResponse(t, st).Events {
			got = append(got, fmt.Sprintf("%s@%d", ev.Kv.Value, ev.Kv.ModRevision))
		}
	}
	applyPut(t, behind, 6, "k", "6")
	for _, ev := range nextWatchResponse(t, st).Events {
		got = append(got, fmt.Sprintf("%s@%d", ev.Kv.Value, ev.Kv.ModRevision))
	}
	if fmt.Sprint(got) != "[3@4 4@5 5@6 6@7]" {
		t.Fatalf("got %v", got)
	}
}

// Leases, and the keys each holds, come with a snapshot image: the
// restored member's lessor is rebuilt from it.
func TestLeasesAcrossRestore(t *testing.T) {
	behind, ahead := openApplier(t), openApplier(t)
	apply := func(index uint64, r *pb.InternalRaftRequest) {
		t.Helper()
		data, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ahead.Apply(raftpb.Entry{Index: index, Term: 1, Type: raftpb.EntryNormal, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
	apply(2, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("held"), Value: []byte("v"), Lease: 7}})
	apply(3, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
		Checkpoints: []*pb.LeaseCheckpoint{{ID: 7, Remaining_TTL: 42}}}})
	// Keys whose latest put names another lease, or none, or that were
	// deleted: the restore reads each key's latest put alone.
	put := func(index uint64, key string, lease int64) {
		apply(index, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v"), Lease: lease}})
	}
	del := func(index uint64, key string) {
		apply(index, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(key)}})
	}
	apply(4, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 8, TTL: 60}})
	put(5, "moved", 7)
	put(6, "moved", 8)
	put(7, "freed", 7)
	put(8, "freed", 0)
	put(9, "gone", 8)
	del(10, "gone")
	put(11, "back", 8)
	del(12, "back")
	put(13, "back", 8)
	restoreFrom(t, behind, ahead)
	for id, want := range map[int64]string{7: "[held]", 8: "[back moved]"} {
		keys, err := behind.Lessor().Keys(id)
		slices.Sort(keys)
		if err != nil || fmt.Sprint(keys) != want {
			t.Fatalf("after the restore, lease %d holds %v (%v), want %s", id, keys, err, want)
		}
	}
	behind.Lessor().Promote(0, func() bool { return true })
	if granted, remaining, _, err := behind.Lessor().TimeToLive(7, false); err != nil || granted != 60 || remaining != 41 && remaining != 42 {
		t.Fatalf("after the restore: granted %d remaining %d %v", granted, remaining, err)
	}
}

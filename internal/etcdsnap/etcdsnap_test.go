package etcdsnap

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// rev is one revision with its KeyValue, as a test builds and reads them.
type rev struct {
	r  Revision
	kv *mvccpb.KeyValue
}

func marshalKV(t testing.TB, kv *mvccpb.KeyValue) []byte {
	b, err := proto.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// history is a small realistic history: puts, an overwrite, a txn with two
// changes, a delete, a key re-created, with a lease on some keys.
func history(lease int64) []rev {
	return []rev{
		{Revision{Main: 2}, &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}},
		{Revision{Main: 3}, &mvccpb.KeyValue{Key: []byte("b"), Value: []byte("1"), CreateRevision: 3, ModRevision: 3, Version: 1, Lease: lease}},
		{Revision{Main: 4}, &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("2"), CreateRevision: 2, ModRevision: 4, Version: 2}},
		{Revision{Main: 4, Sub: 1}, &mvccpb.KeyValue{Key: []byte("c"), Value: []byte{}, CreateRevision: 4, ModRevision: 4, Version: 1}},
		{Revision{Main: 5, Tombstone: true}, &mvccpb.KeyValue{Key: []byte("a")}},
		{Revision{Main: 6}, &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("3"), CreateRevision: 6, ModRevision: 6, Version: 1, Lease: lease}},
		{Revision{Main: 7, Tombstone: true}, &mvccpb.KeyValue{Key: []byte("c")}},
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.db")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	revs := history(0x694d9b3a4c5e1f07)
	var buf []byte // reused, as an iterator reuses its value buffer
	for _, r := range revs {
		buf = append(buf[:0], marshalKV(t, r.kv)...)
		if err := w.PutRevision(r.r, buf); err != nil {
			t.Fatal(err)
		}
		clear(buf)
	}
	leases := []Lease{{ID: 0x694d9b3a4c5e1f07, TTL: 600, RemainingTTL: 120}, {ID: 7, TTL: 5}}
	for _, l := range leases {
		if err := w.PutLease(l); err != nil {
			t.Fatal(err)
		}
	}
	members := []membership.Member{
		{ID: 0x69b672a7a5907cad, Name: "d", PeerURLs: []string{"http://127.0.0.1:2380"}, ClientURLs: []string{"http://127.0.0.1:2379"}},
		{ID: 0xf00, PeerURLs: []string{"http://10.0.0.2:2380"}, IsLearner: true}, // not started yet: no name
	}
	for _, m := range members {
		if err := w.PutMember(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []uint64{0xdead, 3} {
		if err := w.PutRemoved(id); err != nil {
			t.Fatal(err)
		}
	}
	alarms := []Alarm{{MemberID: 0x69b672a7a5907cad, Alarm: pb.AlarmType_NOSPACE}, {MemberID: 0xf00, Alarm: pb.AlarmType_CORRUPT}}
	for _, a := range alarms {
		if err := w.PutAlarm(a); err != nil {
			t.Fatal(err)
		}
	}
	meta := Meta{ConsistentIndex: 42, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{0x69b672a7a5907cad}, Learners: []uint64{0xf00}},
		ScheduledCompact: 4, FinishedCompact: 3, ClusterVersion: "3.7.0"}
	if err := w.Finish(meta); err != nil {
		t.Fatal(err)
	}
	if err := w.PutLease(Lease{ID: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("a put after Finish: %v, want ErrClosed", err)
	}
	// The file is exactly its database: pgid*pageSize bytes.
	st, err := ReadStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); info.Size() != st.TotalSize {
		t.Fatalf("file is %d bytes, its database %d", info.Size(), st.TotalSize)
	}
	if want := (Status{Hash: st.Hash, Revision: 7, TotalKey: 2, TotalSize: st.TotalSize, Version: "3.7.0"}); st != want {
		t.Fatalf("status %+v, want %+v", st, want)
	}
	if _, err := Open(path, true); !errors.Is(err, ErrMissingHash) {
		t.Fatalf("Open(verifyHash) of a file without a trailer: %v, want ErrMissingHash", err)
	}
	if err := AppendHash(path); err != nil {
		t.Fatal(err)
	}
	if st2, err := ReadStatus(path); err != nil || st2 != st {
		t.Fatalf("status with the trailer: %+v, %v; want %+v", st2, err, st)
	}
	for _, verify := range []bool{true, false} {
		r, err := Open(path, verify)
		if err != nil {
			t.Fatal(err)
		}
		var got []rev
		err = r.Revisions(func(rv Revision, b []byte) error {
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(b, kv); err != nil {
				return err
			}
			got = append(got, rev{rv, kv})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if revsString(got) != revsString(revs) {
			t.Fatalf("revisions:\n%v\nwant\n%v", revsString(got), revsString(revs))
		}
		var gotLeases []Lease
		if err := r.Leases(func(l Lease) error { gotLeases = append(gotLeases, l); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := []Lease{leases[1], leases[0]}; !reflect.DeepEqual(gotLeases, want) { // in ID order
			t.Fatalf("leases %v, want %v", gotLeases, want)
		}
		gotMembers, removed, err := r.Members()
		if err != nil {
			t.Fatal(err)
		}
		if want := []membership.Member{members[1], members[0]}; !reflect.DeepEqual(gotMembers, want) {
			t.Fatalf("members %+v, want %+v", gotMembers, want)
		}
		if want := []uint64{3, 0xdead}; !reflect.DeepEqual(removed, want) {
			t.Fatalf("removed %v, want %v", removed, want)
		}
		gotAlarms, err := r.Alarms()
		if err != nil {
			t.Fatal(err)
		}
		if want := []Alarm{alarms[1], alarms[0]}; !reflect.DeepEqual(gotAlarms, want) { // in key order: 0x08 0x80 0x1e < 0x08 0xad
			t.Fatalf("alarms %v, want %v", gotAlarms, want)
		}
		gotMeta, err := r.Meta()
		if err != nil {
			t.Fatal(err)
		}
		meta.StorageVersion = StorageVersion
		if !reflect.DeepEqual(gotMeta, meta) {
			t.Fatalf("meta %+v, want %+v", gotMeta, meta)
		}
		if has, err := r.HasAuth(); has || err != nil {
			t.Fatalf("HasAuth: %v, %v; want false", has, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriterFormat pins the bytes the writer stores where etcd's reader
// parses them, as etcd 3.7.3 writes them (compare testdata/kv.db).
func TestWriterFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.db")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v"), CreateRevision: 2, ModRevision: 2, Version: 1}
	must(t, w.PutRevision(Revision{Main: 2}, marshalKV(t, &kv)))
	must(t, w.PutRevision(Revision{Main: 3, Tombstone: true}, marshalKV(t, &mvccpb.KeyValue{Key: []byte("k")})))
	must(t, w.PutLease(Lease{ID: 0x7cada236f5f53d08, TTL: 600}))
	must(t, w.PutMember(membership.Member{ID: 0x69b672a7a5907cad, Name: "d", PeerURLs: []string{"http://127.0.0.1:11702"},
		ClientURLs: []string{"http://127.0.0.1:11701"}}))
	must(t, w.PutRemoved(0xab))
	must(t, w.PutAlarm(Alarm{MemberID: 0x69b672a7a5907cad, Alarm: pb.AlarmType_NOSPACE}))
	must(t, w.Finish(Meta{ConsistentIndex: 14, Term: 2, ConfState: raftpb.ConfState{Voters: []uint64{0x69b672a7a5907cad}},
		ScheduledCompact: 5, FinishedCompact: 5, ClusterVersion: "3.7.0"}))
	got := dump(t, path)
	want := `alarm 08adf9c1acfad49cdb691001=""
auth authRevision="\x00\x00\x00\x00\x00\x00\x00\x01"
authRoles
authUsers
cluster clusterVersion="3.7.0"
key 00000000000000025f0000000000000000="\n\x01k\x10\x02\x18\x02 \x01*\x01v"
key 00000000000000035f000000000000000074="\n\x01k"
lease 7cada236f5f53d08="\b\x88\xfaԯ\xef\xc6\xe8\xd6|\x10\xd8\x04"
members 69b672a7a5907cad="{\"id\":7617401884106587309,\"peerURLs\":[\"http://127.0.0.1:11702\"],\"name\":\"d\",\"clientURLs\":[\"http://127.0.0.1:11701\"]}"
members_removed ab="removed"
meta confState="{\"voters\":[7617401884106587309],\"auto_leave\":false}"
meta consistent_index="\x00\x00\x00\x00\x00\x00\x00\x0e"
meta finishedCompactRev="\x00\x00\x00\x00\x00\x00\x00\x05_\x00\x00\x00\x00\x00\x00\x00\x00"
meta scheduledCompactRev="\x00\x00\x00\x00\x00\x00\x00\x05_\x00\x00\x00\x00\x00\x00\x00\x00"
meta storageVersion="3.7.0"
meta term="\x00\x00\x00\x00\x00\x00\x00\x02"
`
	if got != want {
		t.Fatalf("the file holds\n%s\nwant\n%s", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dump prints every bucket, key and value of a bbolt file, one a line:
// keys of the key, lease and alarm buckets in hex, others quoted.
func dump(t *testing.T, path string) string {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			if bk.Stats().KeyN == 0 {
				fmt.Fprintf(&b, "%s\n", name)
			}
			return bk.ForEach(func(k, v []byte) error {
				key := string(k)
				switch string(name) {
				case "key", "lease", "alarm":
					key = fmt.Sprintf("%x", k)
				}
				fmt.Fprintf(&b, "%s %s=%q\n", name, key, v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestStockEtcdFiles reads files stock etcd 3.7.3 saved (testdata/make.sh
// says how they were made) and checks what etcdutl 3.7.3 reported for them.
func TestStockEtcdFiles(t *testing.T) {
	const member = 0x69b672a7a5907cad
	r, err := Open("testdata/kv.db", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var leases []Lease
	must(t, r.Leases(func(l Lease) error { leases = append(leases, l); return nil }))
	if len(leases) != 1 || leases[0].TTL != 600 || leases[0].RemainingTTL != 0 {
		t.Fatalf("leases %+v, want one of TTL 600", leases)
	}
	lease := leases[0].ID
	var got []string
	must(t, r.Revisions(func(rv Revision, b []byte) error {
		kv := &mvccpb.KeyValue{}
		if err := proto.Unmarshal(b, kv); err != nil {
			return err
		}
		got = append(got, fmt.Sprintf("%d.%d %v %s=%q c%d m%d v%d lease=%v", rv.Main, rv.Sub, rv.Tombstone,
			kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease == lease))
		return nil
	}))
	// Compacted at 5: a@2 and the first b are gone.
	want := []string{
		`3.0 false a="2" c2 m3 v2 lease=false`,
		`4.0 false b="1" c4 m4 v1 lease=false`,
		`5.0 false c="1" c5 m5 v1 lease=true`,
		`6.0 true b="" c0 m0 v0 lease=false`,
		`7.0 false a="3" c2 m7 v3 lease=false`,
		`7.1 false d="4" c7 m7 v1 lease=true`,
		`8.0 false b="2" c8 m8 v1 lease=false`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("revisions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	meta, err := r.Meta()
	must(t, err)
	wantMeta := Meta{ConsistentIndex: 14, Term: 2, ConfState: raftpb.ConfState{Voters: []uint64{member}},
		ScheduledCompact: 5, FinishedCompact: 5, StorageVersion: "3.7.0", ClusterVersion: "3.7.0"}
	if !reflect.DeepEqual(meta, wantMeta) {
		t.Fatalf("meta %+v, want %+v", meta, wantMeta)
	}
	members, removed, err := r.Members()
	must(t, err)
	wantMembers := []membership.Member{{ID: member, Name: "d", PeerURLs: []string{"http://127.0.0.1:11702"}, ClientURLs: []string{"http://127.0.0.1:11701"}}}
	if !reflect.DeepEqual(members, wantMembers) || len(removed) != 0 {
		t.Fatalf("members %+v removed %v, want %+v and none", members, removed, wantMembers)
	}
	if has, err := r.HasAuth(); has || err != nil {
		t.Fatalf("HasAuth: %v, %v; want false", has, err)
	}
	if alarms, err := r.Alarms(); len(alarms) != 0 || err != nil {
		t.Fatalf("alarms %v, %v; want none", alarms, err)
	}

	a, err := Open("testdata/auth-alarm.db", true)
	must(t, err)
	defer a.Close()
	if has, err := a.HasAuth(); !has || err != nil {
		t.Fatalf("HasAuth of a file with auth enabled: %v, %v", has, err)
	}
	alarms, err := a.Alarms()
	must(t, err)
	if want := []Alarm{{MemberID: member, Alarm: pb.AlarmType_NOSPACE}}; !reflect.DeepEqual(alarms, want) {
		t.Fatalf("alarms %v, want %v", alarms, want)
	}

	// What `etcdutl snapshot status -w json` 3.7.3 printed for them.
	for file, want := range map[string]Status{
		"testdata/kv.db":         {Hash: 1614867768, Revision: 8, TotalKey: 4, TotalSize: 20480, Version: "3.7.0"},
		"testdata/auth-alarm.db": {Hash: 3618147681, Revision: 3, TotalKey: 2, TotalSize: 40960, Version: "3.7.0"},
	} {
		st, err := ReadStatus(file)
		if err != nil || st != want {
			t.Errorf("ReadStatus(%s) = %+v, %v; etcdutl says %+v", file, st, err, want)
		}
	}
}

// TestWriterMemoryBounded writes ~110 MB of history and checks that the
// writer commits in batches and its heap stays far below that.
func TestWriterMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 110 MB")
	}
	const n = 200_000
	path := filepath.Join(t.TempDir(), "big.db")
	w, err := Create(path)
	must(t, err)
	defer w.Abort()
	value := bytes.Repeat([]byte("v"), 512)
	var written int
	var peak uint64
	var ms runtime.MemStats
	for i := range n {
		key := fmt.Appendf(nil, "key/%07d", i%50_000)
		kv := mvccpb.KeyValue{Key: key, Value: value, CreateRevision: int64(i%50_000) + 2, ModRevision: int64(i) + 2, Version: int64(i/50_000) + 1}
		b := marshalKV(t, &kv)
		written += len(b)
		must(t, w.PutRevision(Revision{Main: int64(i) + 2}, b))
		if i%10_000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	must(t, w.Finish(Meta{ConsistentIndex: n + 10, Term: 2}))
	t.Logf("%d revisions, %d MB of values, %d commits, peak heap %d MB", n, written>>20, w.commits, peak>>20)
	if w.commits < written/batchBytes {
		t.Fatalf("%d commits for %d bytes: not batching by %d", w.commits, written, batchBytes)
	}
	if peak > 40<<20 {
		t.Fatalf("peak heap %d MB while writing %d MB", peak>>20, written>>20)
	}
	st, err := ReadStatus(path)
	must(t, err)
	if st.Revision != n+1 || st.TotalKey != 50_000 {
		t.Fatalf("status %+v, want revision %d and 50000 keys", st, n+1)
	}
	if st.TotalSize > int64(written)*3/2 {
		t.Fatalf("database of %d MB for %d MB written", st.TotalSize>>20, written>>20)
	}
	r, err := Open(path, false)
	must(t, err)
	defer r.Close()
	count := 0
	must(t, r.Revisions(func(rv Revision, _ []byte) error {
		if rv.Main != int64(count)+2 {
			return fmt.Errorf("revision %d at position %d", rv.Main, count)
		}
		count++
		return nil
	}))
	if count != n {
		t.Fatalf("read %d revisions, wrote %d", count, n)
	}
}

func TestWriterRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	must(t, os.WriteFile(path, []byte("x"), 0o600))
	if _, err := Create(path); err == nil {
		t.Fatal("Create over an existing file succeeded")
	}
	path = filepath.Join(dir, "t.db")
	w, err := Create(path)
	must(t, err)
	kv := marshalKV(t, &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 3, ModRevision: 3, Version: 1})
	must(t, w.PutRevision(Revision{Main: 3}, kv))
	if err := w.PutRevision(Revision{Main: 3, Tombstone: true}, marshalKV(t, &mvccpb.KeyValue{Key: []byte("a")})); err == nil {
		t.Fatal("a revision equal to the last one was accepted")
	}
	if err := w.Finish(Meta{}); err == nil {
		t.Fatal("Finish after a failed put succeeded")
	}
	w.Abort()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Abort left the file: %v", err)
	}
	w, err = Create(path)
	must(t, err)
	if err := w.Finish(Meta{StorageVersion: "3.6.0"}); err == nil {
		t.Fatal("Finish wrote storage version 3.6.0")
	}
	w.Abort()
}

// finishedFile writes a small snapshot with its trailer and returns its
// path and bytes.
func finishedFile(t *testing.T) (string, []byte) {
	path := filepath.Join(t.TempDir(), "snap.db")
	w, err := Create(path)
	must(t, err)
	for i, r := range history(5) {
		must(t, w.PutRevision(r.r, marshalKV(t, history(5)[i].kv)))
	}
	// Enough values that the database spans several pages.
	for i := range 200 {
		kv := mvccpb.KeyValue{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte("x"), 100), CreateRevision: int64(i) + 10, ModRevision: int64(i) + 10, Version: 1}
		must(t, w.PutRevision(Revision{Main: int64(i) + 10}, marshalKV(t, &kv)))
	}
	must(t, w.PutLease(Lease{ID: 5, TTL: 60}))
	must(t, w.Finish(Meta{ConsistentIndex: 300, Term: 2}))
	must(t, AppendHash(path))
	b, err := os.ReadFile(path)
	must(t, err)
	return path, b
}

func TestDamagedFilesRefused(t *testing.T) {
	path, good := finishedFile(t)
	dir := filepath.Dir(path)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, b, 0o600))
		return p
	}

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x10
	p := write("flipped.db", flipped)
	_, err := Open(p, true)
	if !errors.Is(err, ErrHashMismatch) || !strings.HasPrefix(err.Error(), "expected sha256 [") {
		t.Errorf("a flipped byte: %v, want etcdutl's sha256 mismatch", err)
	}

	// Cut so that no trailer seems to be there, and so that one does.
	for _, n := range []int{len(good) / 2, len(good)/2 + 32 - len(good)/2%512, 5000} {
		p := write("cut.db", good[:n])
		for _, verify := range []bool{false, true} {
			_, err := Open(p, verify)
			want := ErrTruncated
			if verify && hasTrailer(int64(n)) {
				want = ErrHashMismatch // checked first, as etcdutl does
			}
			if !errors.Is(err, want) {
				t.Errorf("cut to %d bytes, verifyHash %v: %v, want %v", n, verify, err, want)
			}
		}
		if _, err := ReadStatus(p); !errors.Is(err, ErrTruncated) {
			t.Errorf("status of a file cut to %d bytes: %v, want ErrTruncated", n, err)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 3*4096+100)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for name, b := range map[string][]byte{"random": random, "empty": nil, "text": []byte("hello, world\n")} {
		p := write(name, b)
		for _, verify := range []bool{false, true} {
			if _, err := Open(p, verify); !errors.Is(err, ErrNotSnapshot) {
				t.Errorf("%s file, verifyHash %v: %v, want ErrNotSnapshot", name, verify, err)
			}
		}
		if _, err := ReadStatus(p); !errors.Is(err, ErrNotSnapshot) {
			t.Errorf("status of %s file: %v, want ErrNotSnapshot", name, err)
		}
	}

	// A bbolt database, but not etcd's.
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }))
	must(t, db.Close())
	if _, err := Open(other, false); !errors.Is(err, ErrNotSnapshot) || !strings.Contains(err.Error(), `no "key" bucket`) {
		t.Errorf("a bbolt file without etcd's buckets: %v", err)
	}

	// Open, reading everything, and Close leave the file as it was.
	info, _ := os.Stat(path)
	r, err := Open(path, true)
	must(t, err)
	must(t, r.Revisions(func(Revision, []byte) error { return nil }))
	_, err = r.Meta()
	must(t, err)
	must(t, r.Close())
	after, _ := os.ReadFile(path)
	info2, _ := os.Stat(path)
	if !bytes.Equal(after, good) || !info.ModTime().Equal(info2.ModTime()) {
		t.Error("reading the file changed it")
	}
}

func TestSemverString(t *testing.T) {
	for in, want := range map[string]string{
		"3.7.0": "3.7.0", "03.7.0": "3.7.0", "3.6.0-alpha.1+x": "3.6.0-alpha.1+x",
		"": "", "3.7": "", "3.7.x": "", "3.7.0-": "3.7.0", "3.7.0-a..b": "",
	} {
		if got := semverString(in); got != want {
			t.Errorf("semverString(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOpenLockedFile: a database a process holds open for writing (a
// running etcd's member/snap/db) is refused after a short wait, not
// waited on forever.
func TestOpenLockedFile(t *testing.T) {
	path, _ := finishedFile(t)
	must(t, os.Truncate(path, int64(len(mustRead(t, path)))-32)) // bbolt would not open it for writing with the trailer
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	if _, err := Open(path, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a file held for writing: %v, want ErrLocked", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}

func revsString(revs []rev) string {
	var b strings.Builder
	for _, r := range revs {
		fmt.Fprintf(&b, "%v %q=%q c%d m%d v%d l%x\n", r.r, r.kv.Key, r.kv.Value, r.kv.CreateRevision, r.kv.ModRevision, r.kv.Version, r.kv.Lease)
	}
	return b.String()
}

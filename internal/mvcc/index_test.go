package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-db/cairn/internal/datadriven"
)

func parseRev(t testing.TB, s string) Revision {
	t.Helper()
	main, sub, _ := strings.Cut(s, ".")
	m, err := strconv.ParseInt(main, 10, 64)
	if err != nil {
		t.Fatalf("bad revision %q", s)
	}
	var n int64
	if sub != "" {
		if n, err = strconv.ParseInt(sub, 10, 64); err != nil {
			t.Fatalf("bad revision %q", s)
		}
	}
	return Revision{Main: m, Sub: n}
}

func (ti *treeIndex) dump() string {
	var b strings.Builder
	ti.tree.Ascend(func(ki *keyIndex) bool {
		fmt.Fprintf(&b, "%s:", ki.key)
		var buf [1]generation
		gens := ki.lives(&buf)
		for gi, g := range gens {
			fmt.Fprintf(&b, " {created %d ver %d revs %v", g.created, g.ver, g.revs)
			if ki.tombstoned(gens, gi) {
				b.WriteString(" tombstoned")
			}
			b.WriteString("}")
		}
		b.WriteString("\n")
		return true
	})
	return strings.TrimSuffix(b.String(), "\n")
}

// TestIndex runs testdata/index.txt: put, del, get, range and compact on
// the key index, checking it against etcd's rules for versions, creation
// revisions, deletes and compaction.
func TestIndex(t *testing.T) {
	ti := newTreeIndex()
	datadriven.RunTest(t, "testdata/index.txt", func(t *testing.T, d *datadriven.TestData) string {
		at := int64(d.Uint(t, "at", 0))
		switch d.Cmd {
		case "reset":
			ti = newTreeIndex()
			return "ok"
		case "put":
			ti.put([]byte(d.Str(t, "k", "")), parseRev(t, d.Str(t, "rev", "")))
			return ti.dump()
		case "del":
			ti.tombstone([]byte(d.Str(t, "k", "")), parseRev(t, d.Str(t, "rev", "")))
			return ti.dump()
		case "get":
			mod, created, ver, ok := ti.get([]byte(d.Str(t, "k", "")), at)
			if !ok {
				return "none"
			}
			return fmt.Sprintf("mod %s created %d version %d", mod, created, ver)
		case "range":
			var out []string
			end := []byte(d.Str(t, "end", ""))
			if d.HasArg("fromkey") {
				end = []byte{0}
			}
			ti.rangeKeys([]byte(d.Str(t, "k", "")), end, at, func(e indexEntry) bool {
				out = append(out, fmt.Sprintf("%s mod %s created %d version %d", e.key, e.mod, e.created, e.ver))
				return true
			})
			if len(out) == 0 {
				return "none"
			}
			return strings.Join(out, "\n")
		case "compact":
			keep := ti.compact(at)
			var ks []string
			for r := range keep {
				ks = append(ks, r.String())
			}
			slices.Sort(ks)
			return fmt.Sprintf("keep %v\n%s", ks, ti.dump())
		}
		t.Fatalf("unknown command %q", d.Cmd)
		return ""
	})
}

// rangeCount, which counts most keys from their cached latest change
// (aliveAt), agrees with get at every revision, through random puts,
// deletes and compactions (seeded: a failure names its seed).
func TestRangeCountMatchesGet(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		ti := newTreeIndex()
		alive := map[string]bool{}
		compacted := int64(0)
		for rev := int64(2); rev < 300; rev++ {
			k := fmt.Sprintf("k%02d", rng.IntN(30))
			switch {
			case alive[k] && rng.IntN(3) == 0:
				ti.tombstone([]byte(k), Revision{Main: rev})
				alive[k] = false
			case rng.IntN(20) == 0:
				compacted = rev - 1 - int64(rng.IntN(int(rev-1-compacted)))
				ti.compact(compacted)
			default:
				ti.put([]byte(k), Revision{Main: rev})
				alive[k] = true
			}
			for at := max(compacted, 1); at <= rev; at++ {
				var want int64
				ti.rangeKeys([]byte("k"), []byte("l"), at, func(indexEntry) bool { want++; return true })
				for _, n := range []int{0, 3, math.MaxInt} {
					var got []indexEntry
					count := ti.rangeCount([]byte("k"), []byte("l"), at, n, func(e indexEntry) bool { got = append(got, e); return true })
					if count != want || len(got) != int(min(int64(n), want)) {
						t.Fatalf("seed %d, revision %d, at %d, first %d: count %d (%d read), get finds %d", seed, rev, at, n, count, len(got), want)
					}
				}
			}
		}
	}
}

// TestIndexRestorerMatchesLiveIndex: an index rebuilt from a history's
// revisions (in revision order, as Open reads them) equals the index the
// history built as it happened, on more keys than the restorer sorts on
// one core, in an order unrelated to the keys'.
func TestIndexRestorerMatchesLiveIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	live := newTreeIndex()
	r := newIndexRestorer()
	const keys = 40000
	alive := map[int]bool{}
	for main := int64(2); main < 3*keys; main++ {
		k := rng.IntN(keys)
		key := fmt.Appendf(nil, "key/%06d", k)
		rev := Revision{Main: main}
		if alive[k] && rng.IntN(4) == 0 {
			live.tombstone(key, rev)
			r.tombstone(key, rev)
			alive[k] = false
			continue
		}
		live.put(key, rev)
		_, created, ver, _ := live.get(key, main)
		r.put(key, rev, created, ver, 0)
		alive[k] = true
	}
	restored := newTreeIndex()
	counted := r.build(restored)
	if live.tree.Len() != restored.tree.Len() {
		t.Fatalf("restored %d keys, want %d", restored.tree.Len(), live.tree.Len())
	}
	if want := live.rangeCount([]byte{0}, []byte{0}, 3*keys, 0, nil); counted != want {
		t.Fatalf("the restorer counted %d keys alive, the live index %d", counted, want)
	}
	var want []*keyIndex
	live.tree.Ascend(func(ki *keyIndex) bool { want = append(want, ki); return true })
	i := 0
	restored.tree.Ascend(func(ki *keyIndex) bool {
		// The same history in the same form.
		if w := want[i]; !bytes.Equal(ki.key, w.key) || !reflect.DeepEqual(*ki, *w) {
			var buf, wbuf [1]generation
			t.Fatalf("key %d: restored %q %+v, want %q %+v", i, ki.key, ki.lives(&buf), w.key, w.lives(&wbuf))
		}
		i++
		return true
	})
}

// TestKeyIndexForms: a key put once, or compacted down to one revision of
// a life going on, is kept in the short form (the keyIndex alone); any
// other history in the long; both answer alike (TestIndex), and a
// restored key takes the form the live one has
// (TestIndexRestorerMatchesLiveIndex).
func TestKeyIndexForms(t *testing.T) {
	ti := newTreeIndex()
	key := []byte("k")
	form := func(want string, wantMod Revision, wantCreated, wantVer int64) {
		t.Helper()
		ki, ok := ti.tree.Get(&keyIndex{key: key})
		if !ok {
			t.Fatalf("%s: key missing", want)
		}
		got := "long"
		if ki.hist == nil {
			got = "short"
		}
		mod, created, ver, _ := ki.get(math.MaxInt64)
		if got != want || mod != wantMod || created != wantCreated || ver != wantVer {
			t.Fatalf("%s form, mod %s created %d version %d; want %s form, mod %s created %d version %d",
				got, mod, created, ver, want, wantMod, wantCreated, wantVer)
		}
	}
	ti.put(key, Revision{Main: 2})
	form("short", Revision{Main: 2}, 2, 1)
	ti.put(key, Revision{Main: 3, Sub: 1})
	form("long", Revision{Main: 3, Sub: 1}, 2, 2)
	ti.compact(3)
	form("short", Revision{Main: 3, Sub: 1}, 2, 2)
	ti.tombstone(key, Revision{Main: 4})
	ti.put(key, Revision{Main: 5})
	form("long", Revision{Main: 5}, 5, 1)
	ti.compact(4) // the delete at 4 stays, for watchers starting there
	form("long", Revision{Main: 5}, 5, 1)
	ti.compact(5)
	form("short", Revision{Main: 5}, 5, 1)
	if _, _, _, ok := ti.get(key, 4); ok {
		t.Fatal("alive at 4, where it was deleted")
	}
	ti.tombstone(key, Revision{Main: 6})
	ti.compact(7)
	if ti.tree.Len() != 0 {
		t.Fatalf("a key deleted before the compaction revision is still indexed")
	}
}

// TestIndexMemoryPerKey: keys put once (a bulk load, or etcd's benchmark
// tool) cost the heap about 90 bytes each beside their bytes, the keyIndex
// (64), the key (8 here) and the tree's slot and node share, and 12-24
// more for the key table (9 bytes a slot, between three eighths and three
// quarters full; 100k keys is just past a doubling: 116 in all, and 12
// more while the old table is held, until the move into the doubled one
// ends). The long form alone took about 150 without the table.
func TestIndexMemoryPerKey(t *testing.T) {
	const keys = 100_000
	perKey := math.MaxFloat64
	for range 3 { // the least of three: the runtime allocates meanwhile too
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ti := newTreeIndex()
		for i := range keys {
			ti.put(fmt.Appendf(make([]byte, 0, 8), "%08x", uint32(i)*2654435761), Revision{Main: int64(i + 2)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ti)
		perKey = min(perKey, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/keys)
	}
	t.Logf("%.1f heap bytes a key", perKey)
	if perKey > 130 {
		t.Fatalf("the index takes %.1f heap bytes a key put once, want at most 130", perKey)
	}
}

// TestRangeCountAcrossChunks: a walk longer than rangeChunk keys, which
// lets go of the lock between chunks and finds its place again by key,
// reads and counts the same keys as a list, for ranges ending inside a
// chunk, on its edge and at the end of the index, and for reads that
// stop on a chunk's edge.
func TestRangeCountAcrossChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ti := newTreeIndex()
	const n = 3*rangeChunk + 100
	var keys []string
	alive := map[string]bool{}
	for i := range n {
		k := fmt.Sprintf("k%05d", i)
		keys = append(keys, k)
		ti.put([]byte(k), Revision{Main: int64(i + 2)})
		alive[k] = true
	}
	rev := int64(n + 2)
	for _, i := range rng.Perm(n)[:n/3] {
		ti.tombstone([]byte(keys[i]), Revision{Main: rev})
		alive[keys[i]] = false
		rev++
	}
	at := rev - 1
	for _, r := range [][2]int{{0, n}, {0, rangeChunk}, {0, rangeChunk + 1}, {1, 2*rangeChunk + 1}, {17, n - 5}, {rangeChunk, 3 * rangeChunk}} {
		from, end := []byte(keys[r[0]]), []byte("l")
		if r[1] < n {
			end = []byte(keys[r[1]])
		}
		var want []string
		for _, k := range keys[r[0]:r[1]] {
			if alive[k] {
				want = append(want, k)
			}
		}
		ends := [][]byte{end}
		if r[1] == n {
			ends = append(ends, []byte{0})
		}
		for _, end := range ends {
			for _, limit := range []int{0, 5, rangeChunk, rangeChunk + 1, len(want), math.MaxInt} {
				var got []string
				count := ti.rangeCount(from, end, at, limit, func(e indexEntry) bool {
					got = append(got, string(e.key))
					return true
				})
				if count != int64(len(want)) || !slices.Equal(got, want[:min(limit, len(want))]) {
					t.Fatalf("[%s, %q) first %d: count %d, read %d keys; want %d, %d", from, end, limit, count, len(got), len(want), min(limit, len(want)))
				}
			}
			// A read that stops itself ends the walk, wherever it is.
			for _, stop := range []int{1, rangeChunk, rangeChunk + 1} {
				var got []string
				ti.rangeKeys(from, end, at, func(e indexEntry) bool {
					got = append(got, string(e.key))
					return len(got) < stop
				})
				if !slices.Equal(got, want[:min(stop, len(want))]) {
					t.Fatalf("[%s, %q) stopping after %d: read %d keys", from, end, stop, len(got))
				}
			}
		}
	}
}

// TestRangeCountLetsWritesIn: a write that arrives while a long range is
// counted gets the index between two chunks of the walk, rather than after
// the whole walk (a count over 1M keys held the lock 63 ms).
func TestRangeCountLetsWritesIn(t *testing.T) {
	ti := newTreeIndex()
	const n = 16 * rangeChunk
	for i := range n {
		ti.put(fmt.Appendf(nil, "k%06d", i), Revision{Main: int64(i + 2)})
	}
	at := int64(n + 1)
	var wrote atomic.Bool
	done := make(chan struct{})
	visited, sawWrite := 0, -1
	count := ti.rangeCount([]byte("k"), []byte("l"), at, math.MaxInt, func(indexEntry) bool {
		visited++
		switch {
		case visited == 1:
			go func() {
				defer close(done)
				ti.put([]byte("k-new"), Revision{Main: at + 1})
				wrote.Store(true)
			}()
		case sawWrite < 0 && wrote.Load():
			sawWrite = visited
		case sawWrite < 0:
			runtime.Gosched() // let the writer reach the lock
		}
		return true
	})
	<-done
	if count != n || visited != n {
		t.Fatalf("count %d, visited %d; want %d", count, visited, n)
	}
	if sawWrite < 0 {
		t.Fatalf("a write waited for a count of %d keys to end", n)
	}
	t.Logf("the write went in after %d keys", sawWrite)
}

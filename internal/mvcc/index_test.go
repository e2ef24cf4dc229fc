package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
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
		for gi, g := range ki.gens {
			fmt.Fprintf(&b, " {created %s ver %d revs %v", g.created, g.ver, g.revs)
			if ki.tombstoned(gi) {
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
			return fmt.Sprintf("mod %s created %s version %d", mod, created, ver)
		case "range":
			var out []string
			end := []byte(d.Str(t, "end", ""))
			if d.HasArg("fromkey") {
				end = []byte{0}
			}
			ti.rangeKeys([]byte(d.Str(t, "k", "")), end, at, func(e indexEntry) bool {
				out = append(out, fmt.Sprintf("%s mod %s created %s version %d", e.key, e.mod, e.created, e.ver))
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
		r.put(key, rev, created.Main, ver, 0)
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
		if w := want[i]; !bytes.Equal(ki.key, w.key) || !reflect.DeepEqual(ki.gens, w.gens) ||
			ki.latest != w.latest || ki.deleted != w.deleted {
			t.Fatalf("key %d: restored %q %+v, want %q %+v", i, ki.key, ki.gens, w.key, w.gens)
		}
		i++
		return true
	})
}

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDefragMeasure is a measurement, not a check, and runs only when
// asked (CAIRN_DEFRAG_MEASURE=1): it reports, for cairn and, with
// REFERENCE_ETCD_BINARY set, for stock etcd on the same machine,
//
//   - dbSize and dbSizeInUse after 1, 10, 100 and 1000 puts of 4 KiB;
//
//   - dbSize before and after deleting half of N keys of 4 KiB
//     (CAIRN_DEFRAG_KEYS, default 20000), compacting and defragmenting;
//
//   - the latency of puts (8 writers, 256-byte values) before and during
//     that defragmentation: p50, p99, max, and how many completed.
//
//     CAIRN_DEFRAG_MEASURE=1 REFERENCE_ETCD_BINARY=/root/.cache/etcd-reference/v3.7.3/etcd \
//     CAIRN_E2E_BINARY=/tmp/cairn go test -run TestDefragMeasure -v ./tests/e2e/
func TestDefragMeasure(t *testing.T) {
	if os.Getenv("CAIRN_DEFRAG_MEASURE") == "" {
		t.Skip("a measurement: set CAIRN_DEFRAG_MEASURE=1 to run it")
	}
	keys := 20000
	if v := os.Getenv("CAIRN_DEFRAG_KEYS"); v != "" {
		keys, _ = strconv.Atoi(v)
	}
	eachServer(t, func(t *testing.T) { measureDefrag(t, keys) })
}

// eachServer runs a measurement as a subtest against cairn and, with
// REFERENCE_ETCD_BINARY set, against stock etcd on the same machine, one
// after the other: the harness (newCluster) starts cairnBinary, which is
// the binary measured meanwhile.
func eachServer(t *testing.T, measure func(t *testing.T)) {
	binaries := map[string]string{"cairn": cairnBinary}
	if ref := os.Getenv("REFERENCE_ETCD_BINARY"); ref != "" {
		binaries["etcd"] = ref
	}
	for _, name := range []string{"cairn", "etcd"} {
		bin, ok := binaries[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			saved := cairnBinary
			cairnBinary = bin
			defer func() { cairnBinary = saved }()
			measure(t)
		})
	}
}

func measureDefrag(t *testing.T, keys int) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	// Random values: pebble compresses its tables, bbolt does not, and
	// real values compress less than a repeated letter.
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}

	sizes := func() (int64, int64) {
		st, err := cli.Status(ctxT(t), m.clientURL)
		if err != nil {
			t.Fatal(err)
		}
		return st.DbSize, st.DbSizeInUse
	}
	var line []string
	for i := 1; i <= 1000; i++ {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("seq/%06d", i), random(4096)); err != nil {
			t.Fatal(err)
		}
		if i == 1 || i == 10 || i == 100 || i == 1000 {
			size, inUse := sizes()
			line = append(line, fmt.Sprintf("%d puts: %d (in use %d)", i, size, inUse))
		}
	}
	t.Logf("dbSize after puts of 4 KiB: %s", strings.Join(line, "; "))

	// Fill with 16 writers, then delete half and compact.
	values := make([]string, 64)
	for i := range values {
		values[i] = random(4096)
	}
	var fill sync.WaitGroup
	for w := range 16 {
		fill.Add(1)
		go func() {
			value := values[w]
			defer fill.Done()
			for i := w; i < keys; i += 16 {
				if _, err := cli.Put(ctxT(t), fmt.Sprintf("fill/%06d", i), value); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	fill.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if _, err := cli.Delete(ctxT(t), "seq/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	var rev int64
	for i := 0; i < keys; i++ {
		if i%2 == 0 {
			continue
		}
		resp, err := cli.Delete(ctxT(t), fmt.Sprintf("fill/%06d", i))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := cli.Compact(ctxT(t), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	beforeSize, beforeInUse := sizes()

	// Writers, timed, for a second before the defragmentation and during it.
	type sample struct {
		start time.Time
		took  time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_, err := cli.Put(context.Background(), fmt.Sprintf("load/%d/%d", w, i%100), strings.Repeat("x", 256))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				samples = append(samples, sample{start, time.Since(start)})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // a measurement window, not synchronization
	defragStart := time.Now()
	if _, err := cli.Defragment(ctxT(t), m.clientURL); err != nil {
		t.Fatal(err)
	}
	defragEnd := time.Now()
	close(stop)
	wg.Wait()
	afterSize, afterInUse := sizes()
	t.Logf("%d keys of 4 KiB, half deleted and compacted: dbSize %d (in use %d); defragmented in %v: dbSize %d (in use %d)",
		keys, beforeSize, beforeInUse, defragEnd.Sub(defragStart).Round(time.Millisecond), afterSize, afterInUse)
	var before, during []time.Duration
	for _, s := range samples {
		switch {
		case s.start.Before(defragStart) && s.start.After(defragStart.Add(-time.Second)):
			before = append(before, s.took)
		case !s.start.Before(defragStart) && s.start.Before(defragEnd):
			during = append(during, s.took)
		}
	}
	t.Logf("puts before the defragment (1 s): %s", latencies(before))
	t.Logf("puts started during the defragment: %s", latencies(during))
}

func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))].Round(10 * time.Microsecond) }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(ds), q(0.5), q(0.99), ds[len(ds)-1].Round(10*time.Microsecond))
}

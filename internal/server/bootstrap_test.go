package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/wal"
)

// testConfig is a one-member configuration on dir, validated (defaults
// filled in).
func testConfig(t *testing.T, dir string) Config {
	t.Helper()
	cfg := Config{
		Name:                "default",
		DataDir:             dir,
		AdvertisePeerURLs:   []string{"http://127.0.0.1:2380"},
		AdvertiseClientURLs: []string{"http://127.0.0.1:2379"},
		InitialCluster:      "default=http://127.0.0.1:2380",
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newMember makes a member's storage on a first start and closes it.
func newMember(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	st, err := bootstrap(&cfg, newMetrics())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return cfg
}

// xorMiddle flips 64 bytes in the middle of the first n bytes of path
// (the whole file for n <= 0).
func xorMiddle(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n > len(data) {
		n = len(data)
	}
	mid := max(0, n/2-32)
	for i := mid; i < min(mid+64, len(data)); i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// usedBytes is where the non-zero bytes of a preallocated file end.
func usedBytes(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(data)
	for n > 0 && data[n-1] == 0 {
		n--
	}
	return n
}

// A damaged database fails New with an error naming it, not a nil
// dereference in the cleanup (the named result used to be nil by then);
// pebble's lock is released, so a second try fails the same way.
func TestNewCorruptDatabase(t *testing.T) {
	cfg := newMember(t)
	manifests, err := filepath.Glob(filepath.Join(cfg.dbDir(), "MANIFEST-*"))
	if err != nil || len(manifests) != 1 {
		t.Fatalf("manifests %v, %v", manifests, err)
	}
	xorMiddle(t, manifests[0], 0)
	var first string
	for try := range 2 {
		s, err := New(cfg)
		if err == nil {
			s.Stop()
			t.Fatal("New started on a damaged database")
		}
		if !errors.Is(err, backend.ErrCorrupt) || !strings.Contains(err.Error(), cfg.dbDir()) {
			t.Fatalf("try %d: %v; want backend.ErrCorrupt naming %s", try, err, cfg.dbDir())
		}
		if try == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("the second try failed otherwise (something was left open):\n%v\nthen\n%v", first, err)
		}
	}
}

// A damaged raft WAL fails bootstrap after the backend is open: the
// cleanup closes the backend, so its directory can be opened again.
func TestBootstrapCorruptWAL(t *testing.T) {
	cfg := newMember(t)
	segs, err := filepath.Glob(filepath.Join(cfg.walDir(), "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	// Garbage in the middle of the records (the founding entries and
	// HardState, all synced), not in the zeros after them.
	xorMiddle(t, segs[0], usedBytes(t, segs[0]))
	var first string
	for try := range 2 {
		st, err := bootstrap(&cfg, newMetrics())
		if err == nil {
			st.Close()
			t.Fatal("bootstrap opened a damaged WAL")
		}
		if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), segs[0]) {
			t.Fatalf("try %d: %v; want wal.ErrCorrupt naming %s", try, err, segs[0])
		}
		if try == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("the second try failed otherwise (something was left open):\n%v\nthen\n%v", first, err)
		}
	}
	be, err := backend.Open(cfg.dbDir(), backend.Options{})
	if err != nil {
		t.Fatalf("the backend is still held after bootstrap failed: %v", err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
}

// A data directory that is a file fails with an error naming it.
func TestBootstrapDataDirIsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, path)
	st, err := bootstrap(&cfg, newMetrics())
	if err == nil {
		st.Close()
		t.Fatal("bootstrap used a file as its data directory")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("%v; want the path and the cause", err)
	}
}

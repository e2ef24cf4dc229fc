package apply

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/backend"
)

// A damaged membership record fails Open with an error naming the
// directory, and closes what it opened, so the directory opens again.
func TestOpenDamagedMember(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	be, err := backend.Open(dir, backend.Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b := be.NewBatch()
	b.Set(append(memberPrefix, "x"...), []byte{0xff, 0xff, 0xff})
	if err := b.Commit(1, 1); err != nil {
		t.Fatal(err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		a, err := Open(dir, backend.Options{CacheBytes: 1 << 20}, 1, Metrics{}, nil)
		if err == nil {
			a.Close()
			t.Fatal("Open loaded a damaged member record")
		}
		if !strings.Contains(err.Error(), "loading membership from "+dir) {
			t.Fatalf("%v; want the directory named", err)
		}
	}
}

package version

import (
	"strings"
	"testing"
)

// TestConsistent checks the package's invariant: the cluster, storage and
// API versions follow from the etcd release, as etcd derives them, so that
// a bump of Etcd cannot leave one of them behind unnoticed.
func TestConsistent(t *testing.T) {
	parts := strings.Split(Etcd, ".")
	if len(parts) != 3 {
		t.Fatalf("Etcd = %q, not major.minor.patch", Etcd)
	}
	minor := parts[0] + "." + parts[1]
	for _, c := range []struct{ name, got, want string }{
		{"Cluster", Cluster, minor + ".0"},
		{"Storage", Storage, minor + ".0"},
		{"API", API, minor},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q with Etcd %q: want %q", c.name, c.got, Etcd, c.want)
		}
	}
}

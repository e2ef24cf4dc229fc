package membership

import (
	"errors"
	"testing"
)

// The IDs etcd v3.6 reports for `etcd` started with no flags (member
// 8e9e05c52164694d, cluster cdf818194e3a8c32) and for the three-member
// cluster of its clustering guide, so Cairn's IDs match etcd's.
func TestIDsMatchEtcd(t *testing.T) {
	ms, err := ParseInitialCluster("default=http://localhost:2380", "etcd-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if got := IDString(ms[0].ID); got != "8e9e05c52164694d" {
		t.Errorf("default member ID = %s, want 8e9e05c52164694d", got)
	}
	if got := IDString(ComputeClusterID([]uint64{ms[0].ID})); got != "cdf818194e3a8c32" {
		t.Errorf("default cluster ID = %s, want cdf818194e3a8c32", got)
	}
}

func TestParseInitialCluster(t *testing.T) {
	ms, err := ParseInitialCluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2,a=http://127.0.0.1:3", "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "a" || len(ms[0].PeerURLs) != 2 || ms[1].Name != "b" {
		t.Fatalf("got %+v", ms)
	}
	if ms[0].ID == ms[1].ID || ms[0].ID == 0 {
		t.Fatalf("ids %x %x", ms[0].ID, ms[1].ID)
	}
	for _, bad := range []string{"", "a", "a=ftp://x:1", "a=http://x:1,b=http://x:1", "=http://x:1", "a=http://x:1/p"} {
		if _, err := ParseInitialCluster(bad, "t"); !errors.Is(err, ErrBadInitialCluster) {
			t.Errorf("%q: err = %v, want ErrBadInitialCluster", bad, err)
		}
	}
}

// CheckURL takes the URLs etcd's types.NewURLs takes: unix sockets by a
// path in the host, the path or both (etcd's TestEtcdAdvertiseClientUnix
// serves clients on unix:///tmp/.../etcd-client.sock).
func TestCheckURL(t *testing.T) {
	for _, ok := range []string{
		"http://127.0.0.1:2379", "https://localhost:2380", "http://[::1]:2379/",
		"unix://localhost:2379", "unix:///tmp/etcd/client.sock", "unixs://localhost:2379",
	} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"ftp://127.0.0.1:2379", "http://", "http://127.0.0.1:2379/path", "unix://", "127.0.0.1:2379"} {
		if err := CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) = nil, want an error", bad)
		}
	}
}

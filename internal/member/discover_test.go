package member

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

// A first start with a discovery service asks it once, with its own ID and
// --initial-cluster entries, and founds the cluster it answers; a start
// that stopped between creating the WAL and the founding write asks again;
// a restart with a founded log does not ask. A discovery error fails the
// start in etcd's words, and discovery with --initial-cluster-state
// existing is refused.
func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	const token = "disc-token"
	founders := "b=http://127.0.0.1:2,a=http://127.0.0.1:1,c=http://127.0.0.1:3"
	var asked []string
	cfg := Config{
		Name: "a", Dir: filepath.Join(dir, "member"), InitialCluster: "a=http://127.0.0.1:1",
		InitialClusterToken: token, InitialClusterState: "new",
		AdvertisePeerURLs: []string{"http://127.0.0.1:1"}, MinLeaseTTL: 1,
		Discover: func(id uint64, self string) (string, error) {
			asked = append(asked, membership.IDString(id)+" "+self)
			return founders, nil
		},
	}
	members, err := membership.ParseInitialCluster(founders, token)
	if err != nil {
		t.Fatal(err)
	}
	self := members[slices.IndexFunc(members, func(m membership.Member) bool { return m.Name == "a" })]
	wantAsk := membership.IDString(self.ID) + " a=http://127.0.0.1:1"
	wantCluster := membership.ComputeClusterID(memberIDs(members))

	st := mustOpen(t, cfg)
	if st.MemberID != self.ID || st.ClusterID != wantCluster || len(st.ConfState.Voters) != 3 {
		t.Fatalf("founded member %x of cluster %x with voters %v, want %x of %x with 3",
			st.MemberID, st.ClusterID, st.ConfState.Voters, self.ID, wantCluster)
	}
	st.Close()
	if !slices.Equal(asked, []string{wantAsk}) {
		t.Fatalf("asked %q, want once %q", asked, wantAsk)
	}
	st = mustOpen(t, cfg)
	st.Close()
	if len(asked) != 1 {
		t.Fatalf("a restart asked the discovery service: %q", asked)
	}

	// A first start that stopped right after creating its WAL.
	cfg.Dir = filepath.Join(dir, "interrupted")
	w, err := wal.Create(vfs.OS(), filepath.Join(cfg.Dir, "wal"), wal.Metadata{MemberID: self.ID, ClusterID: wantCluster}, walOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	st = mustOpen(t, cfg)
	if st.MemberID != self.ID || len(st.ConfState.Voters) != 3 {
		t.Fatalf("the interrupted first start finished as member %x with voters %v", st.MemberID, st.ConfState.Voters)
	}
	st.Close()
	if len(asked) != 2 || asked[1] != wantAsk {
		t.Fatalf("the interrupted first start asked %q", asked)
	}

	cfg.Dir = filepath.Join(dir, "refused")
	cfg.Discover = func(uint64, string) (string, error) { return "", errors.New("discovery: cluster is full") }
	if _, err := Open(cfg); err == nil || err.Error() != "failed to join discovery cluster (discovery: cluster is full)" {
		t.Fatalf("a refused discovery: err = %v", err)
	}
	cfg.Dir, cfg.InitialClusterState = filepath.Join(dir, "existing"), "existing"
	cfg.Join = func() (JoinInfo, error) { t.Fatal("asked to join"); return JoinInfo{}, nil }
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "discovery URL should not be set when joining existing initial cluster") {
		t.Fatalf("discovery with --initial-cluster-state existing: err = %v", err)
	}
}

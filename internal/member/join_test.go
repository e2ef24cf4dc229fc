package member

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/membership"
)

// A member started with --initial-cluster-state=existing takes the IDs
// the cluster gave it and starts with no log and no configuration (the
// leader sends it everything). Restarted before anything arrived, it asks
// again, and refuses if the cluster now knows it by another ID.
func TestJoinExisting(t *testing.T) {
	dir := t.TempDir()
	info := JoinInfo{ClusterID: 0xc1, MemberID: 0xd4, Members: []membership.Member{
		{ID: 0xa1, Name: "a", PeerURLs: []string{"http://127.0.0.1:1"}},
		{ID: 0xd4, PeerURLs: []string{"http://127.0.0.1:4"}},
	}}
	asks := 0
	cfg := Config{
		Name: "d", Dir: filepath.Join(dir, "member"), InitialClusterState: "existing",
		AdvertisePeerURLs: []string{"http://127.0.0.1:4"}, MinLeaseTTL: 1,
		Join: func() (JoinInfo, error) { asks++; return info, nil },
	}
	st := mustOpen(t, cfg)
	if st.MemberID != 0xd4 || st.ClusterID != 0xc1 || len(st.Peers) != 1 || st.Peers[0].ID != 0xa1 ||
		len(st.ConfState.Voters)+len(st.ConfState.Learners) != 0 {
		t.Fatalf("joined: member %x cluster %x peers %+v conf %v", st.MemberID, st.ClusterID, st.Peers, st.ConfState)
	}
	if last, _ := st.Raft.LastIndex(); last != 0 {
		t.Fatalf("a joining member's log ends at %d, want empty", last)
	}
	st.Close()

	st = mustOpen(t, cfg)
	if asks != 2 || st.MemberID != 0xd4 || len(st.Peers) != 1 {
		t.Fatalf("rejoin: asked %d times, member %x, peers %+v", asks, st.MemberID, st.Peers)
	}
	st.Close()

	info.MemberID = 0xe5
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "the cluster now knows this member as e5") {
		t.Fatalf("rejoin under another ID: err = %v", err)
	}
	// Started as a founding member instead: the WAL is not its.
	cfg.InitialClusterState, cfg.InitialCluster = "new", "d=http://127.0.0.1:4"
	if _, err := Open(cfg); err == nil {
		t.Fatal("a joiner's empty WAL restarted as a new cluster's founding member: no error")
	}
}

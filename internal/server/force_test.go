package server

import (
	"fmt"
	"testing"
)

// --force-new-cluster recovers the data of a three-member cluster that
// lost two members for good: the survivor, restarted with the flag, leads
// a one-member cluster with the same cluster and member IDs and every key,
// takes writes, and lists itself alone; restarted without the flag it
// goes on so. Snapshots every 5 entries: recovery starts from one, with
// the configuration it records.
func TestForceNewClusterSurvivor(t *testing.T) {
	c := newTestCluster(t, 3, func(_ int, cfg *Config) { cfg.SnapshotCount = 5 })
	c.waitLeader(0)
	s := c.members[0].s
	id, clusterID := s.ID(), s.ClusterID()
	for i := range 20 {
		mustPut(t, s, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	c.stop(1)
	c.stop(2)
	c.stop(0)

	c.cfgs[0].ForceNewCluster = true
	for restart := range 2 {
		c.start(0)
		s = c.members[0].s
		if lead := c.waitLeader(0); lead != id {
			t.Fatalf("restart %d: leader %x, want the survivor %x", restart, lead, id)
		}
		if s.ID() != id || s.ClusterID() != clusterID {
			t.Fatalf("restart %d: member %x of cluster %x, want %x of %x", restart, s.ID(), s.ClusterID(), id, clusterID)
		}
		for i := range 20 {
			if got, want := mustGet(t, s, fmt.Sprintf("k%d", i)), fmt.Sprintf("v%d", i); got != want {
				t.Fatalf("restart %d: k%d = %q, want %q", restart, i, got, want)
			}
		}
		if restart == 1 && mustGet(t, s, "after-0") != "x" {
			t.Fatal("the write taken after the forced restart is lost")
		}
		key := fmt.Sprintf("after-%d", restart)
		mustPut(t, s, key, "x")
		if got := mustGet(t, s, key); got != "x" {
			t.Fatalf("restart %d: %s = %q after writing it", restart, key, got)
		}
		ms, err := s.MemberList(ctxTimeout(t), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].ID != id || ms[0].Name != "m0" {
			t.Fatalf("restart %d: members %+v, want m0 (%x) alone", restart, ms, id)
		}
		c.stop(0)
		c.cfgs[0].ForceNewCluster = false
	}
}

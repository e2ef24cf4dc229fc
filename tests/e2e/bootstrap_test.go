package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

// A first start that stopped right after creating its WAL (before writing
// the founding entries into it) is finished by the next start: the member
// forms its cluster instead of hanging with an empty log.
func TestInterruptedFirstStart(t *testing.T) {
	c := newClusterWith(t, 3, func(m *member) {
		if m.name != "m2" {
			return
		}
		// What the interrupted start left: an empty WAL with this
		// member's identity.
		var initial, token string
		for i, a := range m.args {
			switch a {
			case "--initial-cluster":
				initial = m.args[i+1]
			case "--initial-cluster-token":
				token = m.args[i+1]
			}
		}
		members, err := membership.ParseInitialCluster(initial, token)
		if err != nil {
			t.Fatal(err)
		}
		var self uint64
		var ids []uint64
		for _, mm := range members {
			ids = append(ids, mm.ID)
			if mm.Name == m.name {
				self = mm.ID
			}
		}
		w, err := wal.Create(vfs.OS(), filepath.Join(m.dataDir, "member", "wal"),
			wal.Metadata{MemberID: self, ClusterID: membership.ComputeClusterID(ids)}, wal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
	})
	if log, err := os.ReadFile(c.members[2].logPath); err != nil || !strings.Contains(string(log), "bootstrapping again") {
		t.Fatalf("m2 did not take the interrupted-start path (%v)", err)
	}
	put, err := c.members[0].client().Put(ctxT(t), "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	get, err := c.members[2].client().Get(ctxT(t), "k")
	if err != nil || len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("on the member whose first start was interrupted: %+v, %v", get, err)
	}
	ml, err := c.members[2].client().MemberList(ctxT(t))
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("members %+v, %v", ml, err)
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/backend"
)

// corruptValue changes, behind the member's back (it must be down), the
// value stored for the put at revision rev in its database, keeping the
// record decodable: the member starts, serves the changed value, and its
// HashKV differs from its peers'.
func corruptValue(t *testing.T, m *member, rev int64) {
	t.Helper()
	if m.proc != nil {
		t.Fatalf("%s is running", m.name)
	}
	b, err := backend.Open(filepath.Join(m.dataDir, "member", "db"), backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	// The store's revision key: 'r', main and sub big-endian (see
	// internal/mvcc's doc.go).
	key := make([]byte, 17)
	key[0] = 'r'
	for i := range 8 {
		key[8-i] = byte(rev >> (8 * i))
	}
	view := b.NewReadView()
	v, ok, err := view.Get(key)
	view.Close()
	if err != nil || !ok {
		t.Fatalf("%s has no put at revision %d: %v", m.name, rev, err)
	}
	kv := &mvccpb.KeyValue{}
	if err := proto.Unmarshal(v, kv); err != nil {
		t.Fatal(err)
	}
	kv.Value = append(kv.Value, " (corrupted)"...)
	data, err := proto.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	batch := b.NewBatch()
	batch.Set(key, data)
	if err := batch.CommitMaintenance(); err != nil {
		t.Fatal(err)
	}
}

// stop stops the member with SIGINT (which syncs its database) and waits
// for it to exit.
func (m *member) stop() {
	m.t.Helper()
	m.proc.interrupt(m.t)
	m.proc = nil
}

// putKeys writes n keys (revisions 2 to n+1 of a new cluster).
func putKeys(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	for i := range n {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("k%d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// logged reports whether some member logged a line with message msg.
func (c *cluster) logged(msg string) bool {
	for _, m := range c.members {
		if data, err := os.ReadFile(m.logPath); err == nil && strings.Contains(string(data), `"msg":"`+msg+`"`) {
			return true
		}
	}
	return false
}

// aFollower returns a member that does not lead, once the cluster agrees
// on a leader.
func (c *cluster) aFollower() *member {
	return c.members[(c.waitLeader()+1)%len(c.members)]
}

// waitCorruptAlarm waits until the cluster's alarms are exactly CORRUPT for
// member id, then checks that writes are refused with etcd's error and
// reads still served.
func waitCorruptAlarm(t *testing.T, cli *clientv3.Client, id uint64) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for {
		resp, err := cli.AlarmList(ctxT(t))
		if err == nil && len(resp.Alarms) > 0 {
			if len(resp.Alarms) != 1 || resp.Alarms[0].Alarm != pb.AlarmType_CORRUPT || resp.Alarms[0].MemberID != id {
				t.Fatalf("alarms %v, want CORRUPT of %x", resp.Alarms, id)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CORRUPT alarm within %v (last: %v, %v)", waitDeadline, resp, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a real cluster
	}
	if _, err := cli.Put(ctxT(t), "after", "alarm"); err == nil || !strings.Contains(err.Error(), "etcdserver: corrupt cluster") {
		t.Fatalf("a put under the CORRUPT alarm: %v, want etcdserver: corrupt cluster", err)
	}
	if _, err := cli.Get(ctxT(t), "k0"); err != nil {
		t.Fatalf("a read under the CORRUPT alarm: %v", err)
	}
}

// With InitialCorruptCheck, a restarting member compares its HashKV with
// its peers' before it serves: a healthy one starts, one whose data was
// changed behind its back exits 1 with etcd's error.
func TestInitialCorruptCheck(t *testing.T) {
	c := newCluster(t, 3, "--feature-gates=InitialCorruptCheck=true")
	cli := c.client()
	waitMembersPublished(t, cli, 3) // their records are in every store
	putKeys(t, cli, 5)
	// Members that applied the same log store the same: Maintenance.Hash
	// (over everything each keeps) agrees, as HashKV does.
	var hashes []uint32
	for _, m := range c.members {
		mcli := m.client()
		if _, err := mcli.Get(ctxT(t), "k0"); err != nil { // linearizable: m has applied the puts
			t.Fatal(err)
		}
		resp, err := pb.NewMaintenanceClient(mcli.ActiveConnection()).Hash(ctxT(t), &pb.HashRequest{})
		if err != nil {
			t.Fatalf("%s: Hash: %v", m.name, err)
		}
		if resp.Header.Revision != 6 || resp.Hash == 0 {
			t.Fatalf("%s: Hash %+v", m.name, resp)
		}
		hashes = append(hashes, resp.Hash)
	}
	if hashes[0] != hashes[1] || hashes[0] != hashes[2] {
		t.Fatalf("members' Hash differ: %v", hashes)
	}
	healthy, corrupt := c.members[1], c.members[2]
	healthy.restart()
	c.waitLeader()
	if data, _ := os.ReadFile(healthy.logPath); !strings.Contains(string(data), "initial corruption checking passed; no corruption") {
		t.Fatal("the healthy member's restart did not pass the initial check")
	}
	id := memberID(t, corrupt)
	corrupt.stop()
	corruptValue(t, corrupt, 4)
	corrupt.start()
	select {
	case <-corrupt.proc.exited:
	case <-time.After(waitDeadline):
		t.Fatalf("the corrupted member still runs after %v", waitDeadline)
	}
	if code := corrupt.proc.exitCode(t); code != 1 {
		t.Fatalf("the corrupted member exited %d, want 1", code)
	}
	data, _ := os.ReadFile(corrupt.logPath)
	if want := fmt.Sprintf("%x found data inconsistency with peers", id); !strings.Contains(string(data), want) ||
		!strings.Contains(string(data), "found different hash values from remote peer") {
		t.Fatalf("the corrupted member's log lacks %q", want)
	}
	corrupt.proc = nil
}

// The leader's periodic check (--corrupt-check-time) finds a follower
// whose data changed behind its back and raises its CORRUPT alarm, which
// stops writes.
func TestPeriodicCorruptCheck(t *testing.T) {
	c := newCluster(t, 3, "--corrupt-check-time=200ms")
	cli := c.client()
	putKeys(t, cli, 5)
	m := c.aFollower()
	id := memberID(t, m)
	m.stop()
	corruptValue(t, m, 6)
	m.start()
	waitCorruptAlarm(t, cli, id)
	if !c.logged("same compact revision then hashes must match") {
		t.Error("no member logged etcd's line for the mismatch")
	}
}

// The leader's compaction hash check (CompactHashCheck) compares the hash
// each member took at the same compaction, and raises the CORRUPT alarm
// of the member outside the majority.
func TestCompactHashCheck(t *testing.T) {
	c := newCluster(t, 3, "--feature-gates=CompactHashCheck=true", "--compact-hash-check-time=200ms")
	cli := c.client()
	putKeys(t, cli, 10)
	m := c.aFollower()
	id := memberID(t, m)
	m.stop()
	corruptValue(t, m, 3)
	m.start()
	c.waitLeader()
	// Every member compacts as it applies the entry, and keeps the hash.
	if _, err := cli.Compact(context.Background(), 5, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	waitCorruptAlarm(t, cli, id)
	if !c.logged("Detected compaction hash mismatch") {
		t.Error("no member logged etcd's line for the mismatch")
	}
}

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const errNoSpace = "etcdserver: mvcc: database space exceeded"

// fillToQuota puts 16 KiB values through cli until the member refuses one
// for want of space, and returns how many it took.
func fillToQuota(t *testing.T, cli *clientv3.Client, limit int) int {
	t.Helper()
	value := strings.Repeat("v", 16<<10)
	for i := 0; i < limit; i++ {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("fill/%04d", i), value); err != nil {
			if !strings.Contains(err.Error(), errNoSpace) {
				t.Fatalf("put %d: %v, want %q", i, err, errNoSpace)
			}
			return i
		}
	}
	t.Fatalf("no NOSPACE after %d puts of 16 KiB", limit)
	return 0
}

// A member over its quota raises NOSPACE through raft: every member lists
// it and refuses writes, a restart keeps it, deletes and compactions go
// through, and once compaction and defragmentation have freed the space,
// `alarm disarm` lets writes through again.
func TestNoSpaceAlarm(t *testing.T) {
	c := newCluster(t, 3, "--quota-backend-bytes", fmt.Sprint(256<<10))
	m0 := c.members[0]
	// 256 KiB, less what the cluster holds already, is some 15 values
	// of 16 KiB; their cost (etcd's: key, value and 256 bytes) counts.
	n := fillToQuota(t, m0.client(), 40)
	if n < 5 {
		t.Fatalf("NOSPACE after %d puts of 16 KiB under a 256 KiB quota", n)
	}
	st, err := memberStatus(m0)
	if err != nil {
		t.Fatal(err)
	}
	id := st.Header.MemberId
	want := fmt.Sprintf("memberID:%d alarm:NOSPACE\n", id)
	for i, m := range c.members {
		ctlOK(t, m, want, "alarm", "list")
		// Even a small put: the alarm is latched, whatever the size.
		if _, err := m.client().Put(ctxT(t), "small", "x"); err == nil || !strings.Contains(err.Error(), errNoSpace) {
			t.Fatalf("member %d: put under NOSPACE: %v", i, err)
		}
		if _, err := m.client().Grant(ctxT(t), 10); err == nil || !strings.Contains(err.Error(), errNoSpace) {
			t.Fatalf("member %d: lease grant under NOSPACE: %v", i, err)
		}
	}
	// etcd's series: the alarm by member and type, the quota, the sizes.
	sc := scrapeMetrics(t, c.members[2])
	sc.equal(t, 1, "etcd_debugging_server_alarms", "server_id", strconv.FormatUint(id, 16), "alarm_type", "NOSPACE")
	sc.equal(t, 256<<10, "etcd_server_quota_backend_bytes")
	sc.atLeast(t, float64(n*16<<10), "etcd_mvcc_db_total_size_in_bytes")
	sc.atLeast(t, float64(n*16<<10), "etcd_mvcc_db_total_size_in_use_in_bytes")
	c.members[1].restart()
	c.waitLeader()
	ctlOK(t, c.members[1], want, "alarm", "list")
	if _, err := c.members[1].client().Put(ctxT(t), "small", "x"); err == nil || !strings.Contains(err.Error(), errNoSpace) {
		t.Fatalf("put after a restart under NOSPACE: %v", err)
	}
	if st1, err := memberStatus(c.members[1]); err != nil || len(st1.Errors) != 1 || !strings.Contains(st1.Errors[0], "alarm:NOSPACE") {
		t.Fatalf("status errors %q (%v)", st1.Errors, err)
	}
	// Freeing space is allowed: deletes and compaction.
	cli := c.client()
	del, err := cli.Delete(ctxT(t), "fill/", clientv3.WithPrefix())
	if err != nil || del.Deleted != int64(n) {
		t.Fatalf("delete under NOSPACE: %v, %v", del, err)
	}
	if _, err := cli.Compact(ctxT(t), del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact under NOSPACE: %v", err)
	}
	out := ctl(t, m0, "", nil, "defrag", "--cluster")
	if out.code != 0 || strings.Count(out.stdout, "Finished defragmenting etcd member[") != 3 {
		t.Fatalf("defrag --cluster: exit %d, %q %q", out.code, out.stdout, out.stderr)
	}
	after, err := memberStatus(m0)
	if err != nil {
		t.Fatal(err)
	}
	if after.DbSize >= st.DbSize/2 || after.DbSizeInUse > after.DbSize {
		t.Fatalf("dbSize %d (in use %d) after deleting, compacting and defragmenting, %d before", after.DbSize, after.DbSizeInUse, st.DbSize)
	}
	sc = scrapeMetrics(t, m0)
	sc.equal(t, 1, "etcd_disk_backend_defrag_duration_seconds")
	sc.equal(t, 0, "etcd_disk_defrag_inflight")
	if size, _ := sc.value("etcd_mvcc_db_total_size_in_bytes"); size >= float64(st.DbSize/2) {
		t.Fatalf("etcd_mvcc_db_total_size_in_bytes %v after defragmenting, dbSize %d before", size, st.DbSize)
	}
	ctlOK(t, m0, want, "alarm", "disarm")
	ctlOK(t, c.members[2], "", "alarm", "list")
	for i, m := range c.members {
		if _, err := m.client().Put(ctxT(t), "small", "x"); err != nil {
			t.Fatalf("member %d: put after disarm: %v", i, err)
		}
	}
}

// A CORRUPT alarm raised through the API refuses what etcd refuses (every
// key-value and lease change; reads go on), fails /health and /readyz,
// and clears with `alarm disarm`.
func TestCorruptAlarm(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	lease, err := cli.Grant(ctxT(t), 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	mc := pb.NewMaintenanceClient(cli.ActiveConnection())
	resp, err := mc.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 42, Alarm: pb.AlarmType_CORRUPT})
	if err != nil || len(resp.Alarms) != 1 || resp.Alarms[0].MemberID != 42 || resp.Alarms[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("activate: %v, %v", resp, err)
	}
	const errCorrupt = "etcdserver: corrupt cluster"
	for name, do := range map[string]func() error{
		"put":    func() error { _, err := cli.Put(ctxT(t), "k", "w"); return err },
		"delete": func() error { _, err := cli.Delete(ctxT(t), "k"); return err },
		"txn": func() error {
			_, err := cli.Txn(ctxT(t)).Then(clientv3.OpDelete("k")).Commit()
			return err
		},
		"compact": func() error { _, err := cli.Compact(ctxT(t), 1); return err },
		"grant":   func() error { _, err := cli.Grant(ctxT(t), 10); return err },
		"revoke":  func() error { _, err := cli.Revoke(ctxT(t), lease.ID); return err },
	} {
		if err := do(); err == nil || !strings.Contains(err.Error(), errCorrupt) {
			t.Errorf("%s under CORRUPT: %v, want %q", name, err, errCorrupt)
		}
	}
	if got, err := cli.Get(ctxT(t), "k"); err != nil || len(got.Kvs) != 1 {
		t.Fatalf("get under CORRUPT: %v, %v", got, err)
	}
	if code, body, _ := httpGet(t, m.clientURL+"/health"); code != 503 || body != `{"health":"false","reason":"ALARM CORRUPT"}`+"\n" {
		t.Errorf("/health under CORRUPT: %d %q", code, body)
	}
	if code, body, _ := httpGet(t, m.clientURL+"/readyz"); code != 503 || !strings.Contains(body, "[-]data_corruption failed: alarm activated: CORRUPT\n") {
		t.Errorf("/readyz under CORRUPT: %d %q", code, body)
	}
	ctlOK(t, m, "memberID:42 alarm:CORRUPT\n", "alarm", "disarm")
	if _, err := cli.Put(ctxT(t), "k", "w"); err != nil {
		t.Fatalf("put after disarm: %v", err)
	}
}

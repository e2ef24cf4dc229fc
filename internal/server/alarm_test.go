package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// waitAlarms waits until member s has applied exactly want alarms.
func waitAlarms(t *testing.T, s *Server, want int) []*pb.AlarmMember {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := s.Alarms()
		if len(got) == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %x holds alarms %v, want %d", s.ID(), got, want)
		}
		time.Sleep(10 * time.Millisecond) // a polling interval
	}
}

// activateAlarm (what the corruption checks call) raises the alarm on
// every member: each refuses writes, a restart keeps it, and disarming it
// through Alarm lets writes through again.
func TestActivateAlarmLatchesClusterWide(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.waitLeader(0)
	s0 := c.members[0].s
	mustPut(t, s0, "k", "v")
	if err := s0.activateAlarm(ctxTimeout(t), 0xabc, pb.AlarmType_CORRUPT); err != nil {
		t.Fatal(err)
	}
	// Applied here before activateAlarm returned.
	if got := s0.Alarms(); len(got) != 1 || got[0].MemberID != 0xabc || got[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("alarms after activateAlarm: %v", got)
	}
	for i := range 3 {
		s := c.members[i].s
		waitAlarms(t, s, 1)
		if _, err := s.Put(ctxTimeout(t), &pb.PutRequest{Key: []byte("k"), Value: []byte("w")}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("member %d: put under CORRUPT: %v", i, err)
		}
		if _, err := s.DeleteRange(ctxTimeout(t), &pb.DeleteRangeRequest{Key: []byte("k")}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("member %d: delete under CORRUPT: %v", i, err)
		}
		// Reads are served (etcd's reads do not go through its applier).
		if got := mustGet(t, s, "k"); got != "v" {
			t.Fatalf("member %d: k = %q", i, got)
		}
		if st := s.Status(); len(st.Errors) != 1 || st.Errors[0] != "memberID:2748 alarm:CORRUPT" {
			t.Fatalf("member %d: status errors %q", i, st.Errors)
		}
	}
	c.stop(2)
	c.start(2)
	c.waitLeader(2)
	waitAlarms(t, c.members[2].s, 1)
	resp, err := s0.Alarm(ctxTimeout(t), &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 0xabc, Alarm: pb.AlarmType_CORRUPT})
	if err != nil || len(resp.Alarms) != 1 {
		t.Fatalf("disarm: %v, %v", resp, err)
	}
	for i := range 3 {
		waitAlarms(t, c.members[i].s, 0)
	}
	mustPut(t, c.members[2].s, "k", "w")
}

// A member over its own quota raises NOSPACE when it applies a write,
// even one proposed through a member under its quota (etcd's quota
// check at apply time): the cluster stops taking writes.
func TestFollowerOverQuotaRaisesNoSpace(t *testing.T) {
	c := newTestCluster(t, 3, func(i int, cfg *Config) {
		if i == 1 {
			cfg.QuotaBackendBytes = 64 << 10
		}
	})
	c.waitLeader(0)
	s0, s1 := c.members[0].s, c.members[1].s
	value := make([]byte, 16<<10)
	var err error
	for i := 0; i < 40 && err == nil; i++ {
		_, err = s0.Put(ctxTimeout(t), &pb.PutRequest{Key: []byte(fmt.Sprintf("k%d", i)), Value: value})
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("40 puts of 16 KiB through a member with the default quota, one member at 64 KiB: %v", err)
	}
	got := waitAlarms(t, s0, 1)
	if got[0].MemberID != s1.ID() || got[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms %v, want member %x's NOSPACE", got, s1.ID())
	}
}

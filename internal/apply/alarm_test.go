package apply

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// applyReq applies r as the entry at index and returns its result.
func applyReq(t *testing.T, a *Applier, index uint64, r *pb.InternalRaftRequest) Result {
	t.Helper()
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	res, ok, err := a.Apply(raftpb.Entry{Index: index, Term: 1, Type: raftpb.EntryNormal, Data: data})
	if err != nil || !ok {
		t.Fatalf("entry %d: applied %v, %v", index, ok, err)
	}
	return res
}

func alarmReq(action pb.AlarmRequest_AlarmAction, id uint64, at pb.AlarmType) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: action, MemberID: id, Alarm: at}}
}

func alarmsString(ms []*pb.AlarmMember) string {
	s := ""
	for _, m := range ms {
		s += fmt.Sprintf("memberID:%d alarm:%v ;", m.MemberID, m.Alarm)
	}
	return s
}

// The answers etcd's alarm store gives, and its persistence across a
// reopen and an image install.
func TestAlarmsApplyAndPersist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	a, err := Open(dir, backend.Options{CacheBytes: 1 << 20}, 1, Metrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := uint64(0)
	next := func(r *pb.InternalRaftRequest) Result { idx++; return applyReq(t, a, idx, r) }
	answer := func(r *pb.InternalRaftRequest) string {
		res := next(r)
		if res.Err != nil {
			t.Fatalf("%v: %v", r, res.Err)
		}
		return alarmsString(res.Resp.(*pb.AlarmResponse).Alarms)
	}
	for _, tc := range []struct {
		req  *pb.InternalRaftRequest
		want string
	}{
		// NONE is no alarm to raise; clearing what is not raised answers nothing.
		{alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NONE), ""},
		{alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_NOSPACE), ""},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE), "memberID:2 alarm:NOSPACE ;"},
		// Raising it again answers it again.
		{alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE), "memberID:2 alarm:NOSPACE ;"},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_CORRUPT), "memberID:1 alarm:CORRUPT ;"},
		// GET filters by type, never by member.
		{alarmReq(pb.AlarmRequest_GET, 7, pb.AlarmType_NONE), "memberID:2 alarm:NOSPACE ;memberID:1 alarm:CORRUPT ;"},
		{alarmReq(pb.AlarmRequest_GET, 7, pb.AlarmType_CORRUPT), "memberID:1 alarm:CORRUPT ;"},
		{alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_CORRUPT), "memberID:1 alarm:CORRUPT ;"},
	} {
		if got := answer(tc.req); got != tc.want {
			t.Fatalf("%v: answered %q, want %q", tc.req.Alarm, got, tc.want)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err = Open(dir, backend.Options{CacheBytes: 1 << 20}, 1, Metrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := alarmsString(a.Alarms(pb.AlarmType_NONE)); got != "memberID:2 alarm:NOSPACE ;" {
		t.Fatalf("after a reopen, alarms %q", got)
	}
	// A member that installs an image gets the image's alarms.
	b := openApplier(t)
	applyReq(t, b, 1, alarmReq(pb.AlarmRequest_ACTIVATE, 9, pb.AlarmType_CORRUPT))
	restoreFrom(t, b, a)
	if got := alarmsString(b.Alarms(pb.AlarmType_NONE)); got != "memberID:2 alarm:NOSPACE ;" {
		t.Fatalf("after an image install, alarms %q", got)
	}
}

// What NOSPACE and CORRUPT refuse, as etcd's capped and corrupt appliers.
func TestAlarmRefusals(t *testing.T) {
	put := &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}
	del := &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}
	txnPut := &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: put.Put}}}}}
	txnDel := &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: del.DeleteRange}}}}}
	compact := &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 1}}
	grant := &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 10}}
	revoke := &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 5}}
	for _, tc := range []struct {
		alarm pb.AlarmType
		req   *pb.InternalRaftRequest
		want  error
	}{
		{pb.AlarmType_NOSPACE, put, ErrNoSpace},
		{pb.AlarmType_NOSPACE, txnPut, ErrNoSpace},
		{pb.AlarmType_NOSPACE, grant, ErrNoSpace},
		{pb.AlarmType_NOSPACE, del, nil},
		{pb.AlarmType_NOSPACE, txnDel, nil},
		{pb.AlarmType_NOSPACE, compact, nil},
		{pb.AlarmType_NOSPACE, revoke, nil},
		{pb.AlarmType_CORRUPT, put, ErrCorrupt},
		{pb.AlarmType_CORRUPT, del, ErrCorrupt},
		{pb.AlarmType_CORRUPT, txnDel, ErrCorrupt},
		{pb.AlarmType_CORRUPT, compact, ErrCorrupt},
		{pb.AlarmType_CORRUPT, grant, ErrCorrupt},
		{pb.AlarmType_CORRUPT, revoke, ErrCorrupt},
	} {
		a := openApplier(t)
		applyReq(t, a, 1, put)
		applyReq(t, a, 2, grant)
		applyReq(t, a, 3, alarmReq(pb.AlarmRequest_ACTIVATE, 1, tc.alarm))
		res := applyReq(t, a, 4, tc.req)
		if !errors.Is(res.Err, tc.want) {
			t.Errorf("%v under %v: %v, want %v", tc.req, tc.alarm, res.Err, tc.want)
		}
		// Refused or not, the entry is applied.
		if ci := a.ConsistentIndex(); ci != 4 {
			t.Errorf("consistent index %d after entry 4", ci)
		}
		// Cleared, the alarm refuses nothing more.
		applyReq(t, a, 5, alarmReq(pb.AlarmRequest_DEACTIVATE, 1, tc.alarm))
		if res := applyReq(t, a, 6, tc.req); errors.Is(res.Err, ErrNoSpace) || errors.Is(res.Err, ErrCorrupt) {
			t.Errorf("%v after %v cleared: %v", tc.req, tc.alarm, res.Err)
		}
	}
}

func TestCost(t *testing.T) {
	put := &pb.PutRequest{Key: []byte("k"), Value: make([]byte, 4096)}
	op := func(p *pb.PutRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
	}
	small := &pb.PutRequest{Key: []byte("s")}
	for _, tc := range []struct {
		req  any
		want int
	}{
		{put, 4353},
		{&pb.LeaseGrantRequest{TTL: 5}, 64},
		{&pb.TxnRequest{Success: []*pb.RequestOp{op(put), op(small)}, Failure: []*pb.RequestOp{op(small)}}, 4353 + 257},
		{&pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{op(put)}}}}}}, 4353},
		{&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}}}}, 0},
		{&pb.DeleteRangeRequest{}, 0},
	} {
		if got := Cost(tc.req); got != tc.want {
			t.Errorf("Cost(%v) = %d, want %d", tc.req, got, tc.want)
		}
	}
}

// An alarm list is applied while a read holds the store (View): it
// changes nothing, and waiting for the read would hold up every entry
// after it. etcdctl's endpoint health sends one through raft.
func TestAlarmListDoesNotWaitForReads(t *testing.T) {
	a := openApplier(t)
	applyReq(t, a, 1, alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE))
	letGo := holdStore(t, a)
	data, err := proto.Marshal(alarmReq(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE))
	if err != nil {
		t.Fatal(err)
	}
	type applied struct {
		res Result
		err error
	}
	listed := make(chan applied, 1)
	go func() {
		res, _, err := a.Apply(raftpb.Entry{Index: 2, Term: 1, Type: raftpb.EntryNormal, Data: data})
		listed <- applied{res, err}
	}()
	select {
	case got := <-listed:
		if got.err != nil {
			t.Errorf("alarm list: %v", got.err)
		} else if s := alarmsString(got.res.Resp.(*pb.AlarmResponse).Alarms); s != "memberID:2 alarm:NOSPACE ;" {
			t.Errorf("alarm list answered %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Error("the alarm list was not applied while a read held the store")
	}
	letGo()
	if t.Failed() {
		<-listed // applied once the read let go
	}
}

// TestMembershipAndAlarmsDoNotWaitForReads: the entries that change the
// members, the configuration or the alarms are applied while a long read
// holds the store (they held the applier's lock exclusively, and so held
// up every entry after them until the read ended), and readers of the
// members, the configuration and the alarms see them at once.
func TestMembershipAndAlarmsDoNotWaitForReads(t *testing.T) {
	a := openApplier(t)
	founding := membership.Member{ID: 1, Name: "a", PeerURLs: []string{"http://a:2380"}}
	applyCC(t, a, 1, raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: 1}, &membership.ChangeContext{Member: founding})
	defer holdStore(t, a)()
	learner := membership.ChangeContext{Member: membership.Member{ID: 2, PeerURLs: []string{"http://b:2380"}, IsLearner: true}}
	addLearner := raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: 2, Context: learner.Marshal()}
	remove := raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 2}
	entries := []struct {
		name  string
		entry raftpb.Entry
		check func() bool
	}{
		{"member attributes", normalEntry(t, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID: 1, MemberAttributes: &membershippb.Attributes{Name: "a", ClientUrls: []string{"http://a:2379"}}}}),
			func() bool { m, _ := a.Member(1); return len(m.ClientURLs) == 1 }},
		{"alarm raised", normalEntry(t, alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NOSPACE)),
			func() bool { return len(a.Alarms(pb.AlarmType_NOSPACE)) == 1 }},
		{"alarm cleared", normalEntry(t, alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_NOSPACE)),
			func() bool { return len(a.Alarms(pb.AlarmType_NONE)) == 0 }},
		{"learner added", raftpb.Entry{Type: raftpb.EntryConfChange, Term: 1,
			Data: addLearner.Marshal()},
			func() bool { return a.ConfState().IsLearner(2) }},
		{"member removed", raftpb.Entry{Type: raftpb.EntryConfChange, Term: 1,
			Data: remove.Marshal()},
			func() bool { return a.IsRemoved(2) && len(a.Members()) == 1 }},
	}
	for i, c := range entries {
		c.entry.Index = uint64(i + 2)
		applied := make(chan error, 1)
		go func() {
			_, _, err := a.Apply(c.entry)
			applied <- err
		}()
		select {
		case err := <-applied:
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !c.check() {
				t.Fatalf("%s: applied, but not seen: members %+v, alarms %v, conf %v", c.name, a.Members(), a.Alarms(pb.AlarmType_NONE), a.ConfState())
			}
		case <-time.After(30 * time.Second):
			// The read lets go when the test ends; the apply then ends
			// before the applier closes.
			t.Errorf("%s: not applied while a read held the store", c.name)
			return
		}
	}
}

// normalEntry is a normal entry carrying r (its index left to set).
func normalEntry(t *testing.T, r *pb.InternalRaftRequest) raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return raftpb.Entry{Term: 1, Type: raftpb.EntryNormal, Data: data}
}

// holdStore starts a read that holds a's store (a View, as a long range
// is) until the returned function is called, which waits for its end.
func holdStore(t *testing.T, a *Applier) (letGo func()) {
	t.Helper()
	reading, release := make(chan struct{}), make(chan struct{})
	viewed := make(chan error)
	go func() {
		viewed <- a.View(func(*mvcc.Store) error {
			close(reading)
			<-release
			return nil
		})
	}()
	<-reading
	return func() {
		close(release)
		if err := <-viewed; err != nil {
			t.Error(err)
		}
	}
}

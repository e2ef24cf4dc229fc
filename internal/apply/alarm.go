package apply

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// Refusals of an active alarm, with etcd's messages.
var (
	// ErrNoSpace refuses what grows the store while a NOSPACE alarm is
	// active (and is what a member over its quota answers before
	// proposing).
	ErrNoSpace = errors.New("etcdserver: mvcc: database space exceeded")
	// ErrCorrupt refuses every key-value and lease change while a
	// CORRUPT alarm is active.
	ErrCorrupt = errors.New("etcdserver: corrupt cluster")
)

var alarmPrefix = []byte("c/alarm/")

// Per-request quota costs, etcd's estimates of what a request adds to the
// backend (its storage.BackendQuota): what a key's metadata and a lease
// take beyond the key and value bytes.
const (
	kvOverheadBytes    = 256
	leaseOverheadBytes = 64
)

// Cost is what req may add to the backend, as etcd's quota counts it:
// a put, its key and value plus kvOverheadBytes; a txn, the dearer of its
// two branches (nested txns counted in); a lease grant, leaseOverheadBytes.
// Anything else, 0: it cannot grow the store past its quota.
//
//	Put{key "k", 4096-byte value}            -> 256+1+4096 = 4353
//	Txn{success: [Put 4353, Delete], failure: [Put 300]} -> 4353
func Cost(req any) int {
	switch r := req.(type) {
	case *pb.PutRequest:
		return kvOverheadBytes + len(r.Key) + len(r.Value)
	case *pb.TxnRequest:
		return max(opsCost(r.Success), opsCost(r.Failure))
	case *pb.LeaseGrantRequest:
		return leaseOverheadBytes
	}
	return 0
}

func opsCost(ops []*pb.RequestOp) int {
	total := 0
	for _, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestPut:
			total += Cost(v.RequestPut)
		case *pb.RequestOp_RequestTxn:
			total += Cost(v.RequestTxn)
		}
	}
	return total
}

// alarmRefusal is the refusal r gets while the alarms in active are
// raised, or nil. As etcd's appliers (CORRUPT's wrapping NOSPACE's):
//
//	CORRUPT  every Put, DeleteRange, Txn, Compaction, LeaseGrant, LeaseRevoke
//	NOSPACE  every Put and LeaseGrant, and a Txn that puts (Cost > 0)
//
// Lease checkpoints, membership and alarms themselves go through.
func alarmRefusal(r *pb.InternalRaftRequest, active map[pb.AlarmType]map[uint64]bool) error {
	if len(active[pb.AlarmType_CORRUPT]) > 0 &&
		(r.Put != nil || r.DeleteRange != nil || r.Txn != nil || r.Compaction != nil || r.LeaseGrant != nil || r.LeaseRevoke != nil) {
		return ErrCorrupt
	}
	if len(active[pb.AlarmType_NOSPACE]) > 0 &&
		(r.Put != nil || r.LeaseGrant != nil || r.Txn != nil && Cost(r.Txn) > 0) {
		return ErrNoSpace
	}
	return nil
}

// alarmKey is where an alarm is kept: "c/alarm/" + the member's ID in 16
// hex digits + "/" + the type's number (NOSPACE 1, CORRUPT 2).
func alarmKey(memberID uint64, t pb.AlarmType) []byte {
	return fmt.Appendf(append([]byte(nil), alarmPrefix...), "%016x/%d", memberID, int32(t))
}

func parseAlarmKey(k []byte) (memberID uint64, t pb.AlarmType, err error) {
	idHex, num, ok := strings.Cut(string(k[len(alarmPrefix):]), "/")
	if !ok {
		return 0, 0, fmt.Errorf("apply: malformed alarm key %q", k)
	}
	if memberID, err = strconv.ParseUint(idHex, 16, 64); err != nil {
		return 0, 0, fmt.Errorf("apply: malformed alarm key %q: %w", k, err)
	}
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("apply: malformed alarm key %q: %w", k, err)
	}
	return memberID, pb.AlarmType(n), nil
}

// loadAlarms reads the alarms the backend keeps.
func loadAlarms(view *backend.ReadView) (map[pb.AlarmType]map[uint64]bool, error) {
	alarms := map[pb.AlarmType]map[uint64]bool{}
	var parseErr error
	err := view.Scan(alarmPrefix, prefixEnd(alarmPrefix), func(k, _ []byte) bool {
		var id uint64
		var t pb.AlarmType
		if id, t, parseErr = parseAlarmKey(k); parseErr != nil {
			return false
		}
		addAlarm(alarms, id, t)
		return true
	})
	return alarms, errors.Join(err, parseErr)
}

func addAlarm(alarms map[pb.AlarmType]map[uint64]bool, id uint64, t pb.AlarmType) {
	if alarms[t] == nil {
		alarms[t] = map[uint64]bool{}
	}
	alarms[t][id] = true
}

// Alarms returns the active alarms of type t (NONE: of every type), by
// type then member ID.
func (a *Applier) Alarms(t pb.AlarmType) []*pb.AlarmMember {
	a.meta.RLock()
	defer a.meta.RUnlock()
	return alarmsLocked(a.alarms, t)
}

// REQUIRES: the map's guard held.
func alarmsLocked(alarms map[pb.AlarmType]map[uint64]bool, t pb.AlarmType) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for at, ids := range alarms {
		if t != pb.AlarmType_NONE && at != t {
			continue
		}
		for id := range ids {
			out = append(out, &pb.AlarmMember{MemberID: id, Alarm: at})
		}
	}
	slices.SortFunc(out, func(x, y *pb.AlarmMember) int {
		return cmp.Or(cmp.Compare(x.Alarm, y.Alarm), cmp.Compare(x.MemberID, y.MemberID))
	})
	return out
}

// applyAlarm applies an alarm request, answering as etcd does:
//
//	GET         the alarms of the type asked (NONE: all), whatever the member
//	ACTIVATE    the alarm, raised now or already; nothing for type NONE
//	DEACTIVATE  the alarm cleared; nothing if it was not raised
//
// REQUIRES: a.mu held; a.meta held exclusively unless req is a GET.
func (a *Applier) applyAlarm(e raftpb.Entry, req *pb.AlarmRequest) (Result, error) {
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{}}
	batch := a.be.NewBatch()
	member := &pb.AlarmMember{MemberID: req.MemberID, Alarm: req.Alarm}
	switch req.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = alarmsLocked(a.alarms, req.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if req.Alarm == pb.AlarmType_NONE {
			break
		}
		if !a.alarms[req.Alarm][req.MemberID] {
			batch.Set(alarmKey(req.MemberID, req.Alarm), nil)
		}
		resp.Alarms = []*pb.AlarmMember{member}
	case pb.AlarmRequest_DEACTIVATE:
		if a.alarms[req.Alarm][req.MemberID] {
			batch.Delete(alarmKey(req.MemberID, req.Alarm))
			resp.Alarms = []*pb.AlarmMember{member}
		}
	}
	if err := batch.Commit(e.Index, e.Term); err != nil {
		return Result{}, err
	}
	switch {
	case req.Action == pb.AlarmRequest_ACTIVATE && len(resp.Alarms) > 0:
		if !a.alarms[req.Alarm][req.MemberID] {
			a.logger.Warn("alarm raised", alarmFields(req)...)
		}
		addAlarm(a.alarms, req.MemberID, req.Alarm)
	case req.Action == pb.AlarmRequest_DEACTIVATE && len(resp.Alarms) > 0:
		delete(a.alarms[req.Alarm], req.MemberID)
		a.logger.Warn("alarm disarmed", alarmFields(req)...)
	}
	return Result{Resp: resp}, nil
}

func alarmFields(req *pb.AlarmRequest) []zap.Field {
	return []zap.Field{zap.String("member-id", membership.IDString(req.MemberID)), zap.Stringer("alarm", req.Alarm)}
}

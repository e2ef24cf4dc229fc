package etcdsnap

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// StorageVersion is the meta bucket's storageVersion etcd 3.7.3 writes
// (its major.minor, with patch 0), and the one Finish writes.
const StorageVersion = "3.7.0"

// Bucket names, as etcd 3.7.3 names them (storage/schema/bucket.go).
var (
	bucketKey            = []byte("key")
	bucketMeta           = []byte("meta")
	bucketLease          = []byte("lease")
	bucketAlarm          = []byte("alarm")
	bucketCluster        = []byte("cluster")
	bucketMembers        = []byte("members")
	bucketMembersRemoved = []byte("members_removed")
	bucketAuth           = []byte("auth")
	bucketAuthUsers      = []byte("authUsers")
	bucketAuthRoles      = []byte("authRoles")

	// allBuckets are the buckets every etcd 3.5+ file has, and Create makes.
	allBuckets = [][]byte{bucketKey, bucketMeta, bucketLease, bucketAlarm, bucketCluster,
		bucketMembers, bucketMembersRemoved, bucketAuth, bucketAuthUsers, bucketAuthRoles}
)

// Keys of the meta, cluster and auth buckets.
var (
	keyConsistentIndex  = []byte("consistent_index")
	keyTerm             = []byte("term")
	keyConfState        = []byte("confState")
	keyScheduledCompact = []byte("scheduledCompactRev")
	keyFinishedCompact  = []byte("finishedCompactRev")
	keyStorageVersion   = []byte("storageVersion")
	keyClusterVersion   = []byte("clusterVersion")
	keyAuthEnabled      = []byte("authEnabled")
	keyAuthRevision     = []byte("authRevision")

	// removedValue is what etcd stores for a removed member.
	removedValue = []byte("removed")
)

// Revision is one entry of the key bucket: the change at (Main, Sub), a
// put, or a delete when Tombstone. Invariant: Main >= 1, Sub >= 0.
type Revision struct {
	Main, Sub int64
	Tombstone bool
}

// less orders revisions by (Main, Sub); the tombstone mark does not count.
func (r Revision) less(o Revision) bool {
	return r.Main < o.Main || (r.Main == o.Main && r.Sub < o.Sub)
}

const (
	revisionKeyLen       = 8 + 1 + 8
	markedRevisionKeyLen = revisionKeyLen + 1
	tombstoneMark        = 't'
)

// appendRevisionKey appends r's key-bucket key: 17 bytes, 18 for a delete.
func appendRevisionKey(b []byte, r Revision) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(r.Main))
	b = append(b, '_')
	b = binary.BigEndian.AppendUint64(b, uint64(r.Sub))
	if r.Tombstone {
		b = append(b, tombstoneMark)
	}
	return b
}

// parseRevisionKey reads what appendRevisionKey wrote.
func parseRevisionKey(k []byte) (Revision, error) {
	if (len(k) != revisionKeyLen && len(k) != markedRevisionKeyLen) || k[8] != '_' ||
		(len(k) == markedRevisionKeyLen && k[revisionKeyLen] != tombstoneMark) {
		return Revision{}, fmt.Errorf("%w: key bucket key %x is not a revision", ErrCorrupt, k)
	}
	r := Revision{
		Main:      int64(binary.BigEndian.Uint64(k[:8])),
		Sub:       int64(binary.BigEndian.Uint64(k[9:17])),
		Tombstone: len(k) == markedRevisionKeyLen,
	}
	if r.Main < 0 || r.Sub < 0 {
		return Revision{}, fmt.Errorf("%w: negative revision in key %x", ErrCorrupt, k)
	}
	return r, nil
}

// Lease is one lease as etcd stores it: its ID, its granted TTL and, if a
// checkpoint recorded one, the TTL it had left (0: none), in seconds.
type Lease struct{ ID, TTL, RemainingTTL int64 }

func leaseKey(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// marshalLease encodes l as leasepb.Lease (proto3: zero fields omitted).
func marshalLease(l Lease) []byte {
	var b []byte
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{1, l.ID}, {2, l.TTL}, {3, l.RemainingTTL}} {
		if f.v != 0 {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(f.v))
		}
	}
	return b
}

// unmarshalLease decodes a leasepb.Lease, skipping fields it does not know.
func unmarshalLease(b []byte) (Lease, error) {
	var l Lease
	err := consumeVarints(b, func(num protowire.Number, v uint64) {
		switch num {
		case 1:
			l.ID = int64(v)
		case 2:
			l.TTL = int64(v)
		case 3:
			l.RemainingTTL = int64(v)
		}
	})
	return l, err
}

// Alarm is one raised alarm: the member that raised it and what it is.
type Alarm struct {
	MemberID uint64
	Alarm    pb.AlarmType
}

// marshalAlarm encodes a as etcdserverpb.AlarmMember, the alarm bucket's key.
func marshalAlarm(a Alarm) []byte {
	var b []byte
	if a.MemberID != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, a.MemberID)
	}
	if a.Alarm != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.Alarm))
	}
	return b
}

func unmarshalAlarm(b []byte) (Alarm, error) {
	var a Alarm
	err := consumeVarints(b, func(num protowire.Number, v uint64) {
		switch num {
		case 1:
			a.MemberID = v
		case 2:
			a.Alarm = pb.AlarmType(int32(v))
		}
	})
	return a, err
}

// consumeVarints walks a protobuf message whose known fields are all
// varints, calling fn for each varint field and skipping the others.
func consumeVarints(b []byte, fn func(protowire.Number, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: bad protobuf: %v", ErrCorrupt, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: bad protobuf: %v", ErrCorrupt, protowire.ParseError(n))
			}
			fn(num, v)
			b = b[n:]
			continue
		}
		if num <= 3 {
			return fmt.Errorf("%w: bad protobuf: field %d has wire type %d", ErrCorrupt, num, typ)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%w: bad protobuf: %v", ErrCorrupt, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// etcdMember is etcd's membership.Member as encoding/json lays it out
// (ID, then the embedded RaftAttributes, then Attributes).
type etcdMember struct {
	ID         uint64   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	IsLearner  bool     `json:"isLearner,omitempty"`
	Name       string   `json:"name,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

func memberKey(id uint64) []byte { return []byte(membership.IDString(id)) }

func parseMemberKey(k []byte) (uint64, error) {
	id, err := strconv.ParseUint(string(k), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: member key %q is not a hex ID", ErrCorrupt, k)
	}
	return id, nil
}

func marshalMember(m membership.Member) []byte {
	b, err := json.Marshal(etcdMember{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner,
		Name: m.Name, ClientURLs: m.ClientURLs})
	if err != nil {
		panic(fmt.Sprintf("etcdsnap: encoding a member: %v", err)) // strings and numbers: cannot fail
	}
	return b
}

// etcdConfState is etcd 3.7.3's raftpb.ConfState as encoding/json lays it
// out. etcd 3.7.3 writes auto_leave always (false outside a joint
// configuration); etcd 3.5 and 3.6 wrote the same.
type etcdConfState struct {
	Voters         []uint64 `json:"voters,omitempty"`
	Learners       []uint64 `json:"learners,omitempty"`
	VotersOutgoing []uint64 `json:"voters_outgoing,omitempty"`
	LearnersNext   []uint64 `json:"learners_next,omitempty"`
	AutoLeave      *bool    `json:"auto_leave,omitempty"`
}

func marshalConfState(cs raftpb.ConfState) []byte {
	autoLeave := false
	b, err := json.Marshal(etcdConfState{Voters: sortedClone(cs.Voters), Learners: sortedClone(cs.Learners),
		AutoLeave: &autoLeave})
	if err != nil {
		panic(fmt.Sprintf("etcdsnap: encoding a conf state: %v", err)) // numbers: cannot fail
	}
	return b
}

// unmarshalConfState reads etcd's confState. Cairn has no joint
// configurations, and etcd (whose conf changes are all single-step) never
// persists one, so one found is refused rather than dropped.
func unmarshalConfState(b []byte) (raftpb.ConfState, error) {
	var ecs etcdConfState
	if err := json.Unmarshal(b, &ecs); err != nil {
		return raftpb.ConfState{}, fmt.Errorf("%w: meta confState %q: %v", ErrCorrupt, b, err)
	}
	if len(ecs.VotersOutgoing) > 0 || len(ecs.LearnersNext) > 0 || (ecs.AutoLeave != nil && *ecs.AutoLeave) {
		return raftpb.ConfState{}, fmt.Errorf("%w: meta confState %s is a joint configuration, which Cairn cannot hold",
			ErrCorrupt, b)
	}
	return raftpb.ConfState{Voters: ecs.Voters, Learners: ecs.Learners}, nil
}

func sortedClone(ids []uint64) []uint64 {
	if len(ids) == 0 {
		return nil
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// compactValue is a meta compaction mark: the revision key of (rev, 0).
func compactValue(rev int64) []byte { return appendRevisionKey(nil, Revision{Main: rev}) }

func parseCompactValue(name, v []byte) (int64, error) {
	r, err := parseRevisionKey(v)
	if err != nil || r.Tombstone {
		return 0, fmt.Errorf("%w: meta %s %x is not a revision", ErrCorrupt, name, v)
	}
	return r.Main, nil
}

func u64Value(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func parseU64(bucket, name, v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s %s is %d bytes, not 8", ErrCorrupt, bucket, name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

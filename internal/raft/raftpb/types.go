package raftpb

import (
	"fmt"
	"slices"
)

// EntryType says how an entry's Data is to be read.
type EntryType uint8

const (
	// EntryNormal carries application data (or nothing: the empty entry a
	// new leader appends).
	EntryNormal EntryType = 0
	// EntryConfChange carries an encoded ConfChange.
	EntryConfChange EntryType = 1

	maxEntryType = EntryConfChange
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "EntryNormal"
	case EntryConfChange:
		return "EntryConfChange"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// PayloadSize is what an entry costs against the uncommitted-bytes limit.
func (e *Entry) PayloadSize() uint64 { return uint64(len(e.Data)) }

// HardState is the part of a member's raft state that must be durable
// before any message depending on it is sent.
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
}

// IsEmpty reports whether h is the zero HardState.
func (h HardState) IsEmpty() bool { return h == HardState{} }

// ConfState is a cluster configuration: the voting members and the learners.
// Both lists are sorted and disjoint.
type ConfState struct {
	Voters   []uint64
	Learners []uint64
}

// Equal reports whether two configurations have the same members.
func (c ConfState) Equal(o ConfState) bool {
	return slices.Equal(c.Voters, o.Voters) && slices.Equal(c.Learners, o.Learners)
}

// Clone returns a copy that shares no memory with c.
func (c ConfState) Clone() ConfState {
	return ConfState{Voters: slices.Clone(c.Voters), Learners: slices.Clone(c.Learners)}
}

// IsVoter reports whether id is a voting member.
func (c ConfState) IsVoter(id uint64) bool { return slices.Contains(c.Voters, id) }

// IsLearner reports whether id is a learner.
func (c ConfState) IsLearner(id uint64) bool { return slices.Contains(c.Learners, id) }

func (c ConfState) String() string {
	return fmt.Sprintf("voters=%v learners=%v", c.Voters, c.Learners)
}

// SnapshotMetadata describes the state machine image a snapshot holds:
// the log position it covers and the configuration at that position.
type SnapshotMetadata struct {
	ConfState ConfState
	Index     uint64
	Term      uint64
}

// Snapshot is the state machine as of Metadata.Index. Data is opaque to raft
// (for Cairn's server it names a backend checkpoint, never the whole store).
type Snapshot struct {
	Metadata SnapshotMetadata
	Data     []byte
}

// IsEmpty reports whether s holds no snapshot.
func (s *Snapshot) IsEmpty() bool { return s.Metadata.Index == 0 }

// ConfChangeType names a single-server membership change.
type ConfChangeType uint8

const (
	// ConfChangeAddVoter adds a voter, or promotes a learner to voter.
	ConfChangeAddVoter ConfChangeType = 0
	// ConfChangeAddLearner adds a learner, or demotes a voter to learner.
	ConfChangeAddLearner ConfChangeType = 1
	// ConfChangeRemoveNode removes a voter or a learner.
	ConfChangeRemoveNode ConfChangeType = 2
	// ConfChangeUpdateNode changes nothing raft counts: it carries a
	// member's new record (its peer URLs) in Context, ordered with the
	// other changes (one pending at a time).
	ConfChangeUpdateNode ConfChangeType = 3

	maxConfChangeType = ConfChangeUpdateNode
)

func (t ConfChangeType) String() string {
	switch t {
	case ConfChangeAddVoter:
		return "AddVoter"
	case ConfChangeAddLearner:
		return "AddLearner"
	case ConfChangeRemoveNode:
		return "RemoveNode"
	case ConfChangeUpdateNode:
		return "UpdateNode"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChange is one single-server membership change. Context is opaque to
// raft; the server puts the member's URLs and the request id there.
type ConfChange struct {
	Type    ConfChangeType
	NodeID  uint64
	Context []byte
}

func (c ConfChange) String() string { return fmt.Sprintf("%s(%d)", c.Type, c.NodeID) }

// MessageType names a raft message. Every type here crosses the network;
// purely local events (ticks, campaigning, proposals on the leader itself)
// are method calls on raft.Node, not messages.
type MessageType uint8

const (
	MsgApp            MessageType = 1  // leader -> follower: entries after (LogTerm, Index); Reject set: no answer wanted (see Message.Reject)
	MsgAppResp        MessageType = 2  // follower -> leader: accept (Index = last match) or reject (RejectHint, LogTerm)
	MsgVote           MessageType = 3  // candidate -> all: vote for me in Term; (LogTerm, Index) = my last entry
	MsgVoteResp       MessageType = 4  // vote granted (Reject false) or refused
	MsgPreVote        MessageType = 5  // pre-candidate -> all: would you vote for me in Term? (no state changes)
	MsgPreVoteResp    MessageType = 6  // pre-vote granted or refused
	MsgSnap           MessageType = 7  // leader -> follower: install Snapshot
	MsgHeartbeat      MessageType = 8  // leader -> follower: Commit, and Context = read round
	MsgHeartbeatResp  MessageType = 9  // follower -> leader: echoes Context
	MsgProp           MessageType = 10 // follower -> leader: a forwarded proposal (Entries)
	MsgTransferLeader MessageType = 11 // follower -> leader: a forwarded transfer request; Index = transferee id
	MsgTimeoutNow     MessageType = 12 // leader -> transferee: campaign now, skipping pre-vote and leases
	MsgReadIndex      MessageType = 13 // follower -> leader: a forwarded read; Context = request context
	MsgReadIndexResp  MessageType = 14 // leader -> follower: Index = read index; Context = request context

	maxMessageType = MsgReadIndexResp
)

var messageTypeNames = [...]string{
	MsgApp:            "MsgApp",
	MsgAppResp:        "MsgAppResp",
	MsgVote:           "MsgVote",
	MsgVoteResp:       "MsgVoteResp",
	MsgPreVote:        "MsgPreVote",
	MsgPreVoteResp:    "MsgPreVoteResp",
	MsgSnap:           "MsgSnap",
	MsgHeartbeat:      "MsgHeartbeat",
	MsgHeartbeatResp:  "MsgHeartbeatResp",
	MsgProp:           "MsgProp",
	MsgTransferLeader: "MsgTransferLeader",
	MsgTimeoutNow:     "MsgTimeoutNow",
	MsgReadIndex:      "MsgReadIndex",
	MsgReadIndexResp:  "MsgReadIndexResp",
}

func (t MessageType) String() string {
	if t >= 1 && t <= maxMessageType {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// IsResponse reports whether t answers another message.
func (t MessageType) IsResponse() bool {
	switch t {
	case MsgAppResp, MsgVoteResp, MsgPreVoteResp, MsgHeartbeatResp, MsgReadIndexResp:
		return true
	}
	return false
}

// Message is what raft members say to each other. Which fields mean
// something depends on Type (see the constants above).
type Message struct {
	Type    MessageType
	To      uint64
	From    uint64
	Term    uint64
	LogTerm uint64
	Index   uint64
	Commit  uint64
	// Reject on a response: refused. On a MsgApp with no entries it is
	// the leader saying it knows the follower holds everything up to
	// Index, its last index: the append only carries Commit, and a
	// follower that accepts it sends no MsgAppResp, which would tell the
	// leader nothing (one refusing it still answers). A member that
	// predates this ignores it on a MsgApp and answers.
	Reject     bool
	RejectHint uint64
	Entries    []Entry
	Snapshot   *Snapshot // only MsgSnap
	Context    []byte
}

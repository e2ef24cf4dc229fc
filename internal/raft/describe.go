package raft

import (
	"fmt"
	"strings"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// DescribeEntry renders an entry as term/index type data, for tests and
// traces.
func DescribeEntry(e raftpb.Entry) string {
	if e.Type == raftpb.EntryConfChange {
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return fmt.Sprintf("%d/%d EntryConfChange <undecodable: %v>", e.Term, e.Index, err)
		}
		return fmt.Sprintf("%d/%d EntryConfChange %s", e.Term, e.Index, cc)
	}
	return fmt.Sprintf("%d/%d EntryNormal %q", e.Term, e.Index, e.Data)
}

// DescribeEntries renders entries space-separated in brackets.
func DescribeEntries(ents []raftpb.Entry) string {
	parts := make([]string, len(ents))
	for i, e := range ents {
		parts[i] = DescribeEntry(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// DescribeMessage renders a message on one line, showing only the fields
// its type uses.
func DescribeMessage(m raftpb.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s Term:%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case raftpb.MsgApp:
		fmt.Fprintf(&b, " Log:%d/%d Commit:%d", m.LogTerm, m.Index, m.Commit)
		if len(m.Entries) > 0 {
			fmt.Fprintf(&b, " Entries:%s", DescribeEntries(m.Entries))
		}
		if m.Reject {
			b.WriteString(" NoAnswer")
		}
	case raftpb.MsgAppResp:
		fmt.Fprintf(&b, " Index:%d", m.Index)
		if m.Reject {
			fmt.Fprintf(&b, " Rejected (Hint: %d/%d)", m.LogTerm, m.RejectHint)
		}
	case raftpb.MsgVote, raftpb.MsgPreVote:
		fmt.Fprintf(&b, " Log:%d/%d", m.LogTerm, m.Index)
		if len(m.Context) > 0 {
			fmt.Fprintf(&b, " Context:%s", m.Context)
		}
	case raftpb.MsgVoteResp, raftpb.MsgPreVoteResp:
		if m.Reject {
			b.WriteString(" Rejected")
		} else {
			b.WriteString(" Granted")
		}
	case raftpb.MsgSnap:
		if s := m.Snapshot; s != nil {
			fmt.Fprintf(&b, " Snapshot: Index:%d Term:%d %s", s.Metadata.Index, s.Metadata.Term, s.Metadata.ConfState)
		}
	case raftpb.MsgHeartbeat:
		fmt.Fprintf(&b, " Commit:%d", m.Commit)
		if r, ok := decodeRound(m.Context); ok {
			fmt.Fprintf(&b, " Round:%d", r)
		}
	case raftpb.MsgHeartbeatResp:
		if r, ok := decodeRound(m.Context); ok {
			fmt.Fprintf(&b, " Round:%d", r)
		}
	case raftpb.MsgProp:
		fmt.Fprintf(&b, " Entries:%s", DescribeEntries(m.Entries))
	case raftpb.MsgTransferLeader:
		fmt.Fprintf(&b, " Transferee:%d", m.Index)
	case raftpb.MsgReadIndex:
		fmt.Fprintf(&b, " Context:%s", m.Context)
	case raftpb.MsgReadIndexResp:
		fmt.Fprintf(&b, " Index:%d Context:%s", m.Index, m.Context)
	}
	return b.String()
}

// DescribeReady renders a Ready, one item per line, each line indented.
func DescribeReady(rd Ready, indent string) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		b.WriteString(indent)
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	if rd.SoftState != nil {
		line("Lead:%d State:%s", rd.SoftState.Lead, rd.SoftState.RaftState)
	}
	if rd.ConfState != nil {
		line("ConfState %s", *rd.ConfState)
	}
	if !rd.HardState.IsEmpty() {
		line("HardState Term:%d Vote:%d Commit:%d", rd.HardState.Term, rd.HardState.Vote, rd.HardState.Commit)
	}
	if len(rd.Entries) > 0 {
		line("Entries:")
		for _, e := range rd.Entries {
			line("  %s", DescribeEntry(e))
		}
	}
	if !rd.Snapshot.IsEmpty() {
		line("Snapshot Index:%d Term:%d %s", rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.Term, rd.Snapshot.Metadata.ConfState)
	}
	if len(rd.CommittedEntries) > 0 {
		line("CommittedEntries:")
		for _, e := range rd.CommittedEntries {
			line("  %s", DescribeEntry(e))
		}
	}
	if len(rd.Messages) > 0 {
		line("Messages:")
		for _, m := range rd.Messages {
			line("  %s", DescribeMessage(m))
		}
	}
	for _, rs := range rd.ReadStates {
		line("ReadState Index:%d Context:%s", rs.Index, rs.RequestCtx)
	}
	return b.String()
}

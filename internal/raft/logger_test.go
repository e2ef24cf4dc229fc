package raft

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// lines is a Logger that keeps what it is told.
type lines []string

func (l *lines) Infof(format string, args ...any) { *l = append(*l, fmt.Sprintf(format, args...)) }
func (l *lines) Warnf(format string, args ...any) {
	*l = append(*l, "WARN "+fmt.Sprintf(format, args...))
}

// TestLoggerElection: an election is logged in etcd raft's words, which
// operators and tools (etcd's own test suites among them) grep for:
// "became pre-candidate", "became candidate", "became leader at term N".
func TestLoggerElection(t *testing.T) {
	var log lines
	n, _ := newTestNode(t, 1, func(c *Config) { c.PreVote = true; c.Logger = &log })
	if want := "newRaft 1 [peers: [1,2,3], term: 1, commit: 3, applied: 0, lastindex: 3, lastterm: 1]"; !slices.Contains(log, want) {
		t.Fatalf("start-up lines %q lack %q", log, want)
	}
	log = nil
	n.Campaign()
	n.Step(raftpb.Message{Type: raftpb.MsgPreVoteResp, From: 2, To: 1, Term: 2})
	n.Step(raftpb.Message{Type: raftpb.MsgVoteResp, From: 3, To: 1, Term: 2, Reject: true})
	n.Step(raftpb.Message{Type: raftpb.MsgVoteResp, From: 2, To: 1, Term: 2})
	want := []string{
		"1 is starting a new election at term 1",
		"1 became pre-candidate at term 1",
		"1 received MsgPreVoteResp from 1 at term 1",
		"1 has received 1 MsgPreVoteResp votes and 0 vote rejections",
		"1 [logterm: 1, index: 3] sent MsgPreVote request to 2 at term 1",
		"1 [logterm: 1, index: 3] sent MsgPreVote request to 3 at term 1",
		"1 received MsgPreVoteResp from 2 at term 1",
		"1 has received 2 MsgPreVoteResp votes and 0 vote rejections",
		"1 became candidate at term 2",
		"1 received MsgVoteResp from 1 at term 2",
		"1 has received 1 MsgVoteResp votes and 0 vote rejections",
		"1 [logterm: 1, index: 3] sent MsgVote request to 2 at term 2",
		"1 [logterm: 1, index: 3] sent MsgVote request to 3 at term 2",
		"1 received MsgVoteResp rejection from 3 at term 2",
		"1 has received 1 MsgVoteResp votes and 1 vote rejections",
		"1 received MsgVoteResp from 2 at term 2",
		"1 has received 2 MsgVoteResp votes and 1 vote rejections",
		"1 became leader at term 2",
	}
	if !slices.Equal(log, want) {
		t.Fatalf("election logged\n%q\nwant\n%q", log, want)
	}

	// A leader that hears of a higher term steps down and says why.
	log = nil
	n.Step(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 3, To: 1, Term: 5})
	want = []string{
		"1 [term: 2] received a MsgHeartbeat message with higher term from 3 [term: 5]",
		"1 became follower at term 5",
	}
	if !slices.Equal(log, want) {
		t.Fatalf("stepping down logged\n%q\nwant\n%q", log, want)
	}
}

// TestLoggerVotes: a voter logs each vote it casts or refuses.
func TestLoggerVotes(t *testing.T) {
	var log lines
	n, _ := newTestNode(t, 2, func(c *Config) { c.Logger = &log })
	log = nil
	n.Step(raftpb.Message{Type: raftpb.MsgVote, From: 1, To: 2, Term: 2, LogTerm: 1, Index: 3})
	n.Step(raftpb.Message{Type: raftpb.MsgVote, From: 3, To: 2, Term: 2, LogTerm: 1, Index: 3})
	want := []string{
		"2 [term: 1] received a MsgVote message with higher term from 1 [term: 2]",
		"2 became follower at term 2",
		"2 [logterm: 1, index: 3, vote: 0] cast MsgVote for 1 [logterm: 1, index: 3] at term 2",
		"2 [logterm: 1, index: 3, vote: 1] rejected MsgVote from 3 [logterm: 1, index: 3] at term 2",
	}
	if !slices.Equal(log, want) {
		t.Fatalf("votes logged\n%q\nwant\n%q", log, want)
	}
}

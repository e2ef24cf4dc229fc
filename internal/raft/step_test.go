package raft

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// newTestNode returns member id of a bootstrapped cluster of voters 1, 2
// and 3, with its storage; configure adjusts the config.
func newTestNode(t *testing.T, id uint64, configure func(*Config)) (*Node, *MemoryStorage) {
	t.Helper()
	st := NewMemoryStorage()
	if err := Bootstrap(st, []uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: id, ElectionTicks: 10, HeartbeatTicks: 1, Storage: st, Rand: rand.New(rand.NewPCG(id, 0))}
	if configure != nil {
		configure(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n, st
}

// newFollower returns member 2 of a 3-voter cluster, which has heard from
// leader 1 in term 2, with its storage.
func newFollower(t *testing.T) (*Node, *MemoryStorage) {
	t.Helper()
	n, st := newTestNode(t, 2, nil)
	if err := n.Step(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 3}); err != nil {
		t.Fatal(err)
	}
	return n, st
}

// TestStepRejectsMalformedMessages: messages no correct peer sends are
// refused with ErrBadMessage and change nothing.
func TestStepRejectsMalformedMessages(t *testing.T) {
	badConf := raftpb.Entry{Term: 2, Index: 4, Type: raftpb.EntryConfChange, Data: []byte{0xff, 0xff}}
	for _, tc := range []struct {
		name string
		m    raftpb.Message
	}{
		{"gap in entries", raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 3, LogTerm: 1, Entries: ents(5, 2)}},
		{"entries before index", raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 3, LogTerm: 1, Entries: ents(3, 2)}},
		{"entry from a later term", raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 3, LogTerm: 1, Entries: ents(4, 3)}},
		{"terms decrease", raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 3, LogTerm: 1, Entries: ents(4, 2, 1)}},
		{"undecodable conf change", raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 3, LogTerm: 1, Entries: []raftpb.Entry{badConf}}},
		{"unbeatable term", raftpb.Message{Type: raftpb.MsgVote, Term: 1<<64 - 1}},
		{"term past the bound", raftpb.Message{Type: raftpb.MsgHeartbeatResp, Term: maxTerm}},
		{"heartbeat committing past our log", raftpb.Message{Type: raftpb.MsgHeartbeat, Term: 2, Commit: 50}},
		{"term-less append", raftpb.Message{Type: raftpb.MsgApp, Index: 3, LogTerm: 1}},
		{"unknown type", raftpb.Message{Type: 99, Term: 2}},
		{"addressed to another member", raftpb.Message{Type: raftpb.MsgHeartbeat, Term: 2, To: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, _ := newFollower(t)
			before := n.Status()
			m := tc.m
			m.From = 1
			if m.To == 0 {
				m.To = 2
			}
			if err := n.Step(m); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("Step = %v, want ErrBadMessage", err)
			}
			after := n.Status()
			if after.HardState != before.HardState || after.LastIndex != before.LastIndex || after.Lead != before.Lead {
				t.Fatalf("state changed: %+v -> %+v", before, after)
			}
		})
	}
}

// TestLeaderIgnoresAckPastItsLog: a follower claiming to store entries the
// leader never had must not move the leader's commit index.
func TestLeaderIgnoresAckPastItsLog(t *testing.T) {
	n, st := newTestNode(t, 1, nil)
	n.Campaign()
	if err := n.Step(raftpb.Message{Type: raftpb.MsgVoteResp, From: 2, To: 1, Term: 2}); err != nil {
		t.Fatal(err)
	}
	if n.BasicStatus().RaftState != StateLeader {
		t.Fatal("not leader")
	}
	rd := n.Ready()
	if err := st.Append(rd.Entries); err != nil {
		t.Fatal(err)
	}
	n.Advance()
	_ = n.Step(raftpb.Message{Type: raftpb.MsgAppResp, From: 2, To: 1, Term: 2, Index: 1000})
	if got := n.Status().Progress[2].Match; got != 0 {
		t.Fatalf("follower 2's match = %d after an ack past the log", got)
	}
	if c := n.BasicStatus().Commit; c != 3 {
		t.Fatalf("commit moved to %d", c)
	}
}

// TestRestartWithCommitBehindApplied: a commit-only HardState need not be
// synced, so after a crash the saved commit index may lag what the state
// machine applied, or the snapshot. The member must still start, with its
// commit index at the largest index known committed.
func TestRestartWithCommitBehindApplied(t *testing.T) {
	_, st := newTestNode(t, 1, nil)
	if err := st.Append(ents(4, 2, 2)); err != nil {
		t.Fatal(err)
	}
	st.SetHardState(raftpb.HardState{Term: 2, Vote: 1, Commit: 3})
	cfg := Config{ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, Storage: st, Applied: 5, Rand: rand.New(rand.NewPCG(1, 0))}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatalf("applied past the saved commit: %v", err)
	}
	if s := n.BasicStatus(); s.Commit != 5 || s.Applied != 5 {
		t.Fatalf("commit %d applied %d, want 5 and 5", s.Commit, s.Applied)
	}
	if n.HasReady() && len(n.Ready().CommittedEntries) > 0 {
		t.Fatal("applied entries handed out again")
	}

	// The same after a snapshot at 5 compacted the log.
	if _, err := st.CreateSnapshot(5, raftpb.ConfState{Voters: []uint64{1, 2, 3}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Compact(5); err != nil {
		t.Fatal(err)
	}
	if n, err = NewNode(cfg); err != nil {
		t.Fatalf("saved commit behind the snapshot: %v", err)
	}
	if s := n.BasicStatus(); s.Commit != 5 {
		t.Fatalf("commit %d, want 5", s.Commit)
	}

	// An applied index past the log means the log lost entries: an error,
	// not a panic.
	cfg.Applied = 9
	if _, err := NewNode(cfg); err == nil {
		t.Fatal("applied index past the log accepted")
	}
}

// TestTransferDoesNotPostponeCheckQuorum: a leader that hears from no one
// steps down within two election timeouts, however often it is asked to
// transfer leadership.
func TestTransferDoesNotPostponeCheckQuorum(t *testing.T) {
	n, _ := newTestNode(t, 1, func(c *Config) { c.CheckQuorum = true })
	n.r.becomeCandidate()
	n.r.becomeLeader()
	for tick := 1; tick <= 20; tick++ {
		if tick%3 == 0 {
			n.TransferLeadership(uint64(2 + tick%2))
		}
		n.Tick()
	}
	if st := n.BasicStatus().RaftState; st == StateLeader {
		t.Fatal("still leader after two election timeouts without hearing from anyone")
	}
}

// TestTermBound: no member adopts or reaches a term at the bound, so no
// campaign can overflow it.
func TestTermBound(t *testing.T) {
	n, _ := newFollower(t)
	if err := n.Step(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: maxTerm - 1, Commit: 3}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		n.Tick()
	}
	if s := n.BasicStatus(); s.Term != maxTerm-1 || s.RaftState != StateFollower {
		t.Fatalf("term %d state %s: campaigned past the bound", s.Term, s.RaftState)
	}
	st := NewMemoryStorage()
	st.SetHardState(raftpb.HardState{Term: maxTerm})
	if _, err := NewNode(Config{ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, Storage: st, Rand: rand.New(rand.NewPCG(1, 0))}); err == nil {
		t.Fatal("a saved term past the bound was accepted")
	}
}

// TestAdvanceAfterTruncationKeepsDurablePrefix: a new leader replaces part
// of the entries a Ready handed out before the caller advanced it. The
// entries it left alone are durable: the next Ready must hand out only the
// new ones, never rewrite durable entries.
func TestAdvanceAfterTruncationKeepsDurablePrefix(t *testing.T) {
	n, st := newTestNode(t, 2, nil)
	if err := n.Step(raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Term: 2, Index: 3, LogTerm: 1, Commit: 3, Entries: ents(4, 2, 2, 2)}); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Entries) != 3 {
		t.Fatalf("handed out %s, want 4..6", DescribeEntries(rd.Entries))
	}
	if err := st.Append(rd.Entries); err != nil {
		t.Fatal(err)
	}
	// Leader 3 of term 3 replaces entry 6 before the caller advances.
	if err := n.Step(raftpb.Message{Type: raftpb.MsgApp, From: 3, To: 2, Term: 3, Index: 5, LogTerm: 2, Commit: 5, Entries: ents(6, 3)}); err != nil {
		t.Fatal(err)
	}
	n.Advance()
	rd = n.Ready()
	if len(rd.Entries) != 1 || rd.Entries[0].Index != 6 || rd.Entries[0].Term != 3 {
		t.Fatalf("handed out %s after the truncation, want only 3/6", DescribeEntries(rd.Entries))
	}
}

// TestCommitOnlyAppendsGoUnanswered: a MsgApp with no entries that the
// leader marks as wanting no answer (Reject, sent to a follower it knows
// holds its whole log) is accepted silently; one the follower cannot
// accept is still refused aloud, and one carrying entries is still
// acknowledged, as the leader counts on both.
func TestCommitOnlyAppendsGoUnanswered(t *testing.T) {
	n, st := newFollower(t)
	// answers hands out n's Readies, storing their entries, and returns
	// the MsgAppResps among their messages.
	answers := func() []raftpb.Message {
		var out []raftpb.Message
		for n.HasReady() {
			rd := n.Ready()
			if err := st.Append(rd.Entries); err != nil {
				t.Fatal(err)
			}
			for _, m := range rd.Messages {
				if m.Type == raftpb.MsgAppResp {
					out = append(out, m)
				}
			}
			n.Advance()
		}
		return out
	}
	answers()
	step := func(m raftpb.Message) {
		t.Helper()
		m.Type, m.From, m.To, m.Term, m.Reject = raftpb.MsgApp, 1, 2, 2, true
		if err := n.Step(m); err != nil {
			t.Fatal(err)
		}
	}

	step(raftpb.Message{Index: 3, LogTerm: 1, Commit: 3})
	if got := answers(); len(got) != 0 {
		t.Fatalf("a commit-only append to a caught-up follower was answered: %v", got)
	}
	step(raftpb.Message{Index: 3, LogTerm: 1, Commit: 4, Entries: ents(4, 2)})
	if got := answers(); len(got) != 1 || got[0].Reject || got[0].Index != 4 {
		t.Fatalf("an append of entry 4: answers %v, want one acknowledging index 4", got)
	}
	step(raftpb.Message{Index: 9, LogTerm: 2, Commit: 4})
	if got := answers(); len(got) != 1 || !got[0].Reject {
		t.Fatalf("a commit-only append past the follower's log: answers %v, want one refusal", got)
	}
	if c := n.BasicStatus().Commit; c != 4 {
		t.Fatalf("commit %d, want 4", c)
	}
}

package raft

import (
	"encoding/binary"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// FuzzStep feeds a member arbitrary, validly encoded messages "from peers",
// interleaved with ticks and Ready handling. Whatever a peer says, a member
// must not panic: a broken or hostile peer may be refused, but it must not
// take the member down.
//
// Input: a sequence of records | op (1B) | len (2B) | message (len B) |.
// op selects the target (a follower or a leader of a 3-voter cluster) and
// whether to tick or handle a Ready after stepping.
func FuzzStep(f *testing.F) {
	seed := func(ms ...raftpb.Message) []byte {
		var out []byte
		for i, m := range ms {
			enc := m.Marshal()
			out = append(out, byte(i))
			out = binary.BigEndian.AppendUint16(out, uint16(len(enc)))
			out = append(out, enc...)
		}
		return out
	}
	f.Add(seed(raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Term: 2, Index: 3, LogTerm: 1, Commit: 3, Entries: ents(4, 2, 2)}))
	f.Add(seed(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 5, Commit: 2}))
	f.Add(seed(raftpb.Message{Type: raftpb.MsgVote, From: 3, To: 2, Term: 9, Index: 3, LogTerm: 1}))
	f.Add(seed(raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 2, Term: 3, Snapshot: &raftpb.Snapshot{
		Metadata: raftpb.SnapshotMetadata{Index: 9, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}}))
	f.Add(seed(raftpb.Message{Type: raftpb.MsgApp, From: 3, To: 2, Term: 7, Index: 1, LogTerm: 1, Commit: 9, Entries: ents(2, 4)}))
	f.Add(seed(raftpb.Message{Type: raftpb.MsgAppResp, From: 2, To: 1, Term: 2, Index: 3},
		raftpb.Message{Type: raftpb.MsgReadIndex, From: 3, To: 1, Context: []byte("r")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		follower, fst := newTestNode(t, 2, func(c *Config) { c.CheckQuorum, c.PreVote = true, true })
		leader, lst := newTestNode(t, 1, func(c *Config) { c.CheckQuorum, c.PreVote = true, true })
		leader.r.becomeCandidate()
		leader.r.becomeLeader()
		nodes := []*Node{follower, leader}
		stores := []*MemoryStorage{fst, lst}
		for len(data) >= 3 {
			op := data[0]
			n := int(binary.BigEndian.Uint16(data[1:3]))
			data = data[3:]
			if n > len(data) {
				return
			}
			var m raftpb.Message
			if err := m.Unmarshal(data[:n]); err != nil {
				data = data[n:]
				continue
			}
			data = data[n:]
			target := int(op & 1)
			node, st := nodes[target], stores[target]
			m.To = node.r.id
			if m.From == node.r.id || m.From == None {
				m.From = 3
			}
			_ = node.Step(m)
			if op&2 != 0 {
				node.Tick()
			}
			if op&4 != 0 && node.HasReady() {
				rd := node.Ready()
				if !rd.Snapshot.IsEmpty() {
					_ = st.ApplySnapshot(rd.Snapshot)
				}
				if err := st.Append(rd.Entries); err != nil {
					t.Fatalf("the core asked to persist entries storage refuses: %v", err)
				}
				if !rd.HardState.IsEmpty() {
					st.SetHardState(rd.HardState)
				}
				node.Advance()
			}
		}
	})
}

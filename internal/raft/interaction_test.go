package raft

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/datadriven"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// TestInteraction runs the scripts in testdata/: each drives a small cluster
// of real cores over a hand-operated network and prints what they say.
func TestInteraction(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			env := &interactionEnv{nodes: map[uint64]*inode{}, isolated: map[uint64]bool{}}
			datadriven.RunTest(t, f, env.handle)
		})
	}
}

type inode struct {
	n       *Node
	storage *MemoryStorage
	cfg     Config
	// conf is the configuration as the application sees it: changed by
	// applying committed conf change entries.
	conf    raftpb.ConfState
	applied []string
}

type interactionEnv struct {
	nodes map[uint64]*inode
	ids   []uint64
	// queue holds sent, undelivered messages in send order.
	queue    []raftpb.Message
	isolated map[uint64]bool
}

// handle runs one script command. The commands, IDs being member ids:
//
//	add-nodes N voters=(IDS) | join  [election= heartbeat= max-msg-size=
//	    max-inflight= max-uncommitted= max-reads= checkquorum prevote]
//	campaign ID | tick ID n= | tick-heartbeat ID n= | tick-election ID n=
//	propose ID DATA | propose-conf-change ID add-voter=|add-learner=|remove=
//	read-index ID CTX | transfer-leadership ID to=
//	process-ready IDS [no-advance] | advance ID
//	deliver-msgs IDS [from=ID] [drop] | stabilize [quiet]
//	isolate IDS | heal | crash IDS | restart IDS
//	report-unreachable ID PEER | report-snapshot ID PEER [failure]
//	status IDS | raft-log ID | applied ID | compact ID
func (e *interactionEnv) handle(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	ids := d.Positional(t)
	node := func() *inode {
		if len(ids) == 0 {
			t.Fatalf("%s: %s needs a node id", d.Pos, d.Cmd)
		}
		n := e.nodes[ids[0]]
		if n == nil || n.n == nil {
			t.Fatalf("%s: node %d is not running", d.Pos, ids[0])
		}
		return n
	}
	arg := func() string {
		// The first non-numeric bare argument.
		for _, a := range d.CmdArgs {
			if len(a.Vals) == 0 {
				if _, err := fmt.Sscan(a.Key, new(uint64)); err != nil {
					return a.Key
				}
			}
		}
		return ""
	}
	switch d.Cmd {
	case "add-nodes":
		e.addNodes(t, d, ids[0])
	case "campaign":
		node().n.Campaign()
	case "propose":
		if err := node().n.Propose([]byte(arg())); err != nil {
			fmt.Fprintf(&b, "error: %v", err)
		}
	case "propose-conf-change":
		var cc raftpb.ConfChange
		switch {
		case d.HasArg("add-voter"):
			cc = raftpb.ConfChange{Type: raftpb.ConfChangeAddVoter, NodeID: d.Uint(t, "add-voter", 0)}
		case d.HasArg("add-learner"):
			cc = raftpb.ConfChange{Type: raftpb.ConfChangeAddLearner, NodeID: d.Uint(t, "add-learner", 0)}
		case d.HasArg("remove"):
			cc = raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: d.Uint(t, "remove", 0)}
		default:
			t.Fatalf("%s: which change?", d.Pos)
		}
		if err := node().n.ProposeConfChange(cc); err != nil {
			fmt.Fprintf(&b, "error: %v", err)
		}
	case "read-index":
		if err := node().n.ReadIndex([]byte(arg())); err != nil {
			fmt.Fprintf(&b, "error: %v", err)
		}
	case "transfer-leadership":
		node().n.TransferLeadership(d.Uint(t, "to", 0))
	case "tick-heartbeat", "tick-election", "tick":
		n := node()
		count := int(d.Uint(t, "n", 1))
		for range count {
			ticks := 1
			switch d.Cmd {
			case "tick-heartbeat":
				ticks = n.cfg.HeartbeatTicks
			case "tick-election":
				// Enough for any randomized timeout to fire.
				ticks = n.n.r.randomizedElectionTimeout
			}
			for range ticks {
				n.n.Tick()
			}
		}
	case "process-ready":
		// no-advance: handle the Ready but do not call Advance until an
		// advance command, as if the write were still in progress.
		for _, id := range ids {
			e.processReady(&b, id)
			if !d.HasArg("no-advance") {
				e.nodes[id].n.Advance()
			}
		}
	case "advance":
		node().n.Advance()
	case "deliver-msgs":
		for _, id := range ids {
			e.deliver(&b, id, d.Uint(t, "from", None), d.HasArg("drop"))
		}
	case "stabilize":
		// quiet hides the traffic, for setup steps a status sums up.
		if d.HasArg("quiet") {
			e.stabilize(&strings.Builder{})
		} else {
			e.stabilize(&b)
		}
	case "isolate":
		for _, id := range ids {
			e.isolated[id] = true
		}
	case "heal":
		clear(e.isolated)
	case "status":
		for _, id := range ids {
			e.status(&b, id)
		}
	case "raft-log":
		n := node()
		first, _ := n.storage.FirstIndex()
		last, _ := n.storage.LastIndex()
		ents, err := n.storage.Entries(first, last+1, 1<<30)
		if err != nil {
			fmt.Fprintf(&b, "error: %v", err)
		}
		if snap, _ := n.storage.Snapshot(); !snap.IsEmpty() {
			fmt.Fprintf(&b, "snapshot %d/%d %s\n", snap.Metadata.Term, snap.Metadata.Index, snap.Metadata.ConfState)
		}
		for _, ent := range ents {
			b.WriteString(DescribeEntry(ent) + "\n")
		}
		if len(ents) == 0 {
			b.WriteString("log is empty")
		}
	case "compact":
		// Take a snapshot at the applied index and drop the log up to it.
		n := node()
		applied := n.n.Status().Applied
		if _, err := n.storage.CreateSnapshot(applied, n.conf, []byte(strings.Join(n.applied, ","))); err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		if err := n.storage.Compact(applied); err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		fmt.Fprintf(&b, "snapshot at %d, log compacted", applied)
	case "crash":
		// Lose everything not persisted through Ready.
		for _, id := range ids {
			e.nodes[id].n = nil
		}
	case "restart":
		for _, id := range ids {
			e.restart(t, id)
		}
	case "report-unreachable":
		node().n.ReportUnreachable(ids[1])
	case "report-snapshot":
		// report-snapshot LEADER PEER [failure]
		node().n.ReportSnapshot(ids[1], !d.HasArg("failure"))
	case "applied":
		n := node()
		fmt.Fprintf(&b, "%v", n.applied)
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return b.String()
}

func (e *interactionEnv) nodeConfig(t *testing.T, d *datadriven.TestData, id uint64, st *MemoryStorage) Config {
	return Config{
		ID:              id,
		ElectionTicks:   int(d.Uint(t, "election", 10)),
		HeartbeatTicks:  int(d.Uint(t, "heartbeat", 1)),
		Storage:         st,
		MaxSizePerMsg:   d.Uint(t, "max-msg-size", 1<<20),
		MaxInflightMsgs: int(d.Uint(t, "max-inflight", 256)),
		// Small enough to test: a few proposals fill it.
		MaxUncommittedEntriesSize: d.Uint(t, "max-uncommitted", 1<<20),
		MaxPendingReads:           int(d.Uint(t, "max-reads", 16)),
		CheckQuorum:               d.HasArg("checkquorum"),
		PreVote:                   d.HasArg("prevote"),
		Rand:                      rand.New(rand.NewPCG(id, 0)),
	}
}

// addNodes adds count members. With voters=(...) they bootstrap a cluster
// of those voters; with join they start empty, to be added by a
// configuration change.
func (e *interactionEnv) addNodes(t *testing.T, d *datadriven.TestData, count uint64) {
	voters := d.Uints(t, "voters")
	for range count {
		id := uint64(len(e.ids) + 1)
		st := NewMemoryStorage()
		if !d.HasArg("join") {
			if err := Bootstrap(st, voters); err != nil {
				t.Fatal(err)
			}
		}
		cfg := e.nodeConfig(t, d, id, st)
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		e.nodes[id] = &inode{n: n, storage: st, cfg: cfg}
		e.ids = append(e.ids, id)
	}
}

func (e *interactionEnv) restart(t *testing.T, id uint64) {
	in := e.nodes[id]
	snap, _ := in.storage.Snapshot()
	cfg := in.cfg
	cfg.Applied = snap.Metadata.Index
	// The state machine restarts from the snapshot; the rest is replayed.
	in.conf = snap.Metadata.ConfState.Clone()
	in.applied = nil
	if len(snap.Data) > 0 {
		in.applied = strings.Split(string(snap.Data), ",")
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in.n = n
}

// processReady handles id's Ready as a driver would: persist, queue the
// messages, apply. The caller calls Advance.
func (e *interactionEnv) processReady(b *strings.Builder, id uint64) {
	in := e.nodes[id]
	rd := in.n.Ready()
	fmt.Fprintf(b, "> %d handling Ready\n", id)
	b.WriteString(DescribeReady(rd, "  "))
	if !rd.Snapshot.IsEmpty() {
		if err := in.storage.ApplySnapshot(rd.Snapshot); err != nil {
			panic(err)
		}
		in.conf = rd.Snapshot.Metadata.ConfState.Clone()
		in.applied = nil
		if len(rd.Snapshot.Data) > 0 {
			in.applied = strings.Split(string(rd.Snapshot.Data), ",")
		}
	}
	if err := in.storage.Append(rd.Entries); err != nil {
		panic(err)
	}
	if !rd.HardState.IsEmpty() {
		in.storage.SetHardState(rd.HardState)
	}
	e.queue = append(e.queue, rd.Messages...)
	for _, ent := range rd.CommittedEntries {
		switch ent.Type {
		case raftpb.EntryConfChange:
			cc := confChangeOf(&ent)
			if next, err := ApplyConfChange(in.conf, cc); err == nil {
				in.conf = next
			}
		case raftpb.EntryNormal:
			if len(ent.Data) > 0 {
				in.applied = append(in.applied, string(ent.Data))
			}
		}
	}
}

// deliver delivers (or drops) the queued messages addressed to id; with
// from set, only those sent by from, the others staying queued.
func (e *interactionEnv) deliver(b *strings.Builder, id, from uint64, drop bool) {
	var rest, mine []raftpb.Message
	for _, m := range e.queue {
		if m.To == id && (from == None || m.From == from) {
			mine = append(mine, m)
		} else {
			rest = append(rest, m)
		}
	}
	e.queue = rest
	if len(mine) == 0 {
		return
	}
	fmt.Fprintf(b, "> %d receiving messages\n", id)
	for _, m := range mine {
		in := e.nodes[id]
		switch {
		case drop || e.isolated[m.From] || e.isolated[m.To] || in == nil || in.n == nil:
			fmt.Fprintf(b, "  %s DROPPED\n", DescribeMessage(m))
		default:
			fmt.Fprintf(b, "  %s\n", DescribeMessage(m))
			if err := in.n.Step(m); err != nil {
				fmt.Fprintf(b, "  error: %v\n", err)
			}
		}
	}
}

func (e *interactionEnv) stabilize(b *strings.Builder) {
	for {
		progress := false
		for _, id := range e.ids {
			if in := e.nodes[id]; in.n != nil && in.n.HasReady() {
				e.processReady(b, id)
				in.n.Advance()
				progress = true
			}
		}
		for _, id := range e.ids {
			before := len(e.queue)
			e.deliver(b, id, None, false)
			if len(e.queue) != before {
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

func (e *interactionEnv) status(b *strings.Builder, id uint64) {
	in := e.nodes[id]
	if in.n == nil {
		fmt.Fprintf(b, "%d: down\n", id)
		return
	}
	s := in.n.Status()
	fmt.Fprintf(b, "%d: %s term=%d lead=%d commit=%d applied=%d last=%d conf=(%s)",
		id, s.RaftState, s.Term, s.Lead, s.Commit, s.Applied, s.LastIndex, s.Conf)
	if s.LeadTransferee != None {
		fmt.Fprintf(b, " transferee=%d", s.LeadTransferee)
	}
	b.WriteString("\n")
	ids := make([]uint64, 0, len(s.Progress))
	for pid := range s.Progress {
		ids = append(ids, pid)
	}
	slices.Sort(ids)
	for _, pid := range ids {
		pr := s.Progress[pid]
		// Status drops the in-flight window; print the leader's own.
		pr.Inflights = in.n.r.trk.progress[pid].Inflights
		fmt.Fprintf(b, "  %d: %s\n", pid, pr.String())
	}
}

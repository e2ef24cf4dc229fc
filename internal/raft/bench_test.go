package raft

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// benchCluster is an in-memory cluster with a perfect, instant network and
// no I/O: it measures the core alone.
type benchCluster struct {
	nodes    map[uint64]*Node
	storages map[uint64]*MemoryStorage
	ids      []uint64
	queue    []raftpb.Message
	applied  map[uint64]uint64
}

func newBenchCluster(b *testing.B, size int) *benchCluster {
	c := &benchCluster{nodes: map[uint64]*Node{}, storages: map[uint64]*MemoryStorage{}, applied: map[uint64]uint64{}}
	for i := 1; i <= size; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		st := NewMemoryStorage()
		if err := Bootstrap(st, c.ids); err != nil {
			b.Fatal(err)
		}
		n, err := NewNode(Config{
			ID: id, ElectionTicks: 10, HeartbeatTicks: 1, Storage: st,
			MaxInflightMsgs: 256, CheckQuorum: true, PreVote: true,
			MaxUncommittedEntriesSize: 1 << 30,
			Rand:                      rand.New(rand.NewPCG(id, 1)),
		})
		if err != nil {
			b.Fatal(err)
		}
		c.nodes[id], c.storages[id] = n, st
	}
	c.nodes[1].Campaign()
	c.run()
	if c.nodes[1].BasicStatus().RaftState != StateLeader {
		b.Fatal("1 did not become leader")
	}
	return c
}

// run handles Readies and delivers messages until the cluster is idle.
func (c *benchCluster) run() {
	for {
		progress := false
		for _, id := range c.ids {
			n := c.nodes[id]
			if !n.HasReady() {
				continue
			}
			progress = true
			rd := n.Ready()
			if err := c.storages[id].Append(rd.Entries); err != nil {
				panic(err)
			}
			if !rd.HardState.IsEmpty() {
				c.storages[id].SetHardState(rd.HardState)
			}
			c.queue = append(c.queue, rd.Messages...)
			if k := len(rd.CommittedEntries); k > 0 {
				c.applied[id] = rd.CommittedEntries[k-1].Index
			}
			n.Advance()
			// Compact as a server would (every --snapshot-count entries),
			// so the benchmark measures the core, not a growing slice.
			st := c.storages[id]
			if snap, _ := st.Snapshot(); c.applied[id] > snap.Metadata.Index+10000 {
				cs := raftpb.ConfState{Voters: c.ids}
				if _, err := st.CreateSnapshot(c.applied[id], cs, nil); err != nil {
					panic(err)
				}
				if err := st.Compact(c.applied[id] - 1000); err != nil {
					panic(err)
				}
			}
		}
		q := c.queue
		c.queue = nil
		for _, m := range q {
			progress = true
			_ = c.nodes[m.To].Step(m)
		}
		if !progress {
			return
		}
	}
}

// BenchmarkProposeCommit3 measures proposals committed per second by a
// 3-member cluster, with `window` proposals outstanding at a time, so the
// leader batches and pipelines as it would under load.
func BenchmarkProposeCommit3(b *testing.B) {
	for _, size := range []int{16, 128} {
		for _, window := range []int{1, 64, 1024} {
			b.Run(fmt.Sprintf("payload=%d/window=%d", size, window), func(b *testing.B) {
				c := newBenchCluster(b, 3)
				leader := c.nodes[1]
				data := make([]byte, size)
				start := leader.BasicStatus().Commit
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for proposed := 0; proposed < b.N; {
					for k := 0; k < window && proposed < b.N; k++ {
						if err := leader.Propose(data); err != nil {
							b.Fatal(err)
						}
						proposed++
					}
					c.run()
				}
				b.StopTimer()
				if got := leader.BasicStatus().Commit - start; got != uint64(b.N) {
					b.Fatalf("committed %d of %d", got, b.N)
				}
				for _, id := range c.ids {
					if c.applied[id] != start+uint64(b.N) {
						b.Fatalf("member %d applied %d, want %d", id, c.applied[id], start+uint64(b.N))
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proposals/s")
			})
		}
	}
}

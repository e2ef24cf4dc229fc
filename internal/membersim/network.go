package membersim

import (
	"bytes"
	"fmt"
	"io"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/snap"
)

// network carries messages between members as the transport does: each
// message is marshalled at send and unmarshalled at delivery (so no member
// shares memory with another), and a MsgSnap carries the sender's image,
// which the receiver stores before raft sees the message. Messages may be
// dropped, duplicated, delayed and so reordered, or cut by a partition.
type network struct {
	inflight []envelope
	// blocked[{from, to}]: the link drops everything.
	blocked  map[[2]uint64]bool
	dropRate float64
	dupRate  float64
	maxDelay uint64
}

type envelope struct {
	from, to  uint64
	data      []byte
	deliverAt uint64
	// image is the snapshot image a MsgSnap carries.
	image *image
}

type image struct {
	data []byte
	info snap.ImageInfo
}

func (n *network) init() { n.blocked = map[[2]uint64]bool{} }

// sender is a member's raftnode.Sender.
type sender struct {
	s    *Sim
	from *simMember
}

func (snd *sender) Send(msgs []raftpb.Message) {
	s := snd.s
	for _, m := range msgs {
		if s.faults && (m.Type == raftpb.MsgAppResp && !m.Reject || m.Type == raftpb.MsgVoteResp && !m.Reject) &&
			s.rng.Float64() < s.mix.promiseCutRate {
			// A promise about the disk is out: the power may go at
			// once (at the next write: a correct member made it).
			snd.from.cutNext = true
		}
		env := envelope{from: m.From, to: m.To, deliverAt: s.now + s.rng.Uint64N(s.net.maxDelay+1)}
		if m.Type == raftpb.MsgSnap {
			// As transport.sendSnapshot: the image to send is opened
			// now, and the message carries the image's metadata.
			rc, info, md, err := snd.from.images.OpenImage(m.Snapshot.Metadata.Index)
			if err != nil {
				s.tracef("%s cannot open image %d: %v", snd.from.name, m.Snapshot.Metadata.Index, err)
				snd.from.d.Raft().ReportSnapshot(m.To, false)
				continue
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				s.failf("%s: reading image %d: %v", snd.from.name, md.Index, err)
				return
			}
			m.Snapshot.Metadata = md
			env.image = &image{data: data, info: info}
			s.stats.SnapshotsSent++
		}
		env.data = m.Marshal()
		s.net.inflight = append(s.net.inflight, env)
		// Raft takes duplicated messages in its stride, except
		// forwarded proposals: one would be appended twice. The
		// transport's streams never duplicate; only the simulator's
		// network does, and not these.
		if s.faults && s.rng.Float64() < s.net.dupRate && m.Type != raftpb.MsgSnap && m.Type != raftpb.MsgProp {
			dup := env
			dup.deliverAt += s.rng.Uint64N(s.net.maxDelay + 2)
			s.net.inflight = append(s.net.inflight, dup)
			s.stats.Duplicated++
		}
	}
}

// maxInflight bounds the messages in flight: raft sends a bounded number
// per member and tick, so more is a message storm (members answering each
// other without end), reported as a violation.
const maxInflight = 50000

// deliverSome delivers a random number (most, on average) of the messages
// that are due, in a random order.
func (n *network) deliverSome(s *Sim) {
	if len(n.inflight) > maxInflight {
		s.failf("message storm: %d messages in flight", len(n.inflight))
		return
	}
	var due, later []envelope
	for _, e := range n.inflight {
		if e.deliverAt <= s.now {
			due = append(due, e)
		} else {
			later = append(later, e)
		}
	}
	s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	k := min(len(due), s.rng.IntN(2*len(due)+1))
	// What is not delivered now stays in flight; deliveries add to it.
	n.inflight = append(later, due[k:]...)
	for _, e := range due[:k] {
		n.deliver(s, e)
	}
}

func (n *network) deliver(s *Sim, env envelope) {
	from, to := s.byID[env.from], s.byID[env.to]
	lost := to == nil || !to.up || n.blocked[[2]uint64{env.from, env.to}] ||
		s.faults && s.rng.Float64() < n.dropRate
	if lost {
		s.stats.Dropped++
		if env.image != nil && from != nil && from.up {
			// The transport reports every snapshot, sent or not.
			from.d.Raft().ReportSnapshot(env.to, false)
			s.handleReady(from)
		}
		return
	}
	if to.st.Applier.IsRemoved(env.from) {
		// The transport refuses a removed member's traffic, and tells
		// it so: it stops.
		s.stats.Dropped++
		if from != nil {
			s.stopRemoved(from, fmt.Sprintf("%s refused its message", to.name))
		}
		return
	}
	var m raftpb.Message
	if err := m.Unmarshal(env.data); err != nil {
		s.failf("unmarshal: %v", err)
		return
	}
	if env.image != nil {
		if err := to.images.SaveImage(m.Snapshot.Metadata.Index, bytes.NewReader(env.image.data), env.image.info); err != nil {
			s.failf("%s: saving image %d: %v", to.name, m.Snapshot.Metadata.Index, err)
			return
		}
	}
	s.stats.Delivered++
	to.d.Step(m)
	s.handleReady(to)
	if env.image != nil && from != nil && from.up {
		from.d.Raft().ReportSnapshot(env.to, true)
		s.handleReady(from)
	}
}

// partition cuts the members into two random sides.
func (n *network) partition(s *Sim) {
	var side []bool
	for range s.members {
		side = append(side, s.rng.IntN(2) == 0)
	}
	for i, a := range s.members {
		for j, b := range s.members {
			if side[i] != side[j] {
				n.blocked[[2]uint64{a.id, b.id}] = true
			}
		}
	}
	s.tracef("partition %v", side)
}

func (n *network) heal(s *Sim) {
	if len(n.blocked) > 0 {
		s.tracef("heal")
	}
	clear(n.blocked)
}

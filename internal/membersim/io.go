package membersim

import (
	"errors"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/snap"
	"github.com/cairn-db/cairn/internal/wal"
)

// errPowerCut is returned by a member's storage at the instant the
// simulator cuts its power: the driver stops there, as a process does,
// and the simulator crashes the member.
var errPowerCut = errors.New("membersim: power cut")

// cutter decides, at each storage call, whether the power goes out just
// before it or just after it.
type cutter struct {
	s *Sim
	m *simMember
}

func (c cutter) cut(what string) error {
	if c.m.cutNext && c.s.faults {
		c.m.cutNext = false
		c.s.tracef("power cut at %s on %s, just after it sent a promise", what, c.m.name)
		return errPowerCut
	}
	if c.s.faults && c.s.rng.Float64() < c.s.mix.ioCrashRate {
		c.s.tracef("power cut at %s on %s", what, c.m.name)
		return errPowerCut
	}
	return nil
}

// crashingLog is the member's WAL, with power cuts around each write.
type crashingLog struct {
	cutter
	w *wal.WAL
}

var _ raftnode.LogStore = crashingLog{}

func (l crashingLog) around(what string, write func() error) error {
	if err := l.cut("before " + what); err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	return l.cut("after " + what)
}

func (l crashingLog) Save(hs raftpb.HardState, ents []raftpb.Entry, mustSync bool) error {
	return l.around("WAL save", func() error { return l.w.Save(hs, ents, mustSync) })
}

func (l crashingLog) SaveSnapshot(s wal.Snapshot) error {
	return l.around("WAL snapshot record", func() error { return l.w.SaveSnapshot(s) })
}

func (l crashingLog) ResetToSnapshot(s wal.Snapshot) error {
	return l.around("WAL reset", func() error { return l.w.ResetToSnapshot(s) })
}

func (l crashingLog) Release(index uint64) (int, error) {
	var n int
	err := l.around("WAL release", func() error {
		var err error
		n, err = l.w.Release(index)
		return err
	})
	return n, err
}

// crashingSnaps is the member's snapshot files, with power cuts around
// each save.
type crashingSnaps struct {
	cutter
	sn *snap.Snapshotter
}

func (c crashingSnaps) Save(s raftpb.Snapshot) error {
	if err := c.cut("before snapshot save"); err != nil {
		return err
	}
	if err := c.sn.Save(s); err != nil {
		return err
	}
	return c.cut("after snapshot save")
}

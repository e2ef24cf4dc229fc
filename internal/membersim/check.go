package membersim

import (
	"github.com/cairn-db/cairn/internal/mvcc"
)

// finalChecks run on the converged cluster: every running member has
// applied the same entries (removed members and members never started
// are not running).
func (s *Sim) finalChecks() {
	live := s.up()
	s.membershipChecks(live)
	if s.err != nil {
		return
	}
	var rev, compacted int64
	var hash uint32
	for i, m := range live {
		var h uint32
		var r, c int64
		err := m.st.Applier.View(func(st *mvcc.Store) error {
			var err error
			r = st.Rev()
			var kvh mvcc.KeyValueHash
			kvh, _, err = st.HashKV(r)
			h, c = kvh.Hash, kvh.CompactRevision
			return err
		})
		if err != nil {
			s.failf("%s: HashKV: %v", m.name, err)
			return
		}
		if i == 0 {
			rev, compacted, hash = r, c, h
			continue
		}
		if r != rev || c != compacted || h != hash {
			s.failf("members differ: %s has revision %d compacted %d hash %x; %s has %d, %d, %x",
				live[0].name, rev, compacted, hash, m.name, r, c, h)
			return
		}
	}
	s.watches.catchUp(s, rev)
	m := live[0]
	// No acknowledged write is lost: each still reads as written at its
	// revision, unless compacted away.
	for _, a := range s.clients.acked {
		if a.rev <= compacted {
			continue
		}
		kv := s.readAt(m, a.key, a.rev)
		if kv == nil || kv.value != a.value || kv.mod != a.rev {
			s.failf("acknowledged put %s=%s at revision %d is lost: revision %d reads %+v", keyName(a.key), a.value, a.rev, a.rev, kv)
			return
		}
	}
	// A serializable read may be stale, but what it read must be what
	// the store held at the revision it reported.
	for _, r := range s.clients.serializable {
		if r.rev <= compacted {
			continue
		}
		kv := s.readAt(m, r.key, r.rev)
		got := readValue{}
		if kv != nil {
			got = *kv
		}
		if got.value != r.value || got.mod != r.mod {
			s.failf("serializable read of %s on %s at revision %d saw %q (mod %d); the store held %q (mod %d)",
				keyName(r.key), r.memberTag, r.rev, r.value, r.mod, got.value, got.mod)
			return
		}
	}
	s.clients.checkLinearizable(s)
}

type readValue struct {
	value string
	mod   int64
}

func (s *Sim) readAt(m *simMember, key int, rev int64) *readValue {
	var out *readValue
	err := m.st.Applier.View(func(st *mvcc.Store) error {
		res, err := st.Range([]byte(keyName(key)), nil, mvcc.RangeOptions{Rev: rev})
		if err != nil {
			return err
		}
		if len(res.KVs) > 0 {
			out = &readValue{value: string(res.KVs[0].Value), mod: res.KVs[0].ModRevision}
		}
		return nil
	})
	if err != nil {
		s.failf("%s: read %s at %d: %v", m.name, keyName(key), rev, err)
	}
	return out
}

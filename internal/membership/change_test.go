package membership

import (
	"errors"
	"testing"
)

// Validate refuses what etcd's ValidateConfigurationChange refuses, with
// the same errors (v3rpc maps each to etcd's gRPC error).
func TestValidate(t *testing.T) {
	members := []Member{
		{ID: 1, Name: "a", PeerURLs: []string{"http://a:2380"}},
		{ID: 2, Name: "b", PeerURLs: []string{"http://b:2380"}},
		{ID: 3, PeerURLs: []string{"http://c:2380"}, IsLearner: true},
	}
	removed := []uint64{9}
	for _, tc := range []struct {
		name        string
		change      Change
		maxLearners int
		want        error
	}{
		{"add new voter", Change{Add, Member{ID: 4, PeerURLs: []string{"http://d:2380"}}}, 1, nil},
		{"add existing ID", Change{Add, Member{ID: 2, PeerURLs: []string{"http://d:2380"}}}, 1, ErrIDExists},
		{"add removed ID", Change{Add, Member{ID: 9, PeerURLs: []string{"http://d:2380"}}}, 1, ErrIDRemoved},
		{"add taken peer URL", Change{Add, Member{ID: 4, PeerURLs: []string{"http://d:2380", "http://b:2380"}}}, 1, ErrPeerURLExists},
		{"add learner over the limit", Change{Add, Member{ID: 4, PeerURLs: []string{"http://d:2380"}, IsLearner: true}}, 1, ErrTooManyLearners},
		{"add learner within the limit", Change{Add, Member{ID: 4, PeerURLs: []string{"http://d:2380"}, IsLearner: true}}, 2, nil},
		{"add learner with none allowed", Change{Add, Member{ID: 4, PeerURLs: []string{"http://d:2380"}, IsLearner: true}}, 0, ErrTooManyLearners},
		{"remove member", Change{Remove, Member{ID: 2}}, 1, nil},
		{"remove unknown", Change{Remove, Member{ID: 7}}, 1, ErrIDNotFound},
		{"remove removed", Change{Remove, Member{ID: 9}}, 1, ErrIDRemoved},
		{"update own URL", Change{Update, Member{ID: 2, PeerURLs: []string{"http://b:2380"}}}, 1, nil},
		{"update to new URL", Change{Update, Member{ID: 2, PeerURLs: []string{"http://b2:2380"}}}, 1, nil},
		{"update to another's URL", Change{Update, Member{ID: 2, PeerURLs: []string{"http://a:2380"}}}, 1, ErrPeerURLExists},
		{"update unknown", Change{Update, Member{ID: 7, PeerURLs: []string{"http://x:2380"}}}, 1, ErrIDNotFound},
		{"promote learner", Change{Promote, Member{ID: 3}}, 1, nil},
		{"promote voter", Change{Promote, Member{ID: 1}}, 1, ErrMemberNotLearner},
		{"promote unknown", Change{Promote, Member{ID: 7}}, 1, ErrIDNotFound},
	} {
		if err := Validate(members, removed, tc.change, tc.maxLearners); !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The --strict-reconfig-check rules count started voters (those that
// published a name) as etcd's IsReadyTo* do.
func TestStrictReconfigRules(t *testing.T) {
	started := func(id uint64) Member { return Member{ID: id, Name: "m"} }
	unstarted := func(id uint64) Member { return Member{ID: id} }
	learner := Member{ID: 99, IsLearner: true}

	// One started member may always add a second (restoring from a backup).
	if !ReadyToAddVoter([]Member{started(1)}) {
		t.Error("1 started: adding a voter refused")
	}
	// 1 started of 2: after the add, 1 of 3 started < quorum 2.
	if ReadyToAddVoter([]Member{started(1), unstarted(2)}) {
		t.Error("1 of 2 started: adding a voter allowed")
	}
	// 2 started of 3 (and a learner, not counted): after the add, 2 of 4
	// started < quorum 3.
	if ReadyToAddVoter([]Member{started(1), started(2), unstarted(3), learner}) {
		t.Error("2 of 3 started: adding a fourth voter allowed")
	}
	if !ReadyToAddVoter([]Member{started(1), started(2), started(3), learner}) {
		t.Error("3 of 3 started: adding a fourth voter refused")
	}
	// Removing a started voter of 3 with one unstarted leaves 1 of 2.
	if ReadyToRemoveVoter([]Member{started(1), started(2), unstarted(3)}, 2) {
		t.Error("removing a started voter, leaving 1 of 2 started, allowed")
	}
	// Removing the unstarted one leaves 2 of 2.
	if !ReadyToRemoveVoter([]Member{started(1), started(2), unstarted(3)}, 3) {
		t.Error("removing the unstarted voter refused")
	}
	// Promoting counts the learner as started: with it, 2 of 3 started.
	if !ReadyToPromote([]Member{started(1), unstarted(2), learner}) {
		t.Error("promote to 2 of 3 started refused")
	}
	// 2 of 4 started with it: refused.
	if ReadyToPromote([]Member{started(1), unstarted(2), unstarted(3), learner}) {
		t.Error("promote to 2 of 4 started allowed")
	}
}

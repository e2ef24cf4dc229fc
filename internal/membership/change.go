package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The errors of a membership change that the cluster refuses, in etcd's
// words (its membership package's): v3rpc maps each to etcd's gRPC error.
var (
	ErrIDRemoved        = errors.New("membership: ID removed")
	ErrIDExists         = errors.New("membership: ID exists")
	ErrIDNotFound       = errors.New("membership: ID not found")
	ErrPeerURLExists    = errors.New("membership: peerURL exists")
	ErrMemberNotLearner = errors.New("membership: can only promote a learner member")
	ErrTooManyLearners  = errors.New("membership: too many learner members in cluster")
)

// ChangeContext is what a conf change entry carries in its Context: the
// member (whole for an add, the new peer URLs for an update, nothing
// else for a promote or remove) and the ID of the request that proposed
// it, so that the proposer can be told when it is applied. It encodes as
// the member's JSON with one more field, so a founding entry's context (a
// bare Member) decodes as a ChangeContext with no request.
type ChangeContext struct {
	Member
	RequestID uint64 `json:"requestID,omitempty"`
}

// Marshal encodes c.
func (c *ChangeContext) Marshal() []byte {
	data, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a change context: %v", err)) // cannot fail
	}
	return data
}

// Unmarshal decodes what Marshal (or Member.Marshal) wrote.
func (c *ChangeContext) Unmarshal(data []byte) error {
	if err := json.Unmarshal(data, c); err != nil {
		return fmt.Errorf("membership: decoding a change context: %w", err)
	}
	return nil
}

// ChangeKind is what a membership change does.
type ChangeKind int

const (
	// Add adds Member (a learner if Member.IsLearner).
	Add ChangeKind = iota
	// Remove removes Member.ID.
	Remove
	// Update sets Member.ID's peer URLs to Member.PeerURLs.
	Update
	// Promote makes the learner Member.ID a voter.
	Promote
)

func (k ChangeKind) String() string {
	switch k {
	case Add:
		return "add"
	case Remove:
		return "remove"
	case Update:
		return "update"
	case Promote:
		return "promote"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is a membership change as a client asks for it.
type Change struct {
	Kind   ChangeKind
	Member Member
}

// Validate checks change against the cluster's members and the IDs
// removed from it, as etcd's ValidateConfigurationChange does: an ID is
// never reused once removed, an added member's ID and peer URLs are new,
// an update's peer URLs belong to no other member, only a learner is
// promoted, and an added learner keeps the learners at maxLearners or
// fewer. It is pure: the leader runs it against its applied membership
// before proposing, one change at a time.
func Validate(members []Member, removed []uint64, change Change, maxLearners int) error {
	id := change.Member.ID
	if slices.Contains(removed, id) {
		return ErrIDRemoved
	}
	i := slices.IndexFunc(members, func(m Member) bool { return m.ID == id })
	switch change.Kind {
	case Add:
		if i >= 0 {
			return ErrIDExists
		}
		if peerURLTaken(members, id, change.Member.PeerURLs) {
			return ErrPeerURLExists
		}
		if change.Member.IsLearner {
			n := 0
			for _, m := range members {
				if m.IsLearner {
					n++
				}
			}
			if n+1 > maxLearners {
				return ErrTooManyLearners
			}
		}
	case Remove:
		if i < 0 {
			return ErrIDNotFound
		}
	case Update:
		if i < 0 {
			return ErrIDNotFound
		}
		if peerURLTaken(members, id, change.Member.PeerURLs) {
			return ErrPeerURLExists
		}
	case Promote:
		if i < 0 {
			return ErrIDNotFound
		}
		if !members[i].IsLearner {
			return ErrMemberNotLearner
		}
	default:
		return fmt.Errorf("membership: unknown change %v", change.Kind)
	}
	return nil
}

// peerURLTaken reports whether a member other than id has one of urls.
func peerURLTaken(members []Member, id uint64, urls []string) bool {
	for _, m := range members {
		if m.ID == id {
			continue
		}
		for _, u := range urls {
			if slices.Contains(m.PeerURLs, u) {
				return true
			}
		}
	}
	return false
}

// IsStarted reports whether the member has published its name, i.e. has
// run (etcd's Member.IsStarted).
func (m *Member) IsStarted() bool { return m.Name != "" }

// voters counts the voters other than skip, and those of them started.
func voters(members []Member, skip uint64) (n, started int) {
	for _, m := range members {
		if m.IsLearner || m.ID == skip {
			continue
		}
		if m.IsStarted() {
			started++
		}
		n++
	}
	return n, started
}

// ReadyToAddVoter is etcd's --strict-reconfig-check rule for adding a
// voter: the started voters must make a quorum of the voters after the
// add (a one-member cluster may always add one, to restore from backup).
func ReadyToAddVoter(members []Member) bool {
	n, started := voters(members, 0)
	n++ // the new one, not started
	if started == 1 && n == 2 {
		return true
	}
	return started >= n/2+1
}

// ReadyToRemoveVoter is the rule for removing voter id: the started
// voters left must make a quorum of the voters left.
func ReadyToRemoveVoter(members []Member, id uint64) bool {
	n, started := voters(members, id)
	return started >= n/2+1
}

// ReadyToPromote is the rule for promoting a learner, counted as started:
// the started voters with it must make a quorum of the voters with it.
func ReadyToPromote(members []Member) bool {
	n, started := voters(members, 0)
	return started+1 >= (n+1)/2+1
}

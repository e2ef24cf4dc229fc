package membership

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Member is one member of a cluster.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// Marshal encodes m for the backend and for raft conf change contexts.
func (m *Member) Marshal() []byte {
	data, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a member: %v", err)) // cannot fail
	}
	return data
}

// Unmarshal decodes what Marshal wrote.
func (m *Member) Unmarshal(data []byte) error {
	if err := json.Unmarshal(data, m); err != nil {
		return fmt.Errorf("membership: decoding a member: %w", err)
	}
	return nil
}

// IDString formats an ID as etcd does in logs and flags (lowercase hex).
func IDString(id uint64) string { return strconv.FormatUint(id, 16) }

// ComputeMemberID derives a member's ID from its peer URLs and the cluster
// token, as etcd does for founding members (addedAtUnix 0) and for members
// added later (addedAtUnix the time of the add, in seconds).
func ComputeMemberID(peerURLs []string, token string, addedAtUnix int64) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	b := []byte(strings.Join(urls, ""))
	b = append(b, token...)
	if addedAtUnix != 0 {
		b = append(b, strconv.FormatInt(addedAtUnix, 10)...)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// ComputeClusterID derives the cluster ID from the founding members' IDs.
func ComputeClusterID(memberIDs []uint64) uint64 {
	ids := slices.Clone(memberIDs)
	slices.Sort(ids)
	b := make([]byte, 0, 8*len(ids))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// ErrBadInitialCluster is an --initial-cluster value that cannot be used.
var ErrBadInitialCluster = errors.New("membership: bad --initial-cluster")

// ParseInitialCluster reads etcd's --initial-cluster syntax,
// "name1=url1,name1=url2,name2=url3", into members (in order of first
// appearance), with IDs derived from token.
func ParseInitialCluster(s, token string) ([]Member, error) {
	var members []Member
	byName := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, rawURL, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: %q is not name=url", ErrBadInitialCluster, part)
		}
		if err := CheckURL(rawURL); err != nil {
			return nil, fmt.Errorf("%w: member %s: %w", ErrBadInitialCluster, name, err)
		}
		i, seen := byName[name]
		if !seen {
			i = len(members)
			byName[name] = i
			members = append(members, Member{Name: name})
		}
		if slices.Contains(members[i].PeerURLs, rawURL) {
			return nil, fmt.Errorf("%w: member %s lists %s twice", ErrBadInitialCluster, name, rawURL)
		}
		members[i].PeerURLs = append(members[i].PeerURLs, rawURL)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: no members", ErrBadInitialCluster)
	}
	urlOwner := map[string]string{}
	ids := map[uint64]string{}
	for i := range members {
		m := &members[i]
		slices.Sort(m.PeerURLs)
		for _, u := range m.PeerURLs {
			if other, ok := urlOwner[u]; ok {
				return nil, fmt.Errorf("%w: members %s and %s share the peer URL %s", ErrBadInitialCluster, other, m.Name, u)
			}
			urlOwner[u] = m.Name
		}
		m.ID = ComputeMemberID(m.PeerURLs, token, 0)
		if other, ok := ids[m.ID]; ok {
			return nil, fmt.Errorf("%w: members %s and %s have the same ID", ErrBadInitialCluster, other, m.Name)
		}
		ids[m.ID] = m.Name
	}
	return members, nil
}

// CheckURL accepts what etcd accepts as a peer or client URL: http or
// https with a host and no path, or unix/unixs with a socket path in the
// host, the path or both ("unix://localhost:2379" is a file named
// "localhost:2379"; "unix:///run/etcd.sock" an absolute path).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("URL %q: no host", raw)
		}
		if u.Path != "" && u.Path != "/" {
			return fmt.Errorf("URL %q: a path is not allowed", raw)
		}
	case "unix", "unixs":
		if u.Host+u.Path == "" {
			return fmt.Errorf("URL %q: no socket path", raw)
		}
	default:
		return fmt.Errorf("URL %q: scheme must be http, https, unix or unixs", raw)
	}
	return nil
}

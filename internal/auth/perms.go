package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// span is the keys [begin, end); a nil end is no end (every key from
// begin on).
type span struct{ begin, end []byte }

// lessEnd compares two ends, nil being the greatest.
func lessEnd(a, b []byte) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return bytes.Compare(a, b) < 0
}

// permSpan is the keys a permission names, as etcd reads it: no range end
// is the key alone, "\x00" every key from the key on.
func permSpan(key, rangeEnd []byte) span {
	switch {
	case len(rangeEnd) == 0:
		return span{key, append(slices.Clip(key), 0)}
	case isOpenEnded(rangeEnd):
		return span{key, nil}
	}
	return span{key, rangeEnd}
}

func isOpenEnded(rangeEnd []byte) bool { return len(rangeEnd) == 1 && rangeEnd[0] == 0 }

// spanSet is a union of spans, kept sorted, disjoint and with no two
// touching (merged), so that a range is covered exactly when one span
// covers it.
type spanSet []span

func newSpanSet(spans []span) spanSet {
	slices.SortFunc(spans, func(a, b span) int { return bytes.Compare(a.begin, b.begin) })
	var out spanSet
	for _, s := range spans {
		if s.end != nil && bytes.Compare(s.begin, s.end) >= 0 {
			continue // empty
		}
		if n := len(out); n > 0 && (out[n-1].end == nil || bytes.Compare(s.begin, out[n-1].end) <= 0) {
			if lessEnd(out[n-1].end, s.end) {
				out[n-1].end = s.end
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// containing returns the span holding key, if any.
func (ss spanSet) containing(key []byte) (span, bool) {
	// The last span beginning at or before key.
	i, found := slices.BinarySearchFunc(ss, key, func(s span, k []byte) int { return bytes.Compare(s.begin, k) })
	if !found {
		i--
	}
	if i < 0 {
		return span{}, false
	}
	s := ss[i]
	return s, s.end == nil || bytes.Compare(key, s.end) < 0
}

// covers reports whether the set holds every key of a request's range:
// the key alone (no range end), every key from key on ("\x00"), or
// [key, rangeEnd). An empty range (rangeEnd at or before key) is judged
// by its first key.
func (ss spanSet) covers(key, rangeEnd []byte) bool {
	s, ok := ss.containing(key)
	if !ok {
		return false
	}
	switch {
	case len(rangeEnd) == 0:
		return true
	case isOpenEnded(rangeEnd):
		return s.end == nil
	case bytes.Compare(rangeEnd, key) <= 0:
		return true
	}
	return s.end == nil || bytes.Compare(rangeEnd, s.end) <= 0
}

// userPerms are one user's permissions, merged over its roles.
type userPerms struct{ read, write spanSet }

func mergePerms(u *authpb.User, roles map[string]*authpb.Role) *userPerms {
	var read, write []span
	for _, name := range u.Roles {
		r := roles[name]
		if r == nil {
			continue
		}
		for _, p := range r.KeyPermission {
			s := permSpan(p.Key, p.RangeEnd)
			switch p.PermType {
			case authpb.READWRITE:
				read, write = append(read, s), append(write, s)
			case authpb.READ:
				read = append(read, s)
			case authpb.WRITE:
				write = append(write, s)
			}
		}
	}
	return &userPerms{read: newSpanSet(read), write: newSpanSet(write)}
}

// validPermRange is etcd's rule for a permission's range: a key, and no
// range end, "\x00", or an end after the key.
func validPermRange(key, rangeEnd []byte) bool {
	if len(key) == 0 {
		return false
	}
	return len(rangeEnd) == 0 || isOpenEnded(rangeEnd) || bytes.Compare(key, rangeEnd) < 0
}

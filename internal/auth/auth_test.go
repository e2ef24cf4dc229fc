package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// memWriter is a backend batch in a map, to check what Apply persists.
type memWriter map[string][]byte

func (m memWriter) Set(k, v []byte) { m[string(k)] = v }
func (m memWriter) Delete(k []byte) { delete(m, string(k)) }

func newStore(t *testing.T, token string) *Store {
	t.Helper()
	s, err := New(Options{Token: token, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// apply applies r as user at the next index and returns its response.
func apply(t *testing.T, s *Store, w memWriter, user string, r *pb.InternalRaftRequest) (any, error) {
	t.Helper()
	r.Header = &pb.RequestHeader{Username: user, AuthRevision: s.Revision()}
	return s.Apply(r, 100, w)
}

func mustApply(t *testing.T, s *Store, w memWriter, user string, r *pb.InternalRaftRequest) any {
	t.Helper()
	resp, err := apply(t, s, w, user, r)
	if err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	return resp
}

// setup makes etcd's usual arrangement: root, and alice with role r
// holding perms; then enables auth.
func setup(t *testing.T, s *Store, w memWriter, perms ...*authpb.Permission) {
	t.Helper()
	h, err := s.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: h}})
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}})
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "root"}})
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: h}})
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}})
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"}})
	for _, p := range perms {
		mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: p}})
	}
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
}

func perm(t authpb.Permission_Type, key, end string) *authpb.Permission {
	p := &authpb.Permission{PermType: t, Key: []byte(key)}
	if end != "" {
		p.RangeEnd = []byte(end)
	}
	return p
}

// What a user may read or write is exactly the union of its roles'
// ranges: a single-key permission, a prefix, a from-key range ("\x00"),
// ranges that touch merged into one. A range request is allowed only if
// the whole range is covered: a watch or get from a readable key on is
// not (etcd GHSA-xg4h-6gfc-h4m8: a user allowed one key saw every key
// from it on).
func TestRangeCoverage(t *testing.T) {
	s := newStore(t, "")
	w := memWriter{}
	setup(t, s, w,
		perm(authpb.READ, "k", ""),       // the key k alone
		perm(authpb.READ, "p/", "p0"),    // the prefix p/
		perm(authpb.READ, "m", "n"),      // [m, n) ...
		perm(authpb.READ, "n", "o"),      // ... touching [n, o): [m, o)
		perm(authpb.WRITE, "z", "\x00"),  // every key from z on
		perm(authpb.READWRITE, "rw", ""), // read and write
		perm(authpb.READ, "a", "b"),      // [a, b)
	)
	alice := Info{User: "alice", Revision: s.Revision()}
	for _, c := range []struct {
		key, end string
		write    bool
		ok       bool
	}{
		{"k", "", false, true},
		{"k", "", true, false},
		{"k", "\x00", false, false},  // from k on: more than k
		{"k", "k\x00", false, true},  // exactly k, as a range
		{"k", "l", false, false},     // k and what follows
		{"j", "k\x00", false, false}, // j is not readable
		{"p/", "p0", false, true},
		{"p/x", "p/y", false, true},
		{"p/", "\x00", false, false},
		{"p", "p0", false, false},
		{"m", "o", false, true}, // across the two touching ranges
		{"m", "o\x00", false, false},
		{"n", "", false, true},
		{"z", "\x00", true, true},
		{"zzz", "", true, true},
		{"z", "\x00", false, false},
		{"y", "\x00", true, false},
		{"rw", "", true, true},
		{"rw", "", false, true},
		{"b", "", false, false},
		{"\x00", "\x00", false, false}, // everything
	} {
		var err error
		if c.write {
			err = s.CheckDelete(alice, []byte(c.key), []byte(c.end))
		} else {
			err = s.CheckRange(alice, []byte(c.key), []byte(c.end))
		}
		if ok := err == nil; ok != c.ok {
			t.Errorf("alice %s [%q, %q): %v, want allowed=%v", map[bool]string{true: "writes", false: "reads"}[c.write], c.key, c.end, err, c.ok)
		} else if err != nil && !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("[%q, %q): %v, want %v", c.key, c.end, err, ErrPermissionDenied)
		}
	}
	// Root may do anything; no user, nothing; an old revision is told so.
	if err := s.CheckRange(Info{User: "root", Revision: s.Revision()}, []byte("\x00"), []byte("\x00")); err != nil {
		t.Errorf("root reads everything: %v", err)
	}
	if err := s.CheckRange(Info{}, []byte("k"), nil); !errors.Is(err, ErrUserEmpty) {
		t.Errorf("no user: %v, want %v", err, ErrUserEmpty)
	}
	if err := s.CheckRange(Info{User: "alice", Revision: s.Revision() - 1}, []byte("k"), nil); !errors.Is(err, ErrAuthOldRevision) {
		t.Errorf("an old revision: %v, want %v", err, ErrAuthOldRevision)
	}
}

// Writes inside a transaction are checked op by op, nested ones too;
// prev_kv needs read permission; a put with a lease needs write on the
// lease's other keys (else the user could revoke what it may not write).
func TestRequestChecks(t *testing.T) {
	s := newStore(t, "")
	w := memWriter{}
	setup(t, s, w, perm(authpb.WRITE, "w/", "w0"), perm(authpb.READWRITE, "rw/", "rw0"))
	alice := Info{User: "alice", Revision: s.Revision()}
	noKeys := func(int64) []string { return nil }
	leaseKeys := func(id int64) []string {
		if id == 7 {
			return []string{"secret"}
		}
		return []string{"rw/held"}
	}
	put := func(key string, prevKV bool, lease int64) *pb.PutRequest {
		return &pb.PutRequest{Key: []byte(key), PrevKv: prevKV, Lease: lease}
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"put w/a", s.CheckPutRequest(alice, put("w/a", false, 0), noKeys)},
		{"put w/a prev_kv", s.CheckPutRequest(alice, put("w/a", true, 0), noKeys)},
		{"put rw/a prev_kv", s.CheckPutRequest(alice, put("rw/a", true, 0), noKeys)},
		{"put w/a with a lease on secret", s.CheckPutRequest(alice, put("w/a", false, 7), leaseKeys)},
		{"put w/a with a lease on rw/held", s.CheckPutRequest(alice, put("w/a", false, 8), leaseKeys)},
		{"delete w/ prev_kv", s.CheckDeleteRequest(alice, &pb.DeleteRangeRequest{Key: []byte("w/"), RangeEnd: []byte("w0"), PrevKv: true})},
		{"txn compare on w/a", s.CheckTxn(alice, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("w/a")}}}, noKeys)},
		{"txn nested put on x", s.CheckTxn(alice, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{
			RequestTxn: &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: put("x", false, 0)}}}}}}}}, noKeys)},
		{"txn put w/a, range rw/", s.CheckTxn(alice, &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: put("w/a", false, 0)}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("rw/"), RangeEnd: []byte("rw0")}}}}}, noKeys)},
		{"txn delete rw/ prev_kv in failure", s.CheckTxn(alice, &pb.TxnRequest{Failure: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("w/a"), PrevKv: true}}}}}, noKeys)},
		{"revoke a lease on secret", s.CheckLeaseKeys(alice, 7, leaseKeys)},
		{"revoke a lease on rw/held", s.CheckLeaseKeys(alice, 8, leaseKeys)},
	} {
		want := map[string]bool{"put w/a": true, "put rw/a prev_kv": true, "put w/a with a lease on rw/held": true,
			"txn put w/a, range rw/": true, "revoke a lease on rw/held": true}[c.name]
		if (c.err == nil) != want {
			t.Errorf("%s: %v, want allowed=%v", c.name, c.err, want)
		}
	}
}

// etcd's rules for managing users and roles, and the revision moving with
// every change (and not with a refusal or a no-op).
func TestManagement(t *testing.T) {
	s := newStore(t, "")
	w := memWriter{}
	if _, err := apply(t, s, w, "", &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}); !errors.Is(err, ErrRootUserNotExist) {
		t.Fatalf("enable with no root: %v", err)
	}
	mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", Password: "x"}})
	if _, err := apply(t, s, w, "", &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}); !errors.Is(err, ErrRootRoleNotExist) {
		t.Fatalf("enable with root not root: %v", err)
	}
	setupRest := func() {
		mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}})
		mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}})
		mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob", Password: "x"}})
		mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "r"}})
		mustApply(t, s, w, "", &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	}
	setupRest()
	rev := s.Revision()
	for _, c := range []struct {
		user string
		r    *pb.InternalRaftRequest
		want error
	}{
		{"bob", &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}, ErrPermissionDenied},
		{"", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "x"}}, ErrUserEmpty},
		{"root", &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}}, ErrInvalidAuthMgmt},
		{"root", &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "root"}}, ErrInvalidAuthMgmt},
		{"root", &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}}, ErrInvalidAuthMgmt},
		{"root", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob"}}, ErrUserAlreadyExist},
		{"root", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{}}, ErrUserEmpty},
		{"root", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{}}, ErrRoleEmpty},
		{"root", &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "nope"}}, ErrRoleNotFound},
		{"root", &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "r"}}, ErrRoleNotGranted},
		{"root", &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r"}}, ErrPermissionNotGiven},
		{"root", &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r",
			Perm: perm(authpb.READ, "b", "a")}}, ErrInvalidAuthMgmt},
		{"root", &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("k")}}, ErrPermissionNotGranted},
		{"bob", &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "root"}}, ErrPermissionDenied},
		{"bob", &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}, ErrPermissionDenied},
	} {
		if _, err := apply(t, s, w, c.user, c.r); !errors.Is(err, c.want) {
			t.Errorf("%s: %v: %v, want %v", c.user, c.r, err, c.want)
		}
	}
	if s.Revision() != rev {
		t.Fatalf("refusals moved the revision %d -> %d", rev, s.Revision())
	}
	// A user reads itself and its roles; granting a role twice is a no-op.
	if resp := mustApply(t, s, w, "bob", &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}}); len(resp.(*pb.AuthUserGetResponse).Roles) != 1 {
		t.Errorf("bob gets bob: %v", resp)
	}
	mustApply(t, s, w, "bob", &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}})
	mustApply(t, s, w, "root", &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "r"}})
	if s.Revision() != rev {
		t.Fatalf("a no-op moved the revision")
	}
	// Deleting a role takes it from its users.
	mustApply(t, s, w, "root", &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "r"}})
	if s.HasRole("bob", "r") || s.Revision() != rev+1 {
		t.Errorf("after deleting role r: bob has it %v, revision %d (want %d)", s.HasRole("bob", "r"), s.Revision(), rev+1)
	}
	// Disabling moves the revision; everything is then allowed.
	mustApply(t, s, w, "root", &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	if s.Enabled() || s.Revision() != rev+2 || s.CheckPut(Info{}, []byte("k")) != nil || s.IsAdmin(Info{}) != nil {
		t.Errorf("after disable: enabled %v revision %d", s.Enabled(), s.Revision())
	}
	// What was written reloads to the same state.
	get := func(k []byte) ([]byte, bool, error) { v, ok := w[string(k)]; return v, ok, nil }
	scan := func(prefix []byte, fn func(k, v []byte) bool) error {
		for _, k := range sortedKeys(w) {
			if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) && !fn([]byte(k), w[k]) {
				break
			}
		}
		return nil
	}
	st, err := Load(get, scan)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()
	if st.Enabled != before.Enabled || st.Revision != before.Revision || len(st.Users) != len(before.Users) || len(st.Roles) != len(before.Roles) {
		t.Errorf("reloaded %+v, want %+v", st, before)
	}
}

// Passwords: bcrypt hashes made by the proposer; a no-password user cannot
// sign in; a simple token dies with a password change, after its TTL
// unused, and when auth is disabled; it lives on while used.
func TestPasswordsAndSimpleTokens(t *testing.T) {
	s := newStore(t, "")
	w := memWriter{}
	setup(t, s, w)
	if _, err := s.CheckPassword("alice", "bad"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("a wrong password: %v", err)
	}
	mustApply(t, s, w, "root", &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "svc",
		Options: &authpb.UserAddOptions{NoPassword: true}}})
	if _, err := s.CheckPassword("svc", ""); !errors.Is(err, ErrNoPasswordUser) {
		t.Errorf("a no-password user: %v", err)
	}
	if _, err := s.CheckPassword("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	st := s.tokens.(*simpleTokens)
	st.now = func() time.Time { return now }
	st.ttl = time.Minute
	prefix, _ := s.TokenPrefix()
	resp := mustApply(t, s, w, "", &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: prefix}})
	token := resp.(*pb.AuthenticateResponse).Token
	if idx, ok := s.SimpleTokenIndex(token); !ok || idx != 100 {
		t.Fatalf("token %q: index %d %v", token, idx, ok)
	}
	for range 3 { // each use renews it
		now = now.Add(50 * time.Second)
		if ai, err := s.InfoFromToken(token); err != nil || ai.User != "alice" || ai.Revision != s.Revision() {
			t.Fatalf("a used token: %+v %v", ai, err)
		}
	}
	now = now.Add(61 * time.Second)
	if _, err := s.InfoFromToken(token); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("a token unused past its TTL: %v", err)
	}
	resp = mustApply(t, s, w, "", &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: prefix}})
	token = resp.(*pb.AuthenticateResponse).Token
	mustApply(t, s, w, "root", &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "alice", Password: "new"}})
	if _, err := s.InfoFromToken(token); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("a token after a password change: %v", err)
	}
	if _, err := s.CheckPassword("alice", "new"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	if _, err := s.InfoFromToken("forged.100"); !errors.Is(err, ErrInvalidAuthToken) {
		t.Errorf("a forged token: %v", err)
	}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// forge changes one character in the middle of a token's signature. (Not
// its last: base64url's last character carries padding bits, which a decoder
// may ignore, so changing it can leave the signature as it was.)
func forge(token string) string {
	i := len(token) - 10
	c := byte('A')
	if token[i] == c {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

// JWT tokens: signed by a member with the private key, verified by any
// member with the public one, carrying the auth revision they were made
// at; forged, expired, or signed with another method, they are refused.
func TestJWT(t *testing.T) {
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rpriv := writePEM(t, dir, "rsa", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk))
	rpubDER, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	rpub := writePEM(t, dir, "rsa.pub", "PUBLIC KEY", rpubDER)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	epubDER, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	epub := writePEM(t, dir, "ec.pub", "PUBLIC KEY", epubDER)

	for _, c := range []struct {
		opts string
		want error
	}{
		{"jwt,pub-key=" + rpub + ",priv-key=" + rpriv + ",sign-method=RS256", nil},
		{"jwt,pub-key=" + rpub + ",sign-method=RS256", nil},
		{"jwt,pub-key=" + epub + ",priv-key=" + rpriv + ",sign-method=RS256", errAny},
		{"jwt,pub-key=" + rpub + ",priv-key=" + rpriv + ",sign-method=NOPE", ErrInvalidAuthOpts},
		{"jwt,sign-method=RS256", ErrMissingKey},
		{"jwt,priv-key", ErrInvalidAuthOpts},
		{"unknown", ErrInvalidAuthOpts},
	} {
		_, err := New(Options{Token: c.opts})
		if c.want == errAny && err == nil || c.want != errAny && !errors.Is(err, c.want) {
			t.Errorf("--auth-token %s: %v, want %v", c.opts, err, c.want)
		}
	}

	signer := newStore(t, "jwt,pub-key="+rpub+",priv-key="+rpriv+",sign-method=RS256,ttl=1m")
	verifier := newStore(t, "jwt,pub-key="+rpub+",sign-method=RS256")
	w := memWriter{}
	setup(t, signer, w)
	setup(t, verifier, memWriter{})
	resp := mustApply(t, signer, w, "", &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice"}})
	token := resp.(*pb.AuthenticateResponse).Token
	for name, s := range map[string]*Store{"signer": signer, "verifier": verifier} {
		if ai, err := s.InfoFromToken(token); err != nil || ai.User != "alice" || ai.Revision != signer.Revision() {
			t.Errorf("%s reads the token: %+v %v", name, ai, err)
		}
		if _, err := s.InfoFromToken(forge(token)); !errors.Is(err, ErrInvalidAuthToken) {
			t.Errorf("%s reads a forged token: %v", name, err)
		}
	}
	if _, err := verifier.Apply(&pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice"}}, 1, w); !errors.Is(err, ErrVerifyOnly) {
		t.Errorf("a verify-only member signs: %v", err)
	}
	// A revision change makes the token old for permission checks.
	mustApply(t, signer, w, "root", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "new"}})
	ai, _ := signer.InfoFromToken(token)
	if err := signer.CheckRange(ai, []byte("k"), nil); !errors.Is(err, ErrAuthOldRevision) {
		t.Errorf("a token older than the auth state: %v", err)
	}
	// Expired.
	signer.tokens.(*jwtTokens).ttl = -time.Minute
	resp = mustApply(t, signer, w, "", &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice"}})
	if _, err := signer.InfoFromToken(resp.(*pb.AuthenticateResponse).Token); !errors.Is(err, ErrInvalidAuthToken) {
		t.Errorf("an expired token: %v", err)
	}
}

var errAny = errors.New("any error")

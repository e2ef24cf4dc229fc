package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

// The root user and role: the root role may do anything, and auth can be
// enabled only once the root user exists and holds it.
const (
	RootUser = "root"
	RootRole = "root"
)

// Backend keys (see doc.go).
var (
	Prefix      = []byte("c/auth/")
	enabledKey  = []byte("c/auth/enabled")
	revisionKey = []byte("c/auth/revision")
	userPrefix  = []byte("c/auth/user/")
	rolePrefix  = []byte("c/auth/role/")
)

// rootPerm is what etcd shows as the root role's permission.
var rootPerm = authpb.Permission{PermType: authpb.READWRITE, Key: []byte{}, RangeEnd: []byte{0}}

// Info is who makes a request: the user its token or certificate names
// and the auth revision it was checked at (0: no user).
type Info struct {
	User     string
	Revision uint64
}

// Writer takes the backend writes of an auth change (the entry's batch).
type Writer interface {
	Set(key, value []byte)
	Delete(key []byte)
}

// State is the persisted auth state, as Load reads it and a snapshot
// file carries it.
type State struct {
	Enabled  bool
	Revision uint64
	Users    []*authpb.User
	Roles    []*authpb.Role
}

// Store is the auth state as of the applier's consistent index, with the
// token provider. Apply (the apply loop) is its only writer.
type Store struct {
	logger     *zap.Logger
	bcryptCost int
	tokens     tokenProvider

	// mu guards the fields below: Apply and Reset hold it exclusively,
	// every check shared.
	mu       sync.RWMutex
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	// perms are the users' merged permissions, rebuilt on each change.
	perms map[string]*userPerms
}

// Options configure a Store.
type Options struct {
	// Token is --auth-token: "simple" (the default), or
	// "jwt,pub-key=...,priv-key=...,sign-method=...[,ttl=...]".
	Token string
	// TokenTTL is --auth-token-ttl: how long an unused simple token lives.
	TokenTTL int64 // seconds
	// BcryptCost is --bcrypt-cost (0: bcrypt's default).
	BcryptCost int
	Logger     *zap.Logger
}

// New returns an empty, disabled store (Reset loads one), or an error for
// options etcd refuses.
func New(o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	cost := o.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("invalid bcrypt-cost: %d: should be between %d and %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	tp, err := newTokenProvider(o.Logger, o.Token, o.TokenTTL)
	if err != nil {
		return nil, err
	}
	s := &Store{logger: o.Logger, bcryptCost: cost, tokens: tp}
	s.resetLocked(State{})
	return s, nil
}

// Close stops the token provider's timers.
func (s *Store) Close() { s.tokens.disable() }

// BcryptCost is the cost passwords are hashed with.
func (s *Store) BcryptCost() int { return s.bcryptCost }

// HashPassword hashes a password for a user add or password change, as
// the proposing member does (the entry carries the hash, never the
// password): bcrypt, base64.
func (s *Store) HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.bcryptCost)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// Load reads the persisted state through get (one key) and scan (every
// key with a prefix, in order).
func Load(get func(key []byte) ([]byte, bool, error), scan func(prefix []byte, fn func(k, v []byte) bool) error) (State, error) {
	var st State
	v, ok, err := get(enabledKey)
	if err != nil {
		return st, err
	}
	st.Enabled = ok && string(v) == "1"
	if v, ok, err = get(revisionKey); err != nil {
		return st, err
	} else if ok {
		if len(v) != 8 {
			return st, fmt.Errorf("auth: malformed revision %x", v)
		}
		st.Revision = binary.BigEndian.Uint64(v)
	}
	if st.Users, err = loadAll[authpb.User](scan, userPrefix, "user"); err != nil {
		return st, err
	}
	st.Roles, err = loadAll[authpb.Role](scan, rolePrefix, "role")
	return st, err
}

// loadAll decodes every value under prefix.
func loadAll[T any, PT interface {
	*T
	proto.Message
}](scan func(prefix []byte, fn func(k, v []byte) bool) error, prefix []byte, what string) ([]*T, error) {
	var out []*T
	var decodeErr error
	err := scan(prefix, func(k, v []byte) bool {
		x := PT(new(T))
		if decodeErr = proto.Unmarshal(v, x); decodeErr != nil {
			decodeErr = fmt.Errorf("auth: %s %q does not decode: %w", what, k[len(prefix):], decodeErr)
			return false
		}
		out = append(out, (*T)(x))
		return true
	})
	if err == nil {
		err = decodeErr
	}
	return out, err
}

// Write writes a whole state (an import) through w.
func Write(st State, w Writer) error {
	w.Set(enabledKey, enabledValue(st.Enabled))
	w.Set(revisionKey, revisionValue(st.Revision))
	for _, u := range st.Users {
		v, err := proto.Marshal(u)
		if err != nil {
			return err
		}
		w.Set(userKey(string(u.Name)), v)
	}
	for _, r := range st.Roles {
		v, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		w.Set(roleKey(string(r.Name)), v)
	}
	return nil
}

// Reset replaces the state (at open, and when a snapshot image is
// installed). Tokens survive only if auth stays enabled.
func (s *Store) Reset(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked(st)
}

func (s *Store) resetLocked(st State) {
	s.users, s.roles = map[string]*authpb.User{}, map[string]*authpb.Role{}
	for _, u := range st.Users {
		s.users[string(u.Name)] = u
	}
	for _, r := range st.Roles {
		s.roles[string(r.Name)] = r
	}
	// etcd starts a new store at revision 1.
	s.revision = max(st.Revision, 1)
	s.setEnabledLocked(st.Enabled)
	s.refreshLocked()
}

// Snapshot returns a copy of the state, for an export.
func (s *Store) Snapshot() State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := State{Enabled: s.enabled, Revision: s.revision}
	for _, name := range sortedKeys(s.users) {
		st.Users = append(st.Users, s.users[name])
	}
	for _, name := range sortedKeys(s.roles) {
		st.Roles = append(st.Roles, s.roles[name])
	}
	return st
}

func (s *Store) setEnabledLocked(on bool) {
	if on == s.enabled {
		return
	}
	s.enabled = on
	if on {
		s.tokens.enable()
	} else {
		s.tokens.disable()
	}
}

func (s *Store) refreshLocked() {
	s.perms = make(map[string]*userPerms, len(s.users))
	for name, u := range s.users {
		s.perms[name] = mergePerms(u, s.roles)
	}
}

// Enabled reports whether auth is on.
func (s *Store) Enabled() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.enabled
}

// Revision is the auth revision: it moves with every change of users,
// roles or permissions, and when auth is disabled.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revision
}

// CheckPassword checks a user's password (bcrypt, slow: outside any lock
// the applier needs) and returns the auth revision it was checked at.
func (s *Store) CheckPassword(user, password string) (uint64, error) {
	s.mu.RLock()
	enabled, u, rev := s.enabled, s.users[user], s.revision
	s.mu.RUnlock()
	switch {
	case !enabled:
		return 0, ErrAuthNotEnabled
	case u == nil:
		return 0, ErrAuthFailed
	case u.Options != nil && u.Options.NoPassword:
		return 0, ErrNoPasswordUser
	}
	if bcrypt.CompareHashAndPassword(u.Password, []byte(password)) != nil {
		s.logger.Info("invalid password", zap.String("user-name", user))
		return 0, ErrAuthFailed
	}
	return rev, nil
}

// TokenPrefix is what the member checking a password draws for a simple
// token (empty for JWT): the entry carries it, so every member names the
// token alike.
func (s *Store) TokenPrefix() (string, error) { return s.tokens.prefix() }

// SimpleTokenIndex returns the raft index a simple token was assigned at:
// a member must have applied it before it knows the token.
func (s *Store) SimpleTokenIndex(token string) (uint64, bool) {
	if _, ok := s.tokens.(*simpleTokens); !ok {
		return 0, false
	}
	return simpleTokenIndex(token)
}

// InfoFromToken returns who a token stands for: with auth disabled, no
// one (a zero Info and no error); an unknown, expired or forged token is
// ErrInvalidAuthToken.
func (s *Store) InfoFromToken(token string) (Info, error) {
	s.mu.RLock()
	enabled, rev := s.enabled, s.revision
	s.mu.RUnlock()
	if !enabled {
		return Info{}, nil
	}
	info, ok := s.tokens.info(token, rev)
	if !ok {
		return Info{}, ErrInvalidAuthToken
	}
	return info, nil
}

// IsAdmin is etcd's IsAdminPermitted: nil when auth is off or the user
// holds the root role.
func (s *Store) IsAdmin(ai Info) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.isAdminLocked(ai)
}

func (s *Store) isAdminLocked(ai Info) error {
	if !s.enabled {
		return nil
	}
	if ai.User == "" {
		return ErrUserEmpty
	}
	u := s.users[ai.User]
	if u == nil {
		return ErrUserNotFound
	}
	if !hasRootRole(u) {
		return ErrPermissionDenied
	}
	return nil
}

// HasRole reports whether user holds role.
func (s *Store) HasRole(user, role string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[user]
	return u != nil && slices.Contains(u.Roles, role)
}

// CheckRange checks read permission on a range (see covers).
func (s *Store) CheckRange(ai Info, key, rangeEnd []byte) error {
	return s.checkOp(ai, key, rangeEnd, false)
}

// CheckPut checks write permission on one key.
func (s *Store) CheckPut(ai Info, key []byte) error { return s.checkOp(ai, key, nil, true) }

// CheckDelete checks write permission on a range.
func (s *Store) CheckDelete(ai Info, key, rangeEnd []byte) error {
	return s.checkOp(ai, key, rangeEnd, true)
}

func (s *Store) checkOp(ai Info, key, rangeEnd []byte, write bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkOpLocked(ai, key, rangeEnd, write)
}

// checkOpLocked is etcd's isOpPermitted.
func (s *Store) checkOpLocked(ai Info, key, rangeEnd []byte, write bool) error {
	if !s.enabled {
		return nil
	}
	if ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < s.revision {
		return ErrAuthOldRevision
	}
	u := s.users[ai.User]
	if u == nil {
		return ErrPermissionDenied
	}
	if hasRootRole(u) {
		return nil
	}
	p := s.perms[ai.User]
	set := p.read
	if write {
		set = p.write
	}
	if set.covers(key, rangeEnd) {
		return nil
	}
	return ErrPermissionDenied
}

func hasRootRole(u *authpb.User) bool { return slices.Contains(u.Roles, RootRole) }

// CheckPutRequest is etcd's check of a put: write on the key, write on
// every key already under its lease (else the user could not revoke the
// lease), read on the key for prev_kv. leaseKeys lists a lease's keys.
func (s *Store) CheckPutRequest(ai Info, r *pb.PutRequest, leaseKeys func(id int64) []string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkPutLocked(ai, r, leaseKeys)
}

func (s *Store) checkPutLocked(ai Info, r *pb.PutRequest, leaseKeys func(id int64) []string) error {
	if err := s.checkOpLocked(ai, r.Key, nil, true); err != nil {
		return err
	}
	if err := s.checkLeaseKeysLocked(ai, r.Lease, leaseKeys); err != nil {
		return err
	}
	if r.PrevKv {
		return s.checkOpLocked(ai, r.Key, nil, false)
	}
	return nil
}

// CheckLeaseKeys checks write permission on every key under a lease (a
// revoke, a keep-alive): nothing to check for an admin.
func (s *Store) CheckLeaseKeys(ai Info, id int64, leaseKeys func(id int64) []string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkLeaseKeysLocked(ai, id, leaseKeys)
}

func (s *Store) checkLeaseKeysLocked(ai Info, id int64, leaseKeys func(id int64) []string) error {
	if id == 0 || s.isAdminLocked(ai) == nil {
		return nil
	}
	for _, k := range leaseKeys(id) {
		if err := s.checkOpLocked(ai, []byte(k), nil, true); err != nil {
			return err
		}
	}
	return nil
}

// CheckDeleteRequest is etcd's check of a delete: write on the range,
// read on it for prev_kv.
func (s *Store) CheckDeleteRequest(ai Info, r *pb.DeleteRangeRequest) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkDeleteLocked(ai, r)
}

func (s *Store) checkDeleteLocked(ai Info, r *pb.DeleteRangeRequest) error {
	if err := s.checkOpLocked(ai, r.Key, r.RangeEnd, true); err != nil {
		return err
	}
	if r.PrevKv {
		return s.checkOpLocked(ai, r.Key, r.RangeEnd, false)
	}
	return nil
}

// CheckTxn is etcd's check of a transaction: read on every compare's
// range, and every operation of both branches checked as if alone,
// nested transactions included.
func (s *Store) CheckTxn(ai Info, r *pb.TxnRequest, leaseKeys func(id int64) []string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkTxnLocked(ai, r, leaseKeys)
}

func (s *Store) checkTxnLocked(ai Info, r *pb.TxnRequest, leaseKeys func(id int64) []string) error {
	for _, c := range r.Compare {
		if err := s.checkOpLocked(ai, c.Key, c.RangeEnd, false); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			var err error
			switch v := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				if v.RequestRange != nil {
					err = s.checkOpLocked(ai, v.RequestRange.Key, v.RequestRange.RangeEnd, false)
				}
			case *pb.RequestOp_RequestPut:
				if v.RequestPut != nil {
					err = s.checkPutLocked(ai, v.RequestPut, leaseKeys)
				}
			case *pb.RequestOp_RequestDeleteRange:
				if v.RequestDeleteRange != nil {
					err = s.checkDeleteLocked(ai, v.RequestDeleteRange)
				}
			case *pb.RequestOp_RequestTxn:
				if v.RequestTxn != nil {
					err = s.checkTxnLocked(ai, v.RequestTxn, leaseKeys)
				}
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// IsAuthRequest reports whether r is one Apply takes.
func IsAuthRequest(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthStatus != nil || r.Authenticate != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserChangePassword != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserGet != nil || r.AuthUserRevokeRole != nil ||
		r.AuthUserList != nil || r.AuthRoleAdd != nil || r.AuthRoleGet != nil ||
		r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil ||
		r.AuthRoleDelete != nil || r.AuthRoleList != nil
}

// NeedsAdmin reports whether r may be made only by a root user (etcd's
// list; a user may read itself and its roles, and anyone the status).
func NeedsAdmin(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthUserAdd != nil || r.AuthUserDelete != nil ||
		r.AuthUserChangePassword != nil || r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil ||
		r.AuthRoleDelete != nil || r.AuthUserList != nil || r.AuthRoleList != nil
}

// HeaderInfo is who a proposed request's header names.
func HeaderInfo(r *pb.InternalRaftRequest) Info {
	if r.Header == nil {
		return Info{}
	}
	return Info{User: r.Header.Username, Revision: r.Header.AuthRevision}
}

// Apply applies an auth request at raft index, writing its changes
// through w, and returns etcd's response or refusal. It is deterministic:
// every member makes the same writes (a simple token's name comes from
// the entry; a JWT's signature is only returned, never stored).
// REQUIRES: IsAuthRequest(r); called by the apply loop only.
func (s *Store) Apply(r *pb.InternalRaftRequest, index uint64, w Writer) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ai := HeaderInfo(r)
	if NeedsAdmin(r) {
		if err := s.isAdminLocked(ai); err != nil {
			return nil, err
		}
	}
	switch {
	case r.AuthEnable != nil:
		return &pb.AuthEnableResponse{}, s.enableLocked(w)
	case r.AuthDisable != nil:
		if s.enabled {
			s.setEnabledLocked(false)
			w.Set(enabledKey, enabledValue(false))
			s.commitLocked(w)
			s.logger.Info("disabled authentication")
		}
		return &pb.AuthDisableResponse{}, nil
	case r.AuthStatus != nil:
		return &pb.AuthStatusResponse{Enabled: s.enabled, AuthRevision: s.revision}, nil
	case r.Authenticate != nil:
		return s.authenticateLocked(r.Authenticate, index)
	case r.AuthUserAdd != nil:
		return &pb.AuthUserAddResponse{}, s.userAddLocked(r.AuthUserAdd, w)
	case r.AuthUserDelete != nil:
		return &pb.AuthUserDeleteResponse{}, s.userDeleteLocked(r.AuthUserDelete.Name, w)
	case r.AuthUserChangePassword != nil:
		return &pb.AuthUserChangePasswordResponse{}, s.userChangePasswordLocked(r.AuthUserChangePassword, w)
	case r.AuthUserGrantRole != nil:
		return &pb.AuthUserGrantRoleResponse{}, s.userGrantRoleLocked(r.AuthUserGrantRole, w)
	case r.AuthUserGet != nil:
		if err := s.isAdminLocked(ai); err != nil && r.AuthUserGet.Name != ai.User {
			return nil, err
		}
		u := s.users[r.AuthUserGet.Name]
		if u == nil {
			return nil, ErrUserNotFound
		}
		return &pb.AuthUserGetResponse{Roles: slices.Clone(u.Roles)}, nil
	case r.AuthUserRevokeRole != nil:
		return &pb.AuthUserRevokeRoleResponse{}, s.userRevokeRoleLocked(r.AuthUserRevokeRole, w)
	case r.AuthUserList != nil:
		return &pb.AuthUserListResponse{Users: sortedKeys(s.users)}, nil
	case r.AuthRoleAdd != nil:
		return &pb.AuthRoleAddResponse{}, s.roleAddLocked(r.AuthRoleAdd.Name, w)
	case r.AuthRoleGet != nil:
		name := r.AuthRoleGet.Role
		if err := s.isAdminLocked(ai); err != nil {
			if u := s.users[ai.User]; u == nil || !slices.Contains(u.Roles, name) {
				return nil, err
			}
		}
		role := s.roles[name]
		if role == nil {
			return nil, ErrRoleNotFound
		}
		if name == RootRole {
			return &pb.AuthRoleGetResponse{Perm: []*authpb.Permission{&rootPerm}}, nil
		}
		return &pb.AuthRoleGetResponse{Perm: slices.Clone(role.KeyPermission)}, nil
	case r.AuthRoleList != nil:
		return &pb.AuthRoleListResponse{Roles: sortedKeys(s.roles)}, nil
	case r.AuthRoleGrantPermission != nil:
		return &pb.AuthRoleGrantPermissionResponse{}, s.roleGrantLocked(r.AuthRoleGrantPermission, w)
	case r.AuthRoleRevokePermission != nil:
		return &pb.AuthRoleRevokePermissionResponse{}, s.roleRevokeLocked(r.AuthRoleRevokePermission, w)
	case r.AuthRoleDelete != nil:
		return &pb.AuthRoleDeleteResponse{}, s.roleDeleteLocked(r.AuthRoleDelete.Role, w)
	}
	return nil, fmt.Errorf("auth: not an auth request")
}

func (s *Store) enableLocked(w Writer) error {
	if s.enabled {
		s.logger.Info("authentication is already enabled; ignored auth enable request")
		return nil
	}
	u := s.users[RootUser]
	if u == nil {
		return ErrRootUserNotExist
	}
	if !hasRootRole(u) {
		return ErrRootRoleNotExist
	}
	s.setEnabledLocked(true)
	w.Set(enabledKey, enabledValue(true))
	// etcd does not move the revision here; it writes it, which a store
	// still at its implicit first revision needs.
	w.Set(revisionKey, revisionValue(s.revision))
	s.logger.Info("enabled authentication")
	return nil
}

func (s *Store) authenticateLocked(r *pb.InternalAuthenticateRequest, index uint64) (any, error) {
	if !s.enabled {
		return nil, ErrAuthNotEnabled
	}
	u := s.users[r.Name]
	if u == nil || u.Options != nil && u.Options.NoPassword {
		return nil, ErrAuthFailed
	}
	token, err := s.tokens.assign(r.Name, s.revision, r.SimpleToken, index)
	if err != nil {
		return nil, err
	}
	return &pb.AuthenticateResponse{Token: token}, nil
}

// password is etcd's selectPassword: the hash the proposer made, or (an
// entry of an etcd older than 3.5) a hash of the password made here.
func (s *Store) password(password, hashed string) ([]byte, error) {
	if password != "" && hashed == "" {
		return bcrypt.GenerateFromPassword([]byte(password), s.bcryptCost)
	}
	return base64.StdEncoding.DecodeString(hashed)
}

func (s *Store) userAddLocked(r *pb.AuthUserAddRequest, w Writer) error {
	if r.Name == "" {
		return ErrUserEmpty
	}
	if s.users[r.Name] != nil {
		return ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	var pw []byte
	if !opts.NoPassword {
		var err error
		if pw, err = s.password(r.Password, r.HashedPassword); err != nil {
			return ErrNoPasswordUser
		}
	}
	s.putUserLocked(&authpb.User{Name: []byte(r.Name), Password: pw, Options: opts}, w)
	s.commitLocked(w)
	s.logger.Info("added a user", zap.String("user-name", r.Name))
	return nil
}

func (s *Store) userDeleteLocked(name string, w Writer) error {
	if s.enabled && name == RootUser {
		return ErrInvalidAuthMgmt
	}
	u := s.users[name]
	if u == nil {
		return ErrUserNotFound
	}
	delete(s.users, name)
	w.Delete(userKey(name))
	s.commitLocked(w)
	s.tokens.invalidateUser(name)
	s.logger.Info("deleted a user", zap.String("user-name", name), zap.Strings("user-roles", u.Roles))
	return nil
}

func (s *Store) userChangePasswordLocked(r *pb.AuthUserChangePasswordRequest, w Writer) error {
	u := s.users[r.Name]
	if u == nil {
		return ErrUserNotFound
	}
	var pw []byte
	if u.Options == nil || !u.Options.NoPassword {
		var err error
		if pw, err = s.password(r.Password, r.HashedPassword); err != nil {
			return ErrNoPasswordUser
		}
	}
	s.putUserLocked(&authpb.User{Name: u.Name, Roles: u.Roles, Password: pw, Options: u.Options}, w)
	s.commitLocked(w)
	s.tokens.invalidateUser(r.Name)
	s.logger.Info("changed a password of a user", zap.String("user-name", r.Name), zap.Strings("user-roles", u.Roles))
	return nil
}

func (s *Store) userGrantRoleLocked(r *pb.AuthUserGrantRoleRequest, w Writer) error {
	u := s.users[r.User]
	if u == nil {
		return ErrUserNotFound
	}
	if r.Role != RootRole && s.roles[r.Role] == nil {
		return ErrRoleNotFound
	}
	if slices.Contains(u.Roles, r.Role) {
		return nil
	}
	roles := append(slices.Clone(u.Roles), r.Role)
	sort.Strings(roles)
	s.putUserLocked(&authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options}, w)
	s.commitLocked(w)
	s.logger.Info("granted a role to a user", zap.String("user-name", r.User), zap.Strings("user-roles", roles), zap.String("added-role-name", r.Role))
	return nil
}

func (s *Store) userRevokeRoleLocked(r *pb.AuthUserRevokeRoleRequest, w Writer) error {
	if s.enabled && r.Name == RootUser && r.Role == RootRole {
		return ErrInvalidAuthMgmt
	}
	u := s.users[r.Name]
	if u == nil {
		return ErrUserNotFound
	}
	if !slices.Contains(u.Roles, r.Role) {
		return ErrRoleNotGranted
	}
	roles := slices.DeleteFunc(slices.Clone(u.Roles), func(x string) bool { return x == r.Role })
	s.putUserLocked(&authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options}, w)
	s.commitLocked(w)
	s.logger.Info("revoked a role from a user", zap.String("user-name", r.Name), zap.String("revoked-role-name", r.Role))
	return nil
}

func (s *Store) roleAddLocked(name string, w Writer) error {
	if name == "" {
		return ErrRoleEmpty
	}
	if s.roles[name] != nil {
		return ErrRoleAlreadyExist
	}
	s.putRoleLocked(&authpb.Role{Name: []byte(name)}, w)
	s.commitLocked(w)
	s.logger.Info("created a role", zap.String("role-name", name))
	return nil
}

func (s *Store) roleGrantLocked(r *pb.AuthRoleGrantPermissionRequest, w Writer) error {
	if r.Perm == nil {
		return ErrPermissionNotGiven
	}
	if !validPermRange(r.Perm.Key, r.Perm.RangeEnd) {
		return ErrInvalidAuthMgmt
	}
	role := s.roles[r.Name]
	if role == nil {
		return ErrRoleNotFound
	}
	perms := slices.Clone(role.KeyPermission)
	// As etcd: the first permission at or after the key is updated if it
	// names the same range; else the new one is added in key order.
	i := sort.Search(len(perms), func(i int) bool { return bytes.Compare(perms[i].Key, r.Perm.Key) >= 0 })
	if i < len(perms) && bytes.Equal(perms[i].Key, r.Perm.Key) && bytes.Equal(perms[i].RangeEnd, r.Perm.RangeEnd) {
		perms[i] = &authpb.Permission{Key: perms[i].Key, RangeEnd: perms[i].RangeEnd, PermType: r.Perm.PermType}
	} else {
		perms = append(perms, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
		slices.SortStableFunc(perms, func(a, b *authpb.Permission) int { return bytes.Compare(a.Key, b.Key) })
	}
	s.putRoleLocked(&authpb.Role{Name: role.Name, KeyPermission: perms}, w)
	s.commitLocked(w)
	s.logger.Info("granted/updated a permission to a user", zap.String("user-name", r.Name),
		zap.String("permission-name", authpb.Permission_Type_name[int32(r.Perm.PermType)]),
		zap.ByteString("key", r.Perm.Key), zap.ByteString("range-end", r.Perm.RangeEnd))
	return nil
}

func (s *Store) roleRevokeLocked(r *pb.AuthRoleRevokePermissionRequest, w Writer) error {
	role := s.roles[r.Role]
	if role == nil {
		return ErrRoleNotFound
	}
	perms := slices.DeleteFunc(slices.Clone(role.KeyPermission), func(p *authpb.Permission) bool {
		return bytes.Equal(p.Key, r.Key) && bytes.Equal(p.RangeEnd, r.RangeEnd)
	})
	if len(perms) == len(role.KeyPermission) {
		return ErrPermissionNotGranted
	}
	s.putRoleLocked(&authpb.Role{Name: role.Name, KeyPermission: perms}, w)
	s.commitLocked(w)
	s.logger.Info("revoked a permission on range", zap.String("role-name", r.Role),
		zap.String("key", string(r.Key)), zap.String("range-end", string(r.RangeEnd)))
	return nil
}

func (s *Store) roleDeleteLocked(name string, w Writer) error {
	if s.enabled && name == RootRole {
		return ErrInvalidAuthMgmt
	}
	if s.roles[name] == nil {
		return ErrRoleNotFound
	}
	delete(s.roles, name)
	w.Delete(roleKey(name))
	for _, uname := range sortedKeys(s.users) {
		u := s.users[uname]
		if slices.Contains(u.Roles, name) {
			roles := slices.DeleteFunc(slices.Clone(u.Roles), func(x string) bool { return x == name })
			s.putUserLocked(&authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options}, w)
		}
	}
	s.commitLocked(w)
	s.logger.Info("deleted a role", zap.String("role-name", name))
	return nil
}

func (s *Store) putUserLocked(u *authpb.User, w Writer) {
	v, err := proto.Marshal(u)
	if err != nil {
		panic(fmt.Sprintf("auth: marshalling a user: %v", err)) // a generated marshaller does not fail
	}
	s.users[string(u.Name)] = u
	w.Set(userKey(string(u.Name)), v)
}

func (s *Store) putRoleLocked(r *authpb.Role, w Writer) {
	v, err := proto.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("auth: marshalling a role: %v", err))
	}
	s.roles[string(r.Name)] = r
	w.Set(roleKey(string(r.Name)), v)
}

// commitLocked moves the revision (etcd's commitRevision) and rebuilds
// the permissions.
func (s *Store) commitLocked(w Writer) {
	s.revision++
	w.Set(revisionKey, revisionValue(s.revision))
	s.refreshLocked()
}

func userKey(name string) []byte { return append(slices.Clip(userPrefix), name...) }
func roleKey(name string) []byte { return append(slices.Clip(rolePrefix), name...) }

func enabledValue(on bool) []byte {
	if on {
		return []byte("1")
	}
	return []byte("0")
}

func revisionValue(rev uint64) []byte { return binary.BigEndian.AppendUint64(nil, rev) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	return keys
}

package server

import (
	"context"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/tlsutil"
)

// Auth is the member's auth store.
func (s *Server) Auth() *auth.Store { return s.applier.Auth() }

// rootKey marks a context whose requests the member makes itself (an
// expired lease's revoke): they act as root, as etcd's WithRoot.
type rootKey struct{}

func withRoot(ctx context.Context) context.Context { return context.WithValue(ctx, rootKey{}, true) }

// AuthInfo returns who makes the request in ctx, as etcd's
// AuthInfoFromCtx: the user its token names (gRPC metadata "token", or
// "authorization" with or without "Bearer "), else with
// --client-cert-auth the common name of its verified client certificate.
// With auth disabled, or no credentials, it is no one (a zero Info); a
// token that is unknown, expired or forged is auth.ErrInvalidAuthToken.
func (s *Server) AuthInfo(ctx context.Context) (auth.Info, error) {
	as := s.Auth()
	if !as.Enabled() {
		return auth.Info{}, nil
	}
	if ctx.Value(rootKey{}) != nil {
		return auth.Info{User: auth.RootUser, Revision: as.Revision()}, nil
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return auth.Info{}, nil
	}
	ts := md.Get(rpctypes.TokenFieldNameGRPC)
	if len(ts) == 0 {
		ts = md.Get(rpctypes.TokenFieldNameSwagger)
	}
	if len(ts) > 0 {
		token := strings.TrimPrefix(ts[0], "Bearer ")
		if idx, ok := as.SimpleTokenIndex(token); ok {
			// The token is known once its Authenticate entry is applied
			// here: a member a little behind waits for it (as etcd), but
			// not beyond a request's timeout (a forged index would hold
			// a client with no deadline for ever).
			wctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			err := s.waitApplied(wctx, idx)
			cancel()
			if err != nil {
				return auth.Info{}, auth.ErrInvalidAuthToken
			}
		}
		ai, err := as.InfoFromToken(token)
		if err != nil {
			s.logger.Warn("invalid auth token", zap.String("token-fingerprint", redactToken(token)))
		}
		return ai, err
	}
	if !s.cfg.ClientCertAuth {
		return auth.Info{}, nil
	}
	return certInfo(ctx, md, as), nil
}

// certInfo is the user a verified client certificate names (its common
// name), unless the request came through the gRPC gateway, whose
// certificate names no user.
func certInfo(ctx context.Context, md metadata.MD, as *auth.Store) auth.Info {
	if len(md.Get("grpcgateway-accept")) > 0 {
		return auth.Info{}
	}
	if cn, ok := tlsutil.PeerCommonName(ctx); ok {
		return auth.Info{User: cn, Revision: as.Revision()}
	}
	return auth.Info{}
}

// redactToken is what a log line shows of a token: its first and last
// few characters.
func redactToken(token string) string {
	if len(token) < 16 {
		return "***"
	}
	return token[:4] + "..." + token[len(token)-4:]
}

// RequireAuthInfo is etcd's requireAuthInfo: with auth enabled a request
// must name a user.
func (s *Server) RequireAuthInfo(ctx context.Context) (auth.Info, error) {
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return ai, err
	}
	if s.Auth().Enabled() && ai.User == "" {
		return ai, auth.ErrUserEmpty
	}
	return ai, nil
}

// CheckAdmin refuses a request whose user does not hold the root role
// (nothing is refused with auth disabled): maintenance, membership,
// compaction.
func (s *Server) CheckAdmin(ctx context.Context) error {
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	return s.Auth().IsAdmin(ai)
}

// CheckRead checks that the user in ctx may read a whole range (a watch).
func (s *Server) CheckRead(ctx context.Context, key, rangeEnd []byte) error {
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	return s.Auth().CheckRange(ai, key, rangeEnd)
}

// checkRead runs a local read for the user in ctx: chk checks the
// permissions first, and a change of the auth state while the read ran
// fails it (etcd's doSerialize), so the client retries with a new token.
func (s *Server) checkRead(ctx context.Context, chk func(as *auth.Store, ai auth.Info) error, read func() error) error {
	as := s.Auth()
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if err := chk(as, ai); err != nil {
		return err
	}
	if err := read(); err != nil {
		return err
	}
	if ai.Revision != 0 && ai.Revision != as.Revision() {
		return auth.ErrAuthOldRevision
	}
	return nil
}

// leaseKeys lists a lease's keys as applied (none for an unknown lease).
func (s *Server) leaseKeys(id int64) []string {
	keys, _ := s.applier.Lessor().Keys(id)
	return keys
}

// checkLeaseKeys is etcd's check before a keep-alive (write on every key
// of the lease), a time-to-live with keys or a listing of the leases (read
// on each key), for the user in ctx, on the keys of every lease in ids;
// an admin passes, and with auth enabled a user is needed even for no
// lease. It returns the auth revision checked at.
func (s *Server) checkLeaseKeys(ctx context.Context, ids []int64, write bool) (uint64, error) {
	as := s.Auth()
	rev := as.Revision()
	if !as.Enabled() {
		return rev, nil
	}
	ai, err := s.RequireAuthInfo(ctx)
	if err != nil {
		return rev, err
	}
	if as.IsAdmin(ai) == nil {
		return rev, nil
	}
	for _, id := range ids {
		for _, k := range s.leaseKeys(id) {
			if write {
				err = as.CheckPut(ai, []byte(k))
			} else {
				err = as.CheckRange(ai, []byte(k), nil)
			}
			if err != nil {
				return rev, err
			}
		}
	}
	return rev, nil
}

// Authenticate checks a user's password and returns a token for it:
// the password is checked here (bcrypt is slow: never in the apply
// loop), then an Authenticate entry names the token on every member. If
// the auth state changed in between, it starts again (etcd's loop).
func (s *Server) Authenticate(ctx context.Context, req *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if err := s.linearizableReadWait(ctx); err != nil {
		return nil, err
	}
	as := s.Auth()
	for {
		checked, err := as.CheckPassword(req.Name, req.Password)
		if err != nil {
			if err != auth.ErrAuthNotEnabled {
				s.logger.Warn("invalid authentication was requested", zap.String("user", req.Name), zap.Error(err))
			}
			return nil, err
		}
		prefix, err := as.TokenPrefix()
		if err != nil {
			return nil, err
		}
		// The entry never carries the password.
		res, err := s.propose(ctx, &pb.InternalRaftRequest{
			Authenticate: &pb.InternalAuthenticateRequest{Name: req.Name, SimpleToken: prefix}})
		if err != nil {
			return nil, err
		}
		if checked == as.Revision() {
			return response[*pb.AuthenticateResponse](res)
		}
		s.logger.Info("revision when password checked became stale; retrying")
	}
}

// AuthRequest proposes an auth request (enable, disable, status, users,
// roles, permissions) and returns its response. A new password is hashed
// here, so the entry carries only the hash; an admin-only request from a
// non-admin is refused before that work (and again when applied).
func (s *Server) AuthRequest(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	if auth.NeedsAdmin(r) {
		if err := s.CheckAdmin(ctx); err != nil {
			return nil, err
		}
	}
	as := s.Auth()
	switch {
	case r.AuthUserAdd != nil:
		u := proto.CloneOf(r.AuthUserAdd)
		if u.Options == nil || !u.Options.NoPassword {
			h, err := as.HashPassword(u.Password)
			if err != nil {
				return nil, err
			}
			u.HashedPassword, u.Password = h, ""
		}
		r.AuthUserAdd = u
	case r.AuthUserChangePassword != nil && r.AuthUserChangePassword.Password != "":
		u := proto.CloneOf(r.AuthUserChangePassword)
		h, err := as.HashPassword(u.Password)
		if err != nil {
			return nil, err
		}
		u.HashedPassword, u.Password = h, ""
		r.AuthUserChangePassword = u
	}
	res, err := s.propose(ctx, r)
	if err != nil {
		return nil, err
	}
	return res.Resp, nil
}

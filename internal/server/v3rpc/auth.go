package v3rpc

import (
	"context"
	"reflect"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/server"
)

// authErrors maps the auth store's errors to etcd's gRPC errors (the
// others, as etcd's, go out as Unknown with their message).
var authErrors = map[error]error{
	auth.ErrRootUserNotExist:     rpctypes.ErrGRPCRootUserNotExist,
	auth.ErrRootRoleNotExist:     rpctypes.ErrGRPCRootRoleNotExist,
	auth.ErrUserAlreadyExist:     rpctypes.ErrGRPCUserAlreadyExist,
	auth.ErrUserEmpty:            rpctypes.ErrGRPCUserEmpty,
	auth.ErrUserNotFound:         rpctypes.ErrGRPCUserNotFound,
	auth.ErrRoleAlreadyExist:     rpctypes.ErrGRPCRoleAlreadyExist,
	auth.ErrRoleNotFound:         rpctypes.ErrGRPCRoleNotFound,
	auth.ErrRoleEmpty:            rpctypes.ErrGRPCRoleEmpty,
	auth.ErrAuthFailed:           rpctypes.ErrGRPCAuthFailed,
	auth.ErrPermissionNotGiven:   rpctypes.ErrGRPCPermissionNotGiven,
	auth.ErrPermissionDenied:     rpctypes.ErrGRPCPermissionDenied,
	auth.ErrRoleNotGranted:       rpctypes.ErrGRPCRoleNotGranted,
	auth.ErrPermissionNotGranted: rpctypes.ErrGRPCPermissionNotGranted,
	auth.ErrAuthNotEnabled:       rpctypes.ErrGRPCAuthNotEnabled,
	auth.ErrInvalidAuthToken:     rpctypes.ErrGRPCInvalidAuthToken,
	auth.ErrInvalidAuthMgmt:      rpctypes.ErrGRPCInvalidAuthMgmt,
	auth.ErrAuthOldRevision:      rpctypes.ErrGRPCAuthOldRevision,
}

// authServer is etcd's Auth service: every request but Authenticate is
// an entry through raft (server.AuthRequest), so members agree on the
// auth state and each answer is linearizable.
type authServer struct {
	pb.UnimplementedAuthServer
	s *server.Server
}

// authCall proposes r and returns its response of type T, with etcd's
// header.
func authCall[T any](ctx context.Context, s *server.Server, r *pb.InternalRaftRequest) (T, error) {
	var zero T
	resp, err := s.AuthRequest(ctx, r)
	if err != nil {
		return zero, toGRPCError(err)
	}
	t, ok := resp.(T)
	if !ok {
		return zero, status.Errorf(codes.Internal, "etcdserver: request ID collision: got a %T result", resp)
	}
	// Every response of the Auth service has a Header field.
	reflect.ValueOf(t).Elem().FieldByName("Header").Set(reflect.ValueOf(header(s, nil)))
	return t, nil
}

func (a *authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authCall[*pb.AuthEnableResponse](ctx, a.s, &pb.InternalRaftRequest{AuthEnable: r})
}

func (a *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authCall[*pb.AuthDisableResponse](ctx, a.s, &pb.InternalRaftRequest{AuthDisable: r})
}

// AuthStatus needs no user (etcd 3.7), so that a client can tell whether
// it must sign in.
func (a *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authCall[*pb.AuthStatusResponse](ctx, a.s, &pb.InternalRaftRequest{AuthStatus: r})
}

func (a *authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	resp, err := a.s.Authenticate(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = header(a.s, nil)
	return resp, nil
}

func (a *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	return authCall[*pb.AuthUserAddResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserAdd: r})
}

func (a *authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authCall[*pb.AuthUserGetResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserGet: r})
}

func (a *authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authCall[*pb.AuthUserListResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserList: r})
}

func (a *authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authCall[*pb.AuthUserDeleteResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserDelete: r})
}

func (a *authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	return authCall[*pb.AuthUserChangePasswordResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

func (a *authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authCall[*pb.AuthUserGrantRoleResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

func (a *authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authCall[*pb.AuthUserRevokeRoleResponse](ctx, a.s, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

func (a *authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authCall[*pb.AuthRoleAddResponse](ctx, a.s, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

func (a *authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authCall[*pb.AuthRoleGetResponse](ctx, a.s, &pb.InternalRaftRequest{AuthRoleGet: r})
}

func (a *authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authCall[*pb.AuthRoleListResponse](ctx, a.s, &pb.InternalRaftRequest{AuthRoleList: r})
}

func (a *authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authCall[*pb.AuthRoleDeleteResponse](ctx, a.s, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

func (a *authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authCall[*pb.AuthRoleGrantPermissionResponse](ctx, a.s, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

func (a *authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authCall[*pb.AuthRoleRevokePermissionResponse](ctx, a.s, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

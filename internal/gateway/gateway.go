package gateway

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	etcdservergw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	v3electiongw "github.com/cairn-db/cairn/api/v3electionpb/gw"
	v3lockgw "github.com/cairn-db/cairn/api/v3lockpb/gw"
)

// registerFunc adds one gRPC service's routes to the gateway's mux,
// calling the service over conn: the shape of the generated
// Register<Service>Handler functions.
type registerFunc func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error

// pipeBufferBytes is each direction's buffer of the in-memory connection;
// gRPC's flow control (64 KiB windows by default) keeps it from filling
// with more than a few frames.
const pipeBufferBytes = 1 << 20

// Gateway is the HTTP/JSON front of a gRPC server. Its owner serves the
// gRPC server on Listener, mounts Handler under /v3/, and calls Close
// once neither serves any more.
type Gateway struct {
	listener *bufconn.Listener
	conn     *grpc.ClientConn
	handler  http.Handler
}

// New builds the gateway for etcd's KV, Watch, Lease, Cluster,
// Maintenance, Auth, Lock and Election services, etcd's list. logger
// gets the WebSocket upgrades that fail.
func New(logger *zap.Logger) (*Gateway, error) {
	l := bufconn.Listen(pipeBufferBytes)
	conn, err := grpc.NewClient("passthrough:///cairn-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// As etcd's gateway: responses as large as gRPC allows.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// etcd's options, and no others (etcd 3.7.3 server/embed/serve.go):
	// JSON field names as in the .proto (snake_case), fields at their
	// zero value left out, unknown request fields ignored; bytes are
	// base64 and 64-bit integers strings, as protojson writes them. The
	// error body, status codes and header matching are grpc-gateway's
	// defaults: {"code":..., "message":...} with the gRPC code mapped
	// to HTTP (e.g. InvalidArgument to 400), and the Authorization
	// header passed on as metadata "authorization".
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
			},
		}),
	)
	for _, register := range []registerFunc{
		etcdservergw.RegisterKVHandler,
		etcdservergw.RegisterWatchHandler,
		etcdservergw.RegisterLeaseHandler,
		etcdservergw.RegisterClusterHandler,
		etcdservergw.RegisterMaintenanceHandler,
		etcdservergw.RegisterAuthHandler,
		// /v3/lock/* and /v3/election/*: Cairn's own generated
		// packages, with etcd's paths.
		v3lockgw.RegisterLockHandler,
		v3electiongw.RegisterElectionHandler,
	} {
		// The generated functions use the context only to register.
		if err := register(context.Background(), mux, conn); err != nil {
			conn.Close()
			l.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return &Gateway{listener: l, conn: conn, handler: &websocketProxy{next: mux, logger: logger}}, nil
}

// Listener is where the gRPC server must serve the gateway's calls.
func (g *Gateway) Listener() net.Listener { return g.listener }

// Handler serves the gateway's routes, over plain HTTP or a WebSocket;
// any other path is a 404 with grpc-gateway's JSON body
// ({"code":5,"message":"Not Found"}).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Close ends the gateway's connection (its calls in flight fail) and
// closes its listener.
func (g *Gateway) Close() error {
	err := g.conn.Close()
	g.listener.Close()
	return err
}

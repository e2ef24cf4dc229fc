package grpcproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The Lock and Election services' descriptors, for streaming.
	_ "github.com/cairn-db/cairn/api/v3electionpb"
	_ "github.com/cairn-db/cairn/api/v3lockpb"
)

const (
	memberListMethod    = "/etcdserverpb.Cluster/MemberList"
	memberPromoteMethod = "/etcdserverpb.Cluster/MemberPromote"
)

// Config configures a Proxy.
type Config struct {
	// Client reaches the cluster; every call goes through its connection.
	Client *clientv3.Client
	// AdvertiseClientURL, if set, is what MemberList answers: this proxy,
	// or every proxy registered under ResolverPrefix when any is.
	AdvertiseClientURL string
	// ResolverPrefix is where proxies register (Register).
	ResolverPrefix string
	// MaxCallSendMsgSize and MaxCallRecvMsgSize bound the messages sent
	// to and received from the cluster (--max-send-bytes,
	// --max-recv-bytes); 0 is gRPC's default.
	MaxCallSendMsgSize, MaxCallRecvMsgSize int
	Logger                                 *zap.Logger
}

// Proxy forwards gRPC calls to the cluster. Serve it with a gRPC server
// built with ServerOptions.
type Proxy struct {
	cfg  Config
	conn *grpc.ClientConn
	// callOpts go with every call to the cluster.
	callOpts []grpc.CallOption

	mu sync.Mutex
	// registered are the proxies under ResolverPrefix, by key
	// (WatchRegistered keeps it).
	registered map[string]endpoints.Endpoint
}

// New returns a proxy for cfg.
func New(cfg Config) *Proxy {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	opts := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{}), grpc.WaitForReady(true)}
	if cfg.MaxCallSendMsgSize > 0 {
		opts = append(opts, grpc.MaxCallSendMsgSize(cfg.MaxCallSendMsgSize))
	}
	if cfg.MaxCallRecvMsgSize > 0 {
		opts = append(opts, grpc.MaxCallRecvMsgSize(cfg.MaxCallRecvMsgSize))
	}
	return &Proxy{cfg: cfg, conn: cfg.Client.ActiveConnection(), callOpts: opts, registered: map[string]endpoints.Endpoint{}}
}

// ServerOptions are what the proxy's gRPC server needs: every method it
// is asked goes to the proxy, with messages left as bytes.
func (p *Proxy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.UnknownServiceHandler(p.handle), grpc.ForceServerCodecV2(rawCodec{})}
}

func (p *Proxy) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "grpcproxy: a stream without a method")
	}
	switch {
	case method == memberListMethod && p.cfg.AdvertiseClientURL != "":
		return p.memberList(ss)
	case method == memberPromoteMethod:
		// etcd's proxy's answer.
		return status.Error(codes.Unknown, "not implemented")
	}
	ctx := outgoing(ss.Context())
	if clientStreams, serverStreams := streaming(method); !clientStreams && !serverStreams {
		return p.forwardUnary(ctx, method, ss)
	}
	return p.forwardStream(ctx, method, ss)
}

// forwardUnary forwards one request and its answer, headers and trailers
// included, through the client's unary path, which retries a call no
// member received. A call that only reads (readOnly) is also retried on
// Unavailable (a member stopping, a leader changing), as clientv3 retries
// its own reads, while ctx lasts.
func (p *Proxy) forwardUnary(ctx context.Context, method string, ss grpc.ServerStream) error {
	var req, resp []byte
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	var header, trailer metadata.MD
	opts := append([]grpc.CallOption{grpc.Header(&header), grpc.Trailer(&trailer)}, p.callOpts...)
	err := p.conn.Invoke(ctx, method, &req, &resp, opts...)
	retry := func(err error) bool {
		return err != nil && readOnly[method] && status.Code(err) == codes.Unavailable && ctx.Err() == nil
	}
	// At most 100 attempts, as clientv3's unary calls.
	for attempt, backoff := 1, 25*time.Millisecond; attempt < 100 && retry(err); attempt, backoff = attempt+1, min(2*backoff, time.Second) {
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop() // the loop ends with the last error
		case <-t.C:
			header, trailer = nil, nil
			err = p.conn.Invoke(ctx, method, &req, &resp, opts...)
		}
	}
	if len(header) > 0 {
		if herr := ss.SetHeader(header); herr != nil {
			return herr
		}
	}
	ss.SetTrailer(trailer)
	if err != nil {
		return err
	}
	return ss.SendMsg(&resp)
}

// forwardStream pipes a streaming call both ways: the client's messages
// (and its half-close) to the cluster in a goroutine, the cluster's
// (headers, messages, trailers, status) back here.
func (p *Proxy) forwardStream(ctx context.Context, method string, ss grpc.ServerStream) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := p.conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method, p.callOpts...)
	if err != nil {
		return err
	}
	go func() {
		for {
			var m []byte
			if err := ss.RecvMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					cs.CloseSend() // the client is done sending
				} else {
					cancel() // the client is gone
				}
				return
			}
			if cs.SendMsg(&m) != nil {
				return // the cluster's side ended: RecvMsg below says why
			}
		}
	}()
	if header, err := cs.Header(); err == nil && len(header) > 0 {
		if err := ss.SendHeader(header); err != nil {
			return err
		}
	}
	for {
		var m []byte
		if err := cs.RecvMsg(&m); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&m); err != nil {
			return err
		}
	}
}

// readOnly are the unary methods that change nothing, which clientv3
// retries on Unavailable (its "repeatable" calls).
var readOnly = map[string]bool{
	"/etcdserverpb.KV/Range":              true,
	"/etcdserverpb.Lease/LeaseTimeToLive": true,
	"/etcdserverpb.Lease/LeaseLeases":     true,
	"/etcdserverpb.Cluster/MemberList":    true,
	"/etcdserverpb.Maintenance/Status":    true,
	"/etcdserverpb.Maintenance/Hash":      true,
	"/etcdserverpb.Maintenance/HashKV":    true,
	"/etcdserverpb.Auth/AuthStatus":       true,
	"/etcdserverpb.Auth/UserGet":          true,
	"/etcdserverpb.Auth/UserList":         true,
	"/etcdserverpb.Auth/RoleGet":          true,
	"/etcdserverpb.Auth/RoleList":         true,
	"/v3electionpb.Election/Leader":       true,
}

// streaming says whether a method streams from the client and from the
// server, as its service's descriptor says; a method no descriptor
// names is treated as streaming both ways (a stream carries a unary call
// as well).
func streaming(method string) (client, server bool) {
	i := strings.LastIndexByte(method, '/')
	if i <= 1 {
		return true, true
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(method[1:i]))
	if err != nil {
		return true, true
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return true, true
	}
	md := sd.Methods().ByName(protoreflect.Name(method[i+1:]))
	if md == nil {
		return true, true
	}
	return md.IsStreamingClient(), md.IsStreamingServer()
}

// outgoing is ctx with the caller's metadata to send on: its auth token,
// require-leader and the like, without what gRPC sets for each call.
func outgoing(ctx context.Context) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, v := range in {
		switch {
		case strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"),
			k == "content-type", k == "user-agent", k == "te", k == "connection":
		default:
			out[k] = v
		}
	}
	return metadata.NewOutgoingContext(ctx, out)
}

// memberList answers MemberList with this proxy, or the proxies
// registered under the prefix, as etcd's proxy does.
func (p *Proxy) memberList(ss grpc.ServerStream) error {
	var req []byte
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	var members []*pb.Member
	if p.cfg.ResolverPrefix != "" {
		p.mu.Lock()
		for _, ep := range p.registered {
			var m meta
			if err := json.Unmarshal([]byte(fmt.Sprint(ep.Metadata)), &m); err != nil {
				p.mu.Unlock()
				return err
			}
			members = append(members, &pb.Member{Name: m.Name, ClientURLs: []string{ep.Addr}})
		}
		p.mu.Unlock()
	}
	if len(members) == 0 {
		hostname, _ := os.Hostname()
		members = []*pb.Member{{Name: hostname, ClientURLs: []string{p.cfg.AdvertiseClientURL}}}
	}
	b, err := proto.Marshal(&pb.MemberListResponse{Members: members})
	if err != nil {
		return err
	}
	return ss.SendMsg(&b)
}

// meta is what a registered proxy's endpoint carries (etcd's).
type meta struct {
	Name string `json:"name"`
}

// Register keeps this proxy's advertised URL registered under the
// resolver prefix, on a lease of ttl seconds, until the client closes:
// a lost session is replaced (at most one attempt a second), as etcd's
// proxy does. done is closed when it stops.
func (p *Proxy) Register(ttl int) (done <-chan struct{}) {
	c, lg := p.cfg.Client, p.cfg.Logger
	return p.untilClosed(func() {
		ss, err := p.registerSession(ttl)
		if err != nil {
			lg.Warn("failed to create a session", zap.Error(err))
			return
		}
		select {
		case <-c.Ctx().Done():
			ss.Close()
		case <-ss.Done():
			lg.Warn("session expired; possible network partition or server restart")
			lg.Warn("creating a new session to rejoin")
		}
	})
}

func (p *Proxy) registerSession(ttl int) (*concurrency.Session, error) {
	c, prefix, addr := p.cfg.Client, p.cfg.ResolverPrefix, p.cfg.AdvertiseClientURL
	ss, err := concurrency.NewSession(c, concurrency.WithTTL(ttl))
	if err != nil {
		return nil, err
	}
	em, err := endpoints.NewManager(c, prefix)
	if err != nil {
		ss.Close()
		return nil, err
	}
	hostname, _ := os.Hostname()
	md, _ := json.Marshal(meta{Name: hostname})
	if err := em.AddEndpoint(c.Ctx(), prefix+"/"+addr, endpoints.Endpoint{Addr: addr, Metadata: string(md)},
		clientv3.WithLease(ss.Lease())); err != nil {
		ss.Close()
		return nil, err
	}
	p.cfg.Logger.Info("registered session with lease", zap.String("addr", addr), zap.Int("lease-ttl", ttl))
	return ss, nil
}

// WatchRegistered follows the proxies registered under the resolver
// prefix, for MemberList, until the client closes (a lost watch is
// established again, at most once a second). done is closed when it
// stops.
func (p *Proxy) WatchRegistered() (done <-chan struct{}) {
	c, prefix, lg := p.cfg.Client, p.cfg.ResolverPrefix, p.cfg.Logger
	return p.untilClosed(func() {
		em, err := endpoints.NewManager(c, prefix)
		var wc endpoints.WatchChannel
		if err == nil {
			wc, err = em.NewWatchChannel(c.Ctx())
		}
		if err != nil {
			lg.Warn("failed to establish endpoint watch", zap.String("prefix", prefix), zap.Error(err))
			return
		}
		for ups := range wc {
			p.mu.Lock()
			for _, up := range ups {
				switch up.Op {
				case endpoints.Add:
					p.registered[up.Key] = up.Endpoint
				case endpoints.Delete:
					delete(p.registered, up.Key)
				}
			}
			p.mu.Unlock()
		}
	})
}

// untilClosed runs attempt in a goroutine of its own, again a second
// after each return, until the client closes; done is closed when it
// stops.
func (p *Proxy) untilClosed(attempt func()) (done <-chan struct{}) {
	ctx := p.cfg.Client.Ctx()
	d := make(chan struct{})
	go func() {
		defer close(d)
		for {
			attempt()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return d
}

// rawCodec leaves messages as bytes (*[]byte both ways): the proxy
// decodes nothing it forwards.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("grpcproxy: cannot send a %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("grpcproxy: cannot receive into a %T", v)
	}
	*b = data.Materialize()
	return nil
}

// Name is proto's: the content type the proxy's clients and the cluster
// expect.
func (rawCodec) Name() string { return "proto" }

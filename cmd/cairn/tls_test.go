package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-db/cairn/internal/h2grpc"
	"github.com/cairn-db/cairn/internal/tlsutil"
	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

// An https:// client URL serves gRPC and HTTP on one port, as cairn
// wires it: a gRPC handler finds the client certificate's CN
// (tlsutil.PeerCommonName, what --client-cert-auth's user names come
// from), and HTTP/2 and HTTP/1.1 requests reach the HTTP handler. With
// --own-grpc-server=false every connection goes to an http.Server, which
// hands gRPC requests to grpc-go's (grpcOrHTTP); by default the
// connections of gRPC clients (grpcClientHello) go whole to h2grpc's.
func TestHTTPSServesGRPCAndHTTP(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("own=%v", own), func(t *testing.T) { testHTTPSServesGRPCAndHTTP(t, own) })
	}
}

func testHTTPSServesGRPCAndHTTP(t *testing.T, own bool) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	spec := certtest.Localhost
	spec.Name = "server"
	server := ca.Issue(t, spec)
	client := ca.Issue(t, certtest.Spec{Name: "client", CN: "alice"})
	info := tlsutil.Info{CertFile: server.CertFile, KeyFile: server.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true}

	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var divert func(*tls.ClientHelloInfo) bool
	if own {
		divert = grpcClientHello
	}
	l, err := wrapTLSDivert(raw, "https://"+raw.Addr().String(), info, false, "rejected connection on client endpoint", divert, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// cnc gets the CN each gRPC call saw, and which server ran it.
	cnc := make(chan string, 1)
	see := func(server string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			cn, _ := tlsutil.PeerCommonName(ctx)
			cnc <- server + " " + cn
			return h(ctx, req)
		}
	}
	gs := grpc.NewServer(grpc.Creds(tlsutil.ServerCredentials()), grpc.UnaryInterceptor(see("grpc-go")))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	hs := &http.Server{
		Handler:           grpcOrHTTP(gs, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "http "+r.Proto) })),
		ReadHeaderTimeout: 10 * time.Second,
		HTTP2:             http2Config(1000),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hs.Serve(l)
	}()
	want := "grpc-go alice"
	var hg *h2grpc.Server
	if own {
		hg = h2grpc.NewServer(h2grpc.Options{Codec: encoding.GetCodecV2("proto"), Creds: tlsutil.ServerCredentials(),
			UnaryInterceptor: see("h2grpc")})
		healthpb.RegisterHealthServer(hg, health.NewServer())
		wg.Add(1)
		go func() {
			defer wg.Done()
			hg.Serve(l.(*tlsutil.Listener).Diverted())
		}()
		want = "h2grpc alice"
	}
	defer func() {
		gs.Stop()
		if hg != nil {
			hg.Stop()
		}
		hs.Close()
		wg.Wait()
	}()

	pemCA, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	cert, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}

	conn, err := grpc.NewClient("passthrough:///"+l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ccfg.Clone())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := <-cnc; got != want {
		t.Fatalf("the gRPC call ran on (server CN) %q, want %q", got, want)
	}

	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: ccfg.Clone(), ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://" + l.Addr().String() + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		want := "http HTTP/1.1"
		if h2 {
			want = "http HTTP/2.0"
		}
		if string(body) != want {
			t.Fatalf("GET /health over TLS: %q, want %q", body, want)
		}
	}
}

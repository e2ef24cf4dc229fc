package tlsutil_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-db/cairn/internal/tlsutil"
	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds waits for what takes milliseconds on loopback.
const waitTimeout = 20 * time.Second

// pki is a test's certificates: the CA the server trusts, the server's
// certificate, and a good client certificate.
type pki struct {
	dir    string
	ca     *certtest.CA
	server certtest.Pair
	client certtest.Pair
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	srv := certtest.Localhost
	srv.Name, srv.CN = "server", "server"
	return &pki{dir: dir, ca: ca, server: ca.Issue(t, srv), client: ca.Issue(t, certtest.Spec{Name: "client", CN: "alice", IPs: certtest.Localhost.IPs})}
}

// echoServer accepts from l until it closes; each connection is sent
// "ok" and closed. It reports what each refusal was.
type echoServer struct {
	l  net.Listener
	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		refused []error
	}
}

func serve(t *testing.T, info tlsutil.Info, opts tlsutil.ListenerOptions) *echoServer {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{}
	opts.OnRefused = func(_ *tls.Conn, err error) {
		s.mu.Lock()
		s.mu.refused = append(s.mu.refused, err)
		s.mu.Unlock()
	}
	if s.l, err = tlsutil.NewListener(raw, info, opts); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			if _, ok := c.(*tls.Conn); !ok {
				panic("Accept returned a connection that is not a *tls.Conn")
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		s.l.Close()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) lastRefusal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mu.refused) == 0 {
		return nil
	}
	return s.mu.refused[len(s.mu.refused)-1]
}

// talk connects with cfg and returns nil if the server answered "ok",
// else the error seen: in TLS 1.3 a client learns of its refusal only
// when it reads.
func (s *echoServer) talk(cfg *tls.Config) error {
	d := &net.Dialer{Timeout: waitTimeout}
	c, err := tls.DialWithDialer(d, "tcp", s.l.Addr().String(), cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ok" {
		return errors.New("unexpected answer " + string(buf))
	}
	return nil
}

// clientConfig trusts p's CA and presents pair (none if its files are
// empty).
func (p *pki) clientConfig(t *testing.T, pair certtest.Pair) *tls.Config {
	cfg := p.ca.ClientConfig(t, pair)
	cfg.ServerName = "127.0.0.1"
	return cfg
}

// TestRefusals is every way a client is refused, and that a good client
// is not, on a port requiring client certificates.
func TestRefusals(t *testing.T) {
	p := newPKI(t)
	other := certtest.NewCA(t, p.dir, "other")
	wrongCA := other.Issue(t, certtest.Spec{Name: "wrong-ca", CN: "alice", IPs: certtest.Localhost.IPs})
	expired := p.ca.Issue(t, certtest.Spec{Name: "expired", CN: "alice", IPs: certtest.Localhost.IPs, Expired: true})
	revoked := p.ca.Issue(t, certtest.Spec{Name: "revoked", CN: "alice", IPs: certtest.Localhost.IPs})
	bob := p.ca.Issue(t, certtest.Spec{Name: "bob", CN: "bob", IPs: certtest.Localhost.IPs})
	elsewhere := p.ca.Issue(t, certtest.Spec{Name: "elsewhere", CN: "alice", IPs: []net.IP{net.ParseIP("10.11.12.13")}})
	crl := filepath.Join(p.dir, "crl.der")
	p.ca.CRL(t, crl, revoked.Cert)

	base := tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, TrustedCAFile: p.ca.CertFile, ClientCertAuth: true, CRLFile: crl}
	withCNs := base
	withCNs.AllowedCNs = []string{"alice", "carol"}
	withHosts := base
	withHosts.AllowedHostnames = []string{"127.0.0.1"}
	skipSAN := base
	skipSAN.SkipClientSANVerify = true

	for _, tc := range []struct {
		name   string
		info   tlsutil.Info
		opts   tlsutil.ListenerOptions
		client certtest.Pair
		// refused is a piece of the server's reason, "" if the client
		// must get through.
		refused string
	}{
		{name: "good client", info: base, client: p.client},
		{name: "no certificate", info: base, client: certtest.Pair{}, refused: "certificate"},
		{name: "wrong CA", info: base, client: wrongCA, refused: "unknown authority"},
		{name: "expired", info: base, client: expired, refused: "expired"},
		{name: "revoked", info: base, client: revoked, refused: "revoked"},
		{name: "allowed CN", info: withCNs, client: p.client},
		{name: "CN not allowed", info: withCNs, client: bob, refused: "client certificate authentication failed"},
		{name: "allowed hostname", info: withHosts, client: p.client},
		{name: "hostname not allowed", info: withHosts, client: elsewhere, refused: "client certificate authentication failed"},
		{name: "SAN matches address", info: base, opts: tlsutil.ListenerOptions{CheckSAN: true}, client: p.client},
		{name: "SAN does not match address", info: base, opts: tlsutil.ListenerOptions{CheckSAN: true}, client: elsewhere, refused: "10.11.12.13"},
		{name: "SAN check skipped", info: skipSAN, opts: tlsutil.ListenerOptions{CheckSAN: true}, client: elsewhere},
		{name: "SAN not checked on client ports", info: base, client: elsewhere},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, tc.info, tc.opts)
			err := s.talk(p.clientConfig(t, tc.client))
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v (server: %v)", err, s.lastRefusal())
				}
				return
			}
			if err == nil {
				t.Fatal("got through")
			}
			waitFor(t, "the server's refusal", func() bool { return s.lastRefusal() != nil })
			if why := s.lastRefusal().Error(); !strings.Contains(why, tc.refused) {
				t.Fatalf("refused for %q, want %q", why, tc.refused)
			}
		})
	}
}

// TestTrustedCAAloneRequiresClientCert is etcd's rule: --trusted-ca-file
// without --client-cert-auth still requires a client certificate.
func TestTrustedCAAloneRequiresClientCert(t *testing.T) {
	p := newPKI(t)
	s := serve(t, tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, TrustedCAFile: p.ca.CertFile}, tlsutil.ListenerOptions{})
	if err := s.talk(p.clientConfig(t, certtest.Pair{})); err == nil {
		t.Fatal("a client without a certificate got through")
	}
	if err := s.talk(p.clientConfig(t, p.client)); err != nil {
		t.Fatal(err)
	}
	// Without a CA and client-cert-auth, anyone who trusts the server
	// gets in.
	open := serve(t, tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile}, tlsutil.ListenerOptions{})
	if err := open.talk(p.clientConfig(t, certtest.Pair{})); err != nil {
		t.Fatal(err)
	}
}

// TestRotation replaces the server's certificate and a CRL on disk: the
// next handshake serves the new certificate and enforces the new CRL,
// with no restart.
func TestRotation(t *testing.T) {
	p := newPKI(t)
	crl := filepath.Join(p.dir, "crl.der")
	p.ca.CRL(t, crl)
	s := serve(t, tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, TrustedCAFile: p.ca.CertFile, CRLFile: crl}, tlsutil.ListenerOptions{})
	served := func() *x509.Certificate {
		t.Helper()
		var got *x509.Certificate
		cfg := p.clientConfig(t, p.client)
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			got = cs.PeerCertificates[0]
			return nil
		}
		if err := s.talk(cfg); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := served(); got.SerialNumber.Cmp(p.server.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want %v", got.SerialNumber, p.server.Cert.SerialNumber)
	}
	spec := certtest.Localhost
	spec.Name, spec.CN = "server", "server-2" // the same files, overwritten
	renewed := p.ca.Issue(t, spec)
	if got := served(); got.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 || got.Subject.CommonName != "server-2" {
		t.Fatalf("after rotation served %v (serial %v), want server-2 (serial %v)", got.Subject.CommonName, got.SerialNumber, renewed.Cert.SerialNumber)
	}
	p.ca.CRL(t, crl, p.client.Cert)
	if err := s.talk(p.clientConfig(t, p.client)); err == nil {
		t.Fatal("a client revoked by the new CRL got through")
	}
}

// TestHandshakeTimeout: a client that connects and says nothing is
// dropped after the handshake timeout, and holds up nobody meanwhile.
func TestHandshakeTimeout(t *testing.T) {
	p := newPKI(t)
	s := serve(t, tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile}, tlsutil.ListenerOptions{HandshakeTimeout: 300 * time.Millisecond})
	silent, err := net.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := s.talk(p.clientConfig(t, certtest.Pair{})); err != nil {
		t.Fatalf("a client was held up by a silent one: %v", err)
	}
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err = silent.Read(make([]byte, 1))
	if err != io.EOF {
		t.Fatalf("silent connection: read returned %v, want EOF (closed by the server)", err)
	}
	t.Logf("silent connection closed after %v", time.Since(start))
	waitFor(t, "the timeout reported", func() bool {
		err := s.lastRefusal()
		var ne net.Error
		return err != nil && errors.As(err, &ne) && ne.Timeout()
	})
}

// TestPeerCommonName: a gRPC handler behind a Listener and
// ServerCredentials finds the verified client certificate's CN; on a
// plain connection or one without a client certificate it finds none.
func TestPeerCommonName(t *testing.T) {
	p := newPKI(t)
	type seen struct {
		cn string
		ok bool
	}
	seenc := make(chan seen, 1)
	gs := grpc.NewServer(grpc.Creds(tlsutil.ServerCredentials()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			cn, ok := tlsutil.PeerCommonName(ctx)
			seenc <- seen{cn, ok}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	listen := func(info *tlsutil.Info) net.Listener {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener = raw
		if info != nil {
			if l, err = tlsutil.NewListener(raw, *info, tlsutil.ListenerOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	mutual := listen(&tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, TrustedCAFile: p.ca.CertFile, ClientCertAuth: true})
	serverOnly := listen(&tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile})
	plain := listen(nil)
	var wg sync.WaitGroup
	for _, l := range []net.Listener{mutual, serverOnly, plain} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gs.Serve(l)
		}()
	}
	defer func() {
		gs.Stop()
		wg.Wait()
	}()

	call := func(l net.Listener, creds credentials.TransportCredentials) seen {
		t.Helper()
		conn, err := grpc.NewClient("passthrough:///"+l.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		return <-seenc
	}
	if got := call(mutual, credentials.NewTLS(p.clientConfig(t, p.client))); got != (seen{"alice", true}) {
		t.Fatalf("client certificate: PeerCommonName = %+v, want alice", got)
	}
	if got := call(serverOnly, credentials.NewTLS(p.clientConfig(t, certtest.Pair{}))); got.ok {
		t.Fatalf("no client certificate: PeerCommonName = %+v, want none", got)
	}
	if got := call(plain, insecure.NewCredentials()); got.ok {
		t.Fatalf("plain connection: PeerCommonName = %+v, want none", got)
	}
}

// TestParse checks etcd's names and error messages.
func TestParse(t *testing.T) {
	ids, err := tlsutil.CipherSuites([]string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_RSA_WITH_RC4_128_SHA"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_RSA_WITH_RC4_128_SHA}; !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
	if _, err := tlsutil.CipherSuites([]string{"TLS_NOPE"}); err == nil || err.Error() != `unexpected TLS cipher suite "TLS_NOPE"` {
		t.Fatalf("unknown suite: %v", err)
	}
	for s, want := range map[string]uint16{"": 0, "TLS1.2": tls.VersionTLS12, "TLS1.3": tls.VersionTLS13} {
		if v, err := tlsutil.Version(s); err != nil || v != want {
			t.Fatalf("Version(%q) = %v, %v", s, v, err)
		}
	}
	if _, err := tlsutil.Version("TLS1.1"); err == nil || err.Error() != `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)` {
		t.Fatalf("TLS1.1: %v", err)
	}
}

// TestSelfCert: auto-TLS writes a certificate for the listen hosts,
// valid the years asked, and reuses it on the next start.
func TestSelfCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fixtures", "client")
	info, err := tlsutil.SelfCert(nil, dir, []string{"127.0.0.1:2379", "example.com:2379"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(info.CertFile, info.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if years := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24 / 365; years < 2.99 || years > 3.01 {
		t.Fatalf("valid %.2f years, want 3", years)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("example.com"); err != nil {
		t.Fatal(err)
	}
	if !info.SelfSigned || info.ClientCertFile != info.CertFile {
		t.Fatalf("info %+v", info)
	}
	again, err := tlsutil.SelfCert(nil, dir, []string{"127.0.0.1:2379"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	cert2, err := tls.LoadX509KeyPair(again.CertFile, again.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !cert2.Leaf.Equal(leaf) {
		t.Fatal("a second start made a new certificate instead of reusing the first")
	}
	if _, err := tlsutil.SelfCert(nil, t.TempDir(), nil, 0); err == nil {
		t.Fatal("validity 0 accepted")
	}
	// A self-signed server is dialled without verification.
	s := serve(t, info, tlsutil.ListenerOptions{})
	ccfg, err := info.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.talk(ccfg); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Divert hands the connections whose ClientHello it says yes to out of
// Diverted, handshake and checks done, and the others out of Accept; a
// refused client reaches neither.
func TestDivert(t *testing.T) {
	p := newPKI(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info := tlsutil.Info{CertFile: p.server.CertFile, KeyFile: p.server.KeyFile, TrustedCAFile: p.ca.CertFile}
	l, err := tlsutil.NewListener(raw, info, tlsutil.ListenerOptions{
		Divert: func(h *tls.ClientHelloInfo) bool { return slices.Equal(h.SupportedProtos, []string{"h2"}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		l.Close()
		wg.Wait()
	}()
	// Each listener answers with its name and closes.
	for name, ln := range map[string]net.Listener{"accept": l, "diverted": l.Diverted()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if _, ok := c.(*tls.Conn); !ok {
					panic("a connection that is not a *tls.Conn")
				}
				c.Write([]byte(name))
				c.Close()
			}
		}()
	}
	// One session cache for the whole test: a session resumes across
	// connections, the Divert hook notwithstanding.
	sessions := tls.NewLRUClientSessionCache(8)
	resumed := 0
	answer := func(pair certtest.Pair, protos ...string) (string, error) {
		cfg := p.clientConfig(t, pair)
		cfg.NextProtos = protos
		if pair.CertFile != "" {
			// (A resumed session keeps the certificate it was
			// made with: the client without one gets none.)
			cfg.ClientSessionCache = sessions
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", l.Addr().String(), cfg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		b, err := io.ReadAll(c)
		if c.ConnectionState().DidResume {
			resumed++
		}
		return string(b), err
	}
	for _, tc := range []struct {
		protos []string
		want   string
	}{
		{[]string{"h2"}, "diverted"},
		{[]string{"h2", "http/1.1"}, "accept"},
		{nil, "accept"},
		{[]string{"h2"}, "diverted"},
		{[]string{"h2", "http/1.1"}, "accept"},
	} {
		if got, err := answer(p.client, tc.protos...); err != nil || got != tc.want {
			t.Errorf("ALPN %q: answered by %q (%v), want %q", tc.protos, got, err, tc.want)
		}
	}
	if resumed == 0 {
		t.Error("no connection resumed a session")
	}
	if got, err := answer(certtest.Pair{}, "h2"); err == nil || got != "" {
		t.Errorf("a client without a certificate was answered by %q (%v)", got, err)
	}
}

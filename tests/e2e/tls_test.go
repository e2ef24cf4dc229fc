package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/porttest"
	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

// testPKI is a cluster's certificates, as kubeadm lays them out: one CA
// for clients and peers, a server and a peer certificate for loopback,
// and a client certificate (kubeadm's apiserver-etcd-client); plus a
// client certificate of another CA.
type testPKI struct {
	ca                            *certtest.CA
	server, peer, client, wrongCA certtest.Pair
}

func newTestPKI(t *testing.T) *testPKI {
	dir := t.TempDir()
	p := &testPKI{ca: certtest.NewCA(t, dir, "etcd")}
	spec := certtest.Localhost
	spec.Name, spec.CN = "server", "node1"
	p.server = p.ca.Issue(t, spec)
	spec.Name = "peer"
	p.peer = p.ca.Issue(t, spec)
	p.client = p.ca.Issue(t, certtest.Spec{Name: "client", CN: "kube-apiserver-etcd-client"})
	p.wrongCA = certtest.NewCA(t, dir, "other").Issue(t, certtest.Spec{Name: "intruder", CN: "kube-apiserver-etcd-client"})
	return p
}

// clientTLS trusts the CA and presents pair, if it has files.
func (p *testPKI) clientTLS(t *testing.T, pair certtest.Pair) *tls.Config {
	return p.ca.ClientConfig(t, pair)
}

// serveClientsTLS moves m's client URL to https:// (listened on and
// advertised), served with p's server certificate under
// --client-cert-auth, plus extra flags; the test's clients present cert.
// Call it before m's first start (newClusterWith's prepare).
func (m *member) serveClientsTLS(t *testing.T, p *testPKI, cert certtest.Pair, extra ...string) {
	m.clientURL = strings.Replace(m.clientURL, "http://", "https://", 1)
	m.clientTLS = p.clientTLS(t, cert)
	m.setArg("--listen-client-urls", m.clientURL)
	m.setArg("--advertise-client-urls", m.clientURL)
	m.args = append(m.args, "--cert-file="+p.server.CertFile, "--key-file="+p.server.KeyFile,
		"--trusted-ca-file="+p.ca.CertFile, "--client-cert-auth")
	m.args = append(m.args, extra...)
}

// refused checks that a client with cfg cannot put a key on url.
func refused(t *testing.T, url string, cfg *tls.Config, who string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 2 * time.Second, Logger: zap.NewNop(), TLS: cfg})
	if err != nil {
		return // refused at dial
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "intruder", "x"); err == nil {
		t.Fatalf("%s put a key on %s", who, url)
	}
}

// A 3-member cluster started with kubeadm's etcd flags, TLS included
// (https client and peer URLs, --client-cert-auth, --peer-client-cert-auth,
// http metrics), serves a client with the cluster CA's client certificate
// (put, get, watch; clientv3, cairnctl, stock etcdctl) and refuses one
// without a certificate or with another CA's, on the client and the peer
// ports alike.
func TestKubeadmTLSCluster(t *testing.T) {
	p := newTestPKI(t)
	ports := porttest.Free(t, 12)
	url := func(scheme string, i int) string { return fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[i]) }
	c := &cluster{t: t}
	var initial []string
	for i := range 3 {
		m := &member{t: t, name: fmt.Sprintf("node%d", i+1), clientURL: url("https", 4*i+1), peerURL: url("https", 4*i+2),
			clientTLS: p.clientTLS(t, p.client)}
		m.dataDir = filepath.Join(t.TempDir(), "etcd")
		m.logPath = filepath.Join(t.TempDir(), m.name+".log")
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.cleanUpAtEnd()
	for i, m := range c.members {
		args := kubeadmArgs(m.name, m.dataDir, url("https", 4*i), m.clientURL, m.peerURL, url("http", 4*i+3))
		for j, a := range args {
			if strings.HasPrefix(a, "--initial-cluster=") {
				args[j] = "--initial-cluster=" + strings.Join(initial, ",")
			}
		}
		m.args = append(args,
			"--cert-file="+p.server.CertFile, "--key-file="+p.server.KeyFile, "--trusted-ca-file="+p.ca.CertFile,
			"--client-cert-auth=true", "--peer-cert-file="+p.peer.CertFile, "--peer-key-file="+p.peer.KeyFile,
			"--peer-trusted-ca-file="+p.ca.CertFile, "--peer-client-cert-auth=true",
			"--heartbeat-interval", fmt.Sprint(heartbeatMs), "--election-timeout", fmt.Sprint(electionMs))
		m.start()
	}
	c.waitLeader()

	cli := c.client()
	ctx := ctxT(t)
	wch := cli.Watch(ctx, "/registry/", clientv3.WithPrefix())
	put, err := cli.Put(ctx, "/registry/k", "v")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.members[2].client().Get(ctx, "/registry/k"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get from another member: %v %v", resp, err)
	}
	loopback := &member{t: t, clientURL: url("https", 0), clientTLS: p.clientTLS(t, p.client)}
	if resp, err := loopback.client().Get(ctx, "/registry/k"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get on the loopback https URL: %v %v", resp, err)
	}
	select {
	case wr := <-wch:
		if len(wr.Events) != 1 || wr.Events[0].Kv.ModRevision != put.Header.Revision {
			t.Fatalf("watch: %+v", wr)
		}
	case <-time.After(waitDeadline):
		t.Fatal("no watch event")
	}

	m := c.members[0]
	refused(t, m.clientURL, p.clientTLS(t, certtest.Pair{}), "a client without a certificate")
	// The client and peer ports: the handshake fails, or the member
	// closes the connection right after it.
	for _, u := range []string{m.clientURL, m.peerURL} {
		host := strings.TrimPrefix(u, "https://")
		for who, pair := range map[string]certtest.Pair{"no certificate": {}, "another CA's certificate": p.wrongCA} {
			if err := tlsTalk(host, p.clientTLS(t, pair)); err == nil {
				t.Errorf("%s: a client with %s was served", u, who)
			}
		}
		if err := tlsTalk(host, p.clientTLS(t, p.peer)); err != nil {
			t.Errorf("%s: a certificate of the cluster's CA was refused: %v", u, err)
		}
	}

	// kubeadm's probes: /livez, /readyz, /metrics over http on the
	// metrics URL; /health over https with the client certificate.
	if code, _, _ := httpGet(t, url("http", 3)+"/readyz"); code != 200 {
		t.Errorf("/readyz on the metrics URL: %d", code)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.clientTLS(t, p.client), ForceAttemptHTTP2: true}}
	resp, err := hc.Get(m.clientURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"health":"true"`) {
		t.Errorf("/health over https: %d %q", resp.StatusCode, body)
	}

	// cairnctl's TLS flags.
	tlsFlags := []string{"--cacert=" + p.ca.CertFile, "--cert=" + p.client.CertFile, "--key=" + p.client.KeyFile}
	ctlOK(t, m, "OK\n", append(tlsFlags, "put", "/registry/ctl", "1")...)
	ctlOK(t, m, "/registry/ctl\n1\n", append(tlsFlags, "get", "/registry/ctl")...)
	ctlOK(t, m, "/registry/ctl\n1\n", "--insecure-skip-tls-verify", "--cert="+p.client.CertFile, "--key="+p.client.KeyFile, "get", "/registry/ctl")
	if out := ctl(t, m, "", nil, "--cacert="+p.ca.CertFile, "--command-timeout=1500ms", "get", "/registry/ctl"); out.code == 0 {
		t.Errorf("cairnctl without a client certificate got %q", out.stdout)
	}

	// Stock etcdctl, when ../shared/tools built it.
	if ref := os.Getenv("REFERENCE_ETCD_BINARY"); ref != "" {
		etcdctl := filepath.Join(filepath.Dir(ref), "etcdctl")
		args := append([]string{"--endpoints=" + m.clientURL}, tlsFlags...)
		for _, cmdArgs := range [][]string{{"put", "/registry/etcdctl", "2"}, {"get", "/registry/etcdctl"}, {"endpoint", "health"}} {
			stdout, stderr, code := runChild(t, exec.Command(etcdctl, append(args, cmdArgs...)...), commandDeadline)
			if code != 0 {
				t.Fatalf("etcdctl %v: exit %d\n%s%s", cmdArgs, code, stdout, stderr)
			}
		}
		if _, _, code := runChild(t, exec.Command(etcdctl, "--endpoints="+m.clientURL, "--cacert="+p.ca.CertFile, "--command-timeout=1500ms", "get", "k"), commandDeadline); code == 0 {
			t.Error("etcdctl without a client certificate succeeded")
		}
	} else {
		t.Log("stock etcdctl not run: REFERENCE_ETCD_BINARY is unset")
	}
}

// tlsTalk completes a TLS handshake with addr and reads: nil if the
// server kept the connection open (a timeout), else why it did not.
func tlsTalk(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	if err == nil {
		return nil
	}
	return err
}

// One member serves https:// and http:// client URLs side by side, on
// two ports and on one (as etcd allows), with --auto-tls and
// --peer-auto-tls certificates it writes under <data-dir>/fixtures, valid
// --self-signed-cert-validity years; its https:// metrics URL uses the
// client certificate.
func TestAutoTLSSideBySide(t *testing.T) {
	ports := porttest.Free(t, 5)
	both := fmt.Sprintf("127.0.0.1:%d", ports[4])
	httpsURL := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	peerURL := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	metricsURL := fmt.Sprintf("https://127.0.0.1:%d", ports[3])
	skipVerify := &tls.Config{InsecureSkipVerify: true}
	m := &member{t: t, name: "m0", clientURL: httpsURL, peerURL: peerURL, clientTLS: skipVerify}
	m.dataDir = filepath.Join(t.TempDir(), "m0")
	m.logPath = filepath.Join(t.TempDir(), "m0.log")
	m.args = []string{"--name", m.name, "--data-dir", m.dataDir,
		"--listen-client-urls", httpsURL + "," + httpURL + ",https://" + both + ",http://" + both, "--advertise-client-urls", httpsURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "m0=" + peerURL,
		"--listen-metrics-urls", metricsURL,
		"--auto-tls", "--peer-auto-tls", "--self-signed-cert-validity", "2"}
	c := &cluster{t: t, members: []*member{m}}
	c.cleanUpAtEnd()
	m.start()
	c.waitLeader()
	if _, err := m.client().Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, other := range []*member{{t: t, clientURL: httpURL}, {t: t, clientURL: "http://" + both},
		{t: t, clientURL: "https://" + both, clientTLS: skipVerify}} {
		if resp, err := other.client().Get(ctxT(t), "k"); err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get on %s: %v %v", other.clientURL, resp, err)
		}
	}
	for _, dir := range []string{"client", "peer"} {
		data, err := os.ReadFile(filepath.Join(m.dataDir, "fixtures", dir, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(data, mustRead(t, filepath.Join(m.dataDir, "fixtures", dir, "key.pem")))
		if err != nil {
			t.Fatal(err)
		}
		if years := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore).Hours() / 24 / 365; years < 1.99 || years > 2.01 {
			t.Errorf("%s certificate valid %.2f years, want 2", dir, years)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: skipVerify}}
	for _, u := range []string{httpsURL + "/health", httpURL + "/health", metricsURL + "/metrics", "https://" + both + "/health", "http://" + both + "/health"} {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
	// TLS spoken to the http URL, and plain text to the https one, fail.
	if _, err := hc.Get(strings.Replace(httpURL, "http", "https", 1) + "/health"); err == nil {
		t.Error("TLS on the http URL answered")
	}
	if code, _, _ := httpGetErr(strings.Replace(httpsURL, "https", "http", 1) + "/health"); code == 200 {
		t.Error("plain HTTP on the https URL answered 200")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// httpGetErr is a GET whose failure is an answer, not a test failure.
func httpGetErr(url string) (int, string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// The client refusals that stop a start, in etcd's words.
func TestTLSStartRefusals(t *testing.T) {
	ports := porttest.Free(t, 2)
	m := &member{t: t, name: "m0"}
	m.dataDir = filepath.Join(t.TempDir(), "m0")
	m.logPath = filepath.Join(t.TempDir(), "m0.log")
	https := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	base := []string{"--name", "m0", "--data-dir", m.dataDir, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "m0=" + peer, "--listen-client-urls", https, "--advertise-client-urls", https}
	m.args = base
	startExpectingFailure(t, m, "TLS key/cert (--cert-file, --key-file) must be provided for client url "+https+" with HTTPS scheme")
	m.args = append(base, "--cert-file", "/nonexistent.pem", "--key-file", "/nonexistent-key.pem")
	startExpectingFailure(t, m, "/nonexistent.pem")
	m.args = append(base, "--auto-tls", "--cipher-suites", "TLS_NOPE")
	startExpectingFailure(t, m, `unexpected TLS cipher suite \"TLS_NOPE\"`)
}

// A member's certificate replaced on disk is served from the next
// handshake on, without a restart; a client certificate revoked by a
// CRL written meanwhile is refused from then on too.
func TestTLSRotation(t *testing.T) {
	p := newTestPKI(t)
	crl := filepath.Join(t.TempDir(), "crl.der")
	p.ca.CRL(t, crl)
	c := newClusterWith(t, 1, func(m *member) { m.serveClientsTLS(t, p, p.client, "--client-crl-file="+crl) })
	m := c.members[0]
	host := strings.TrimPrefix(m.clientURL, "https://")
	served := func() *x509.Certificate {
		t.Helper()
		cfg := p.clientTLS(t, p.client)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", host, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	if got := served(); !got.Equal(p.server.Cert) {
		t.Fatalf("served %q, want the first server certificate", got.Subject.CommonName)
	}
	spec := certtest.Localhost
	spec.Name, spec.CN = "server", "node1-renewed" // the same files
	renewed := p.ca.Issue(t, spec)
	if got := served(); !got.Equal(renewed.Cert) {
		t.Fatalf("after the files were replaced, served %q, want node1-renewed", got.Subject.CommonName)
	}
	if _, err := m.client().Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	p.ca.CRL(t, crl, p.client.Cert)
	if err := tlsTalk(host, p.clientTLS(t, p.client)); err == nil {
		t.Fatal("a client certificate revoked by the new CRL was served")
	}
}

// A member joins a cluster whose peers speak TLS with
// --peer-client-cert-auth (--initial-cluster-state existing: it fetches
// the cluster over https first), then catches up and serves.
func TestTLSPeersJoin(t *testing.T) {
	p := newTestPKI(t)
	peerFlags := []string{"--peer-cert-file=" + p.peer.CertFile, "--peer-key-file=" + p.peer.KeyFile,
		"--peer-trusted-ca-file=" + p.ca.CertFile, "--peer-client-cert-auth"}
	c := newClusterWith(t, 1, func(m *member) {
		m.peerURL = strings.Replace(m.peerURL, "http://", "https://", 1)
		m.args = setFlag(m.args, "--listen-peer-urls", m.peerURL)
		m.args = setFlag(m.args, "--initial-advertise-peer-urls", m.peerURL)
		m.args = setFlag(m.args, "--initial-cluster", m.name+"="+m.peerURL)
		m.args = append(m.args, peerFlags...)
	})
	cli := c.client()
	if _, err := cli.Put(ctxT(t), "before", "join"); err != nil {
		t.Fatal(err)
	}
	ports := porttest.Free(t, 2)
	n := &member{t: t, name: "m1", clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		peerURL: fmt.Sprintf("https://127.0.0.1:%d", ports[1])}
	n.dataDir = filepath.Join(t.TempDir(), n.name)
	n.logPath = filepath.Join(t.TempDir(), n.name+".log")
	if err := retryChange(t, "member add", func(ctx context.Context) error {
		_, err := cli.MemberAdd(ctx, []string{n.peerURL})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n.args = append([]string(nil), c.members[0].args...)
	for _, f := range [][2]string{
		{"--name", n.name}, {"--data-dir", n.dataDir},
		{"--listen-client-urls", n.clientURL}, {"--advertise-client-urls", n.clientURL},
		{"--listen-peer-urls", n.peerURL}, {"--initial-advertise-peer-urls", n.peerURL},
		{"--initial-cluster", c.members[0].name + "=" + c.members[0].peerURL + "," + n.name + "=" + n.peerURL},
		{"--initial-cluster-state", "existing"},
	} {
		n.args = setFlag(n.args, f[0], f[1])
	}
	c.members = append(c.members, n)
	n.start()
	c.waitLeader()
	deadline := time.Now().Add(waitDeadline)
	for {
		resp, err := n.client().Get(ctxT(t), "before", clientv3.WithSerializable())
		if err == nil && len(resp.Kvs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new member never served the key written before it joined: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a real member, not synchronizing goroutines
	}
}

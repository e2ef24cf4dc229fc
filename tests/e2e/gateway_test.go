package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

// gatewayPost POSTs body to url as curl -d does, with token (if any) in
// the Authorization header, and returns the status and body.
func gatewayPost(t *testing.T, cl *http.Client, url, body, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// With --client-cert-auth over https and auth enabled, a gateway request
// whose client certificate names a user (a common name) is refused with
// etcd's 400, since the gateway's gRPC call cannot carry that user; one
// with a certificate without a common name acts as the user of the token
// in its Authorization header, as in etcd, and without a token as no
// one (etcd: possibly as the user its own certificate names). The other
// HTTP endpoints (/health) are not affected.
func TestGatewayClientCertAuth(t *testing.T) {
	p := newTestPKI(t)
	noCN := p.ca.Issue(t, certtest.Spec{Name: "nocn"})
	c := newClusterWith(t, 1, func(m *member) { m.serveClientsTLS(t, p, p.client) })
	u := c.members[0].clientURL
	httpsClient := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: waitDeadline, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	withCN, withoutCN := httpsClient(p.clientTLS(t, p.client)), httpsClient(p.clientTLS(t, noCN))
	put := `{"key":"Zm9v","value":"YmFy"}`
	if code, body := gatewayPost(t, withCN, u+"/v3/kv/put", put, ""); code != 200 || !strings.Contains(body, `"revision":"2"`) {
		t.Fatalf("put with auth off: %d %s", code, body)
	}
	cli := c.members[0].client()
	for i, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctxT(t), "root", "pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctxT(t), "root", "root"); return err },
		// The user the server's certificate names (its CN): etcd's
		// gateway connection presents that certificate, and etcd runs a
		// request without a token or Accept header as that user.
		func() error { _, err := cli.UserAdd(ctxT(t), "node1", "pw1"); return err },
		func() error { _, err := cli.UserGrantRole(ctxT(t), "node1", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctxT(t)); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	c.signIn()
	want := "CommonName of client sending a request against gateway will be ignored and not used as expected\n"
	if code, body := gatewayPost(t, withCN, u+"/v3/kv/range", `{"key":"Zm9v"}`, ""); code != 400 || body != want {
		t.Errorf("range with a CN certificate: %d %q", code, body)
	}
	if code, body, _ := httpGetWith(t, withCN, u+"/health"); code != 200 {
		t.Errorf("/health with a CN certificate: %d %q", code, body)
	}
	// Go's client sends no Accept header: on etcd this would run as
	// node1 (README, "The HTTP/JSON gateway"); on Cairn, as no one.
	if code, body := gatewayPost(t, withoutCN, u+"/v3/kv/range", `{"key":"Zm9v"}`, ""); code != 400 ||
		!strings.Contains(body, `"message":"etcdserver: user name is empty"`) {
		t.Errorf("range without a token: %d %s", code, body)
	}
	code, body := gatewayPost(t, withoutCN, u+"/v3/auth/authenticate", `{"name":"root","password":"pw"}`, "")
	var auth struct{ Token string }
	if err := json.Unmarshal([]byte(body), &auth); code != 200 || err != nil || auth.Token == "" {
		t.Fatalf("authenticate: %d %s (%v)", code, body, err)
	}
	if code, body := gatewayPost(t, withoutCN, u+"/v3/kv/range", `{"key":"Zm9v"}`, auth.Token); code != 200 ||
		!strings.Contains(body, `"value":"YmFy"`) {
		t.Errorf("range with root's token: %d %s", code, body)
	}
}

// --enable-grpc-gateway=false takes /v3/ off the HTTP side: the path is
// the plain 404 of any unknown path, as in etcd.
func TestGatewayDisabled(t *testing.T) {
	c := newCluster(t, 1, "--enable-grpc-gateway=false")
	cl := &http.Client{Timeout: 10 * time.Second}
	code, body := gatewayPost(t, cl, c.members[0].clientURL+"/v3/kv/range", `{"key":"Zm9v"}`, "")
	if code != 404 || body != "404 page not found\n" {
		t.Errorf("/v3/kv/range with the gateway off: %d %q", code, body)
	}
	if code, _, _ := httpGet(t, c.members[0].clientURL+"/health"); code != 200 {
		t.Errorf("/health: %d", code)
	}
}

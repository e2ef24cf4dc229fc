package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// authSetup makes root (password "pw") and a user "reader" (password
// "rpw") that may read the prefix "k/", puts k/1, and enables auth.
func authSetup(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx := ctxT(t)
	steps := []func() error{
		func() error { _, err := cli.Put(ctx, "k/1", "v1"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "r"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "r", "k/", clientv3.GetPrefixRangeEnd("k/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "reader", "rpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "reader", "r"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
}

// signIn makes waitLeader poll the members as root (authSetup's), as
// Status needs a user once auth is enabled.
func (c *cluster) signIn() {
	for _, m := range c.members {
		m.statusUser, m.statusPassword = "root", "pw"
	}
}

// userClient is a client of endpoints that signs in as user.
func userClient(t *testing.T, endpoints []string, user, password string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: user, Password: password})
	if err != nil {
		t.Fatalf("signing in as %s at %v: %v", user, endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// token authenticates user through cli (a client signed in as no one).
func token(t *testing.T, cli *clientv3.Client, user, password string) string {
	t.Helper()
	resp, err := cli.Authenticate(ctxT(t), user, password)
	if err != nil {
		t.Fatalf("authenticate %s: %v", user, err)
	}
	return resp.Token
}

// getWithToken reads key through cli (signed in as no one) with a raw
// token in the request's metadata, as a client that keeps its own token
// does.
func getWithToken(t *testing.T, cli *clientv3.Client, tok, key string) (*clientv3.GetResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), rpctypes.TokenFieldNameGRPC, tok), 10*time.Second)
	defer cancel()
	return cli.Get(ctx, key)
}

// requireValue requires resp, err to be key k/1's value v1.
func requireValue(t *testing.T, what string, resp *clientv3.GetResponse, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("%s: got %v, want k/1=v1", what, resp.Kvs)
	}
}

// requireErr requires err to be etcd's gRPC error want (code and
// message), as clientv3 hands it over: an rpctypes.EtcdError for those
// etcd names, the gRPC status otherwise.
func requireErr(t *testing.T, what string, err, want error) {
	t.Helper()
	wantSt := status.Convert(want)
	var code codes.Code
	var msg string
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code, msg = ee.Code(), ee.Error()
	} else {
		st := status.Convert(err)
		code, msg = st.Code(), st.Message()
	}
	if err == nil || code != wantSt.Code() || msg != wantSt.Message() {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// writeKeyPair writes a PEM private key and its public key into dir.
func writeKeyPair(t *testing.T, dir, name string, priv any, pub any) (privPath, pubPath string) {
	t.Helper()
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return privPath, pubPath
}

// setArg replaces the value of flag in m's arguments (appending it if
// absent), for its next start.
func (m *member) setArg(flag, value string) {
	for i, a := range m.args {
		if a == flag && i+1 < len(m.args) {
			m.args[i+1] = value
			return
		}
	}
	m.args = append(m.args, flag, value)
}

// TestAuthJWT runs a member with etcd's JWT tokens, signed with an RSA
// and with an ECDSA key generated here: a client signs in with a user and
// password and uses the token; a raw token works, and keeps working
// across a restart (JWT tokens are stateless) and on a restart with only
// the public key, which verifies but refuses to sign (etcd's error); a
// token with a forged signature is refused.
func TestAuthJWT(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method    string
		priv, pub any
	}{{"RS256", rsaKey, &rsaKey.PublicKey}, {"ES256", ecKey, &ecKey.PublicKey}} {
		t.Run(tc.method, func(t *testing.T) {
			privPath, pubPath := writeKeyPair(t, dir, tc.method, tc.priv, tc.pub)
			opt := func(priv bool) string {
				o := "jwt,pub-key=" + pubPath + ",sign-method=" + tc.method + ",ttl=10m"
				if priv {
					o += ",priv-key=" + privPath
				}
				return o
			}
			c := newCluster(t, 1, "--auth-token", opt(true), "--bcrypt-cost", "4")
			m := c.members[0]
			anon := m.client()
			authSetup(t, anon)
			c.signIn()
			eps := []string{m.clientURL}

			resp, err := userClient(t, eps, "reader", "rpw").Get(ctxT(t), "k/1")
			requireValue(t, "reader's client", resp, err)
			tok := token(t, anon, "reader", "rpw")
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("token %q is not a JWT (header.claims.signature)", tok)
			}
			resp, err = getWithToken(t, anon, tok, "k/1")
			requireValue(t, "raw JWT", resp, err)
			_, err = getWithToken(t, anon, tok, "other")
			requireErr(t, "raw JWT reading another key", err, rpctypes.ErrGRPCPermissionDenied)
			// Another signature over the same header and claims.
			forged := tok[:strings.LastIndex(tok, ".")+1] + "AAAA" + tok[strings.LastIndex(tok, ".")+5:]
			_, err = getWithToken(t, anon, forged, "k/1")
			requireErr(t, "forged JWT", err, rpctypes.ErrGRPCInvalidAuthToken)

			m.restart()
			c.waitLeader()
			resp, err = getWithToken(t, anon, tok, "k/1")
			requireValue(t, "raw JWT after a restart", resp, err)

			// Verify-only: the public key alone. It signs no one in:
			// waitLeader shows it the token.
			m.statusUser, m.statusToken = "", tok
			m.setArg("--auth-token", opt(false))
			m.restart()
			c.waitLeader()
			resp, err = getWithToken(t, anon, tok, "k/1")
			requireValue(t, "raw JWT on a verify-only member", resp, err)
			_, err = anon.Authenticate(ctxT(t), "reader", "rpw")
			// etcd 3.7.3 answers exactly this (its error has no gRPC
			// mapping).
			requireErr(t, "authenticate on a verify-only member", err,
				status.Error(codes.Unknown, "auth: token signing attempted with verify-only key"))
		})
	}
}

// TestAuthSimpleTokenTTL runs a member whose simple tokens expire after
// 2 s without use: a token used within its TTL lives on, one left
// unused past it is refused, and a client that signed in with a password
// signs in again by itself.
func TestAuthSimpleTokenTTL(t *testing.T) {
	const ttl = 2 * time.Second
	c := newCluster(t, 1, "--auth-token", "simple", "--auth-token-ttl", "2", "--bcrypt-cost", "4")
	m := c.members[0]
	anon := m.client()
	authSetup(t, anon)
	c.signIn()
	user := userClient(t, []string{m.clientURL}, "reader", "rpw")
	resp, err := user.Get(ctxT(t), "k/1")
	requireValue(t, "reader's client", resp, err)

	tok := token(t, anon, "reader", "rpw")
	// Each use renews the token: used every quarter TTL (a busy machine
	// may stretch the gaps), it outlives one and a half.
	for range 6 {
		resp, err := getWithToken(t, anon, tok, "k/1")
		requireValue(t, "a token in use", resp, err)
		time.Sleep(ttl / 4) // the time between uses is what is tested
	}
	// Unused for its TTL and then some (the expiry runs on a tick).
	time.Sleep(ttl + time.Second) // letting the TTL pass is what is tested
	_, err = getWithToken(t, anon, tok, "k/1")
	requireErr(t, "a token unused past its TTL", err, rpctypes.ErrGRPCInvalidAuthToken)
	// user's own token expired too; clientv3 signs in again.
	resp, err = user.Get(ctxT(t), "k/1")
	requireValue(t, "reader's client after its token expired", resp, err)
}

// TestAuthCluster runs three members: a simple token got from one works
// on the others (each learns it by applying the Authenticate entry);
// users, roles and the enabled flag survive a restart of every member,
// and its simple tokens do not (as etcd's, they live in memory);
// and a member that was down while users and roles changed learns them
// from the snapshot it is sent.
func TestAuthCluster(t *testing.T) {
	c := newCluster(t, 3, "--bcrypt-cost", "4", "--snapshot-count", "100", "--snapshot-catchup-entries", "10")
	lead := c.waitLeader()
	anon := c.members[lead].client()
	authSetup(t, anon)
	c.signIn()

	tok := token(t, c.members[0].client(), "reader", "rpw")
	for _, m := range c.members {
		resp, err := getWithToken(t, m.client(), tok, "k/1")
		requireValue(t, "m0's token on "+m.name, resp, err)
		_, err = getWithToken(t, m.client(), tok, "other")
		requireErr(t, "m0's token on "+m.name+" reading another key", err, rpctypes.ErrGRPCPermissionDenied)
	}

	// Stopped cleanly (SIGINT): after a crash, entries applied since the
	// last sync are applied again, Authenticate entries among them (etcd
	// alike, for its last 100 ms).
	for _, m := range c.members {
		m.stop()
	}
	for _, m := range c.members {
		m.start()
	}
	lead = c.waitLeader()
	for _, m := range c.members {
		cli := m.client()
		_, err := cli.Get(ctxT(t), "k/1")
		requireErr(t, "no user on "+m.name+" after a restart", err, rpctypes.ErrGRPCUserEmpty)
		// Simple tokens live in memory, as etcd's: a restart ends them.
		_, err = getWithToken(t, cli, tok, "k/1")
		requireErr(t, "a token from before the restart on "+m.name, err, rpctypes.ErrGRPCInvalidAuthToken)
		resp, err := userClient(t, []string{m.clientURL}, "reader", "rpw").Get(ctxT(t), "k/1")
		requireValue(t, "reader on "+m.name+" after a restart", resp, err)
	}

	// A member down while the auth state changes, then caught up by a
	// snapshot.
	behind := c.members[(lead+1)%3]
	behind.kill()
	root := userClient(t, []string{c.members[lead].clientURL}, "root", "pw")
	ctx := ctxT(t)
	for _, step := range []func() error{
		func() error { _, err := root.UserAdd(ctx, "late", "lpw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "late", "r"); return err },
		func() error { _, err := root.UserChangePassword(ctx, "reader", "rpw2"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "r", "j/", clientv3.GetPrefixRangeEnd("j/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := root.Put(ctx, "j/1", "j"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		if _, err := root.Put(ctx, fmt.Sprintf("load/%04d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	snapshots := strings.Count(logText(t, behind), "applied snapshot")
	behind.start()
	waitLog(t, behind, "applied snapshot", snapshots+1)
	late := userClient(t, []string{behind.clientURL}, "late", "lpw")
	resp, err := late.Get(ctxT(t), "k/1")
	requireValue(t, "a user added while "+behind.name+" was down, on it", resp, err)
	// The read permission granted while it was down, enforced there on a
	// local (serializable) read.
	jresp, err := late.Get(ctxT(t), "j/1", clientv3.WithSerializable())
	if err != nil || len(jresp.Kvs) != 1 {
		t.Fatalf("j/1 through %s: %v %v", behind.name, jresp, err)
	}
	_, err = late.Get(ctxT(t), "load/0001", clientv3.WithSerializable())
	requireErr(t, "late reading a key of no role on "+behind.name, err, rpctypes.ErrGRPCPermissionDenied)
	// The password changed while it was down.
	_, err = behind.client().Authenticate(ctxT(t), "reader", "rpw")
	requireErr(t, "reader's old password on "+behind.name, err, rpctypes.ErrGRPCAuthFailed)
	if _, err := behind.client().Authenticate(ctxT(t), "reader", "rpw2"); err != nil {
		t.Fatalf("reader's new password on %s: %v", behind.name, err)
	}
}

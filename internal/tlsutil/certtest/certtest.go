// Package certtest makes certificates for tests: a CA, certificates it
// signs (server, peer, client; expired; with any CN and SANs), and CRLs,
// written as PEM files the way an operator would hand them to cairn.
package certtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// serials numbers the certificates of a test binary, so that a CRL can
// name one and no two collide.
var serials atomic.Int64

// CA is a certificate authority for a test.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CertFile is the CA's certificate, PEM (a --trusted-ca-file).
	CertFile string
	dir      string
}

// NewCA makes a CA named cn, its certificate written under dir.
func NewCA(t testing.TB, dir, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serials.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, key: key, dir: dir, CertFile: filepath.Join(dir, cn+"-ca.pem")}
	writePEM(t, ca.CertFile, "CERTIFICATE", der, 0o644)
	return ca
}

// Spec describes a certificate to issue.
type Spec struct {
	// Name names the files: <Name>.pem and <Name>-key.pem.
	Name string
	CN   string
	IPs  []net.IP
	DNS  []string
	// Expired makes a certificate that expired an hour ago.
	Expired bool
}

// Pair is an issued certificate and its files.
type Pair struct {
	Cert              *x509.Certificate
	CertFile, KeyFile string
}

// Localhost are the SANs a certificate for a member on loopback needs.
var Localhost = Spec{IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, DNS: []string{"localhost"}}

// Issue signs a certificate good for both server and client use and
// writes it and its key to files.
func (ca *CA) Issue(t testing.TB, s Spec) Pair {
	t.Helper()
	key := newKey(t)
	notAfter := time.Now().Add(24 * time.Hour)
	if s.Expired {
		notAfter = time.Now().Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serials.Add(1)),
		Subject:      pkix.Name{CommonName: s.CN},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  s.IPs,
		DNSNames:     s.DNS,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{Cert: cert, CertFile: filepath.Join(ca.dir, s.Name+".pem"), KeyFile: filepath.Join(ca.dir, s.Name+"-key.pem")}
	writePEM(t, p.KeyFile, "EC PRIVATE KEY", keyDER, 0o600)
	writePEM(t, p.CertFile, "CERTIFICATE", der, 0o644)
	return p
}

// CRL writes to file a CRL, signed by ca, revoking certs.
func (ca *CA) CRL(t testing.TB, file string, certs ...*x509.Certificate) {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(serials.Add(1)), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour)}
	for _, c := range certs {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	// etcd reads a CRL file as DER.
	if err := os.WriteFile(file, der, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writePEM writes through a temporary file and a rename, so that a
// reader (a member re-reading its certificate) never sees half a file.
func writePEM(t testing.TB, file, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// ClientConfig is a client's TLS configuration that trusts ca and, if
// pair has files, always presents pair (even when the server asks for
// another CA's, so that a refusal is the server's).
func (ca *CA) ClientConfig(t testing.TB, pair Pair) *tls.Config {
	t.Helper()
	data, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data)
	cfg := &tls.Config{RootCAs: pool}
	if pair.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg
}

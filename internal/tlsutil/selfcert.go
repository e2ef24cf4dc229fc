package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// SelfCert returns an Info serving the self-signed certificate in dir
// (cert.pem, key.pem), as etcd's --auto-tls and --peer-auto-tls do: if
// both files exist they are used as they are; otherwise a new ECDSA P-521
// certificate, valid validityYears years for hosts (host:port, the
// listen URLs' hosts: IPs become IP SANs, names DNS SANs), is written
// there first. etcd puts them under <data-dir>/fixtures/client and
// fixtures/peer.
func SelfCert(lg *zap.Logger, dir string, hosts []string, validityYears uint) (Info, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if validityYears == 0 {
		return Info{}, errors.New("selfSignedCertValidity is invalid,it should be greater than 0")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("cannot create cert directory: %w", err)
	}
	certPath, err := filepath.Abs(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return Info{}, err
	}
	keyPath, err := filepath.Abs(filepath.Join(dir, "key.pem"))
	if err != nil {
		return Info{}, err
	}
	info := Info{CertFile: certPath, KeyFile: keyPath, ClientCertFile: certPath, ClientKeyFile: keyPath, SelfSigned: true, Logger: lg}
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	if certErr == nil && keyErr == nil {
		return info, nil
	}

	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return Info{}, err
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"etcd"}},
		NotBefore:             now,
		NotAfter:              now.Add(time.Duration(validityYears) * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, hp := range hosts {
		h, _, err := net.SplitHostPort(hp)
		if err != nil {
			h = hp
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	lg.Warn("automatically generate certificates", zap.Time("certificate-validity-bound-not-after", tmpl.NotAfter))
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		return Info{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return Info{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Info{}, err
	}
	// The key first: a certificate without its key would be taken as a
	// finished pair by the next start.
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return Info{}, err
	}
	lg.Info("created key file", zap.String("path", keyPath))
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return Info{}, err
	}
	lg.Info("created cert file", zap.String("path", certPath))
	return info, nil
}

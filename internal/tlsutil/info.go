package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"

	"go.uber.org/zap"
)

// Info is one port's TLS settings, as etcd's flags give them: the client
// port's (--cert-file, --key-file, --trusted-ca-file, ...) or the peer
// port's (--peer-cert-file, ...).
type Info struct {
	// CertFile and KeyFile are the certificate this member serves. Both
	// or neither; neither means the port has no TLS (Empty).
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile, if set, are what this member
	// presents when it dials (etcd's --client-cert-file,
	// --peer-client-cert-file); else it presents CertFile.
	ClientCertFile, ClientKeyFile string
	// TrustedCAFile verifies the other side's certificate: a client's (a
	// server then requires one, as etcd does) and a server's when
	// dialling.
	TrustedCAFile string
	// ClientCertAuth requires clients to present a certificate.
	ClientCertAuth bool
	// CRLFile lists revoked certificates; read at every handshake.
	CRLFile string
	// AllowedCNs and AllowedHostnames, at most one of them set, restrict
	// the client certificates accepted to those whose leaf has one of
	// the common names, or is valid for one of the host names.
	AllowedCNs, AllowedHostnames []string
	// SkipClientSANVerify turns off the check of a client's SANs against
	// its address (--peer-skip-client-san-verification).
	SkipClientSANVerify bool
	// CipherSuites, MinVersion and MaxVersion bound what is negotiated;
	// zero values are Go's defaults, but MinVersion defaults to TLS 1.2.
	CipherSuites           []uint16
	MinVersion, MaxVersion uint16
	// SelfSigned is set for auto-TLS certificates (SelfCert): this
	// member then dials without verifying the server, as etcd does.
	SelfSigned bool
	// Logger receives the failures to read certificate files at
	// handshakes. Nil: nothing is logged.
	Logger *zap.Logger
}

// Empty reports whether the port has no certificate: no TLS.
func (info Info) Empty() bool { return info.CertFile == "" && info.KeyFile == "" }

// String names the files, as etcd's "starting with ... TLS" line does.
func (info Info) String() string {
	return fmt.Sprintf("cert = %s, key = %s, client-cert=%s, client-key=%s, trusted-ca = %s, client-cert-auth = %v, crl-file = %s",
		info.CertFile, info.KeyFile, info.ClientCertFile, info.ClientKeyFile, info.TrustedCAFile, info.ClientCertAuth, info.CRLFile)
}

// ErrClientCertAuth is the handshake error for a client certificate that
// AllowedCNs or AllowedHostnames refuse, in etcd's words.
var ErrClientCertAuth = errors.New("client certificate authentication failed")

func (info Info) logger() *zap.Logger {
	if info.Logger == nil {
		return zap.NewNop()
	}
	return info.Logger
}

// baseConfig is what server and client configurations share: the files
// checked once now (a broken file fails the start, not the first
// handshake), versions, suites, the allowed-name check and the per
// handshake certificate loaders.
func (info Info) baseConfig() (*tls.Config, error) {
	if info.KeyFile == "" || info.CertFile == "" {
		return nil, fmt.Errorf("KeyFile and CertFile must both be present[key: %v, cert: %v]", info.KeyFile, info.CertFile)
	}
	if _, err := loadKeyPair(info.CertFile, info.KeyFile); err != nil {
		return nil, err
	}
	if (info.ClientKeyFile == "") != (info.ClientCertFile == "") {
		return nil, fmt.Errorf("ClientKeyFile and ClientCertFile must both be present or both absent: key: %v, cert: %v]", info.ClientKeyFile, info.ClientCertFile)
	}
	if info.ClientCertFile != "" {
		if _, err := loadKeyPair(info.ClientCertFile, info.ClientKeyFile); err != nil {
			return nil, err
		}
	}
	if len(info.AllowedCNs) > 0 && len(info.AllowedHostnames) > 0 {
		return nil, fmt.Errorf("AllowedCNs and AllowedHostnames are mutually exclusive (cns=%q, hostnames=%q)", info.AllowedCNs, info.AllowedHostnames)
	}
	cfg := &tls.Config{
		MinVersion:   info.MinVersion,
		MaxVersion:   info.MaxVersion,
		CipherSuites: info.CipherSuites,
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if allowed := info.allowed(); allowed != nil {
		cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, chain := range chains {
				if len(chain) > 0 && allowed(chain[0]) {
					return nil
				}
			}
			return ErrClientCertAuth
		}
	}
	lg := info.logger()
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := loadKeyPair(info.CertFile, info.KeyFile)
		if err != nil {
			lg.Warn("failed to create peer certificate", zap.String("cert-file", info.CertFile),
				zap.String("key-file", info.KeyFile), zap.Error(err))
		}
		return cert, err
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		certFile, keyFile := info.CertFile, info.KeyFile
		if info.ClientCertFile != "" {
			certFile, keyFile = info.ClientCertFile, info.ClientKeyFile
		}
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			lg.Warn("failed to create client certificate", zap.String("cert-file", certFile),
				zap.String("key-file", keyFile), zap.Error(err))
		}
		return cert, err
	}
	return cfg, nil
}

// allowed is the check AllowedCNs or AllowedHostnames ask of a verified
// leaf certificate, or nil.
func (info Info) allowed() func(*x509.Certificate) bool {
	switch {
	case len(info.AllowedCNs) > 0:
		return func(c *x509.Certificate) bool { return slices.Contains(info.AllowedCNs, c.Subject.CommonName) }
	case len(info.AllowedHostnames) > 0:
		return func(c *x509.Certificate) bool {
			return slices.ContainsFunc(info.AllowedHostnames, func(h string) bool { return c.VerifyHostname(h) == nil })
		}
	}
	return nil
}

// ServerConfig is the configuration a listener serves with. A client
// certificate is required, and verified against TrustedCAFile, when
// ClientCertAuth or TrustedCAFile is set (etcd's rule).
func (info Info) ServerConfig() (*tls.Config, error) {
	cfg, err := info.baseConfig()
	if err != nil {
		return nil, err
	}
	if info.TrustedCAFile != "" || info.ClientCertAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if info.TrustedCAFile != "" {
		if cfg.ClientCAs, err = certPool(info.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	// etcd offers h2 only; http/1.1 is offered as well so that an
	// HTTP/1.1-only client (curl --http1.1) can reach /health over TLS.
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, nil
}

// ClientConfig is the configuration this member dials with: the server
// verified against TrustedCAFile (the system's roots if unset; not at all
// for self-signed certificates), and ClientCertFile, else CertFile,
// presented when asked.
func (info Info) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{}
	if !info.Empty() {
		var err error
		if cfg, err = info.baseConfig(); err != nil {
			return nil, err
		}
	}
	if info.TrustedCAFile != "" {
		pool, err := certPool(info.TrustedCAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	cfg.InsecureSkipVerify = info.SelfSigned
	return cfg, nil
}

// loadKeyPair reads a certificate and its key.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// certPool reads every certificate of a PEM file.
func certPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// CertCommonName is the common name of the first certificate of a PEM
// file (etcd's grpc-proxy refuses a client certificate that has one).
func CertCommonName(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("no certificate in %s", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	return cert.Subject.CommonName, nil
}

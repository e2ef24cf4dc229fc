package tlsutil

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// CipherSuites maps --cipher-suites names (Go's names, secure or not,
// plus the two pre-Go-1.14 CHACHA20 names etcd still takes) to IDs.
func CipherSuites(names []string) ([]uint16, error) {
	ids := make([]uint16, 0, len(names))
	for _, name := range names {
		id, ok := cipherSuite(name)
		if !ok {
			return nil, fmt.Errorf("unexpected TLS cipher suite %q", name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cipherSuite(name string) (uint16, bool) {
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, c := range list {
			if c.Name == name {
				return c.ID, true
			}
		}
	}
	switch name {
	case "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true
	case "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true
	}
	return 0, false
}

// Version maps --tls-min-version/--tls-max-version to a version: "" is
// 0, Go's choice.
func Version(s string) (uint16, error) {
	switch s {
	case "":
		return 0, nil
	case "TLS1.2":
		return tls.VersionTLS12, nil
	case "TLS1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", s)
}

// CheckVersions refuses, in etcd's words, a minimum version (Version's)
// above the maximum, and cipher suites (nSuites of them) with TLS 1.3
// only, whose suites Go does not let be chosen.
func CheckVersions(minV, maxV uint16, nSuites int) error {
	if maxV != 0 && minV > maxV {
		return fmt.Errorf("min version (%s) is greater than max version (%s)", versionName(minV), versionName(maxV))
	}
	if minV == tls.VersionTLS13 && nSuites > 0 {
		return errors.New("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	return nil
}

// versionName is the flag value Version reads as v.
func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return ""
}

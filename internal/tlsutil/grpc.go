package tlsutil

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ServerCredentials returns gRPC server credentials for connections a
// Listener (or a plain listener) has already accepted: a *tls.Conn, its
// handshake done, is handed through with its state as the peer's
// credentials.TLSInfo (PrivacyAndIntegrity); any other connection is
// handed through as insecure (NoSecurity), so one gRPC server can serve
// https and http listeners alike.
func ServerCredentials() credentials.TransportCredentials { return handshaken{} }

type handshaken struct{}

// insecureInfo is the AuthInfo of a plain connection.
type insecureInfo struct{ credentials.CommonAuthInfo }

func (insecureInfo) AuthType() string { return "insecure" }

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// A *tls.Conn, or a connection wrapping one that says its state (the
	// peer transport's, which reads a connection's first bytes itself).
	if tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return c, credentials.TLSInfo{
			State:          tc.ConnectionState(),
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		}, nil
	}
	return c, insecureInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	panic("tlsutil: ServerCredentials are for servers")
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (h handshaken) Clone() credentials.TransportCredentials { return h }

func (handshaken) OverrideServerName(string) error { return nil }

// PeerCommonName returns the common name of the verified client
// certificate of the connection a gRPC request came on (etcd's user name
// for --client-cert-auth), and whether there is one: a TLS connection
// whose client presented a certificate the server verified.
func PeerCommonName(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	for _, chain := range info.State.VerifiedChains {
		if len(chain) > 0 {
			return chain[0].Subject.CommonName, true
		}
	}
	return "", false
}

// Package tlsutil is Cairn's TLS, as etcd 3.7.3 sets it up for its client
// and peer ports: configurations built from certificate files (Info),
// listeners that finish each handshake before handing a connection over
// (NewListener), self-signed certificates for --auto-tls and
// --peer-auto-tls (SelfCert), and etcd's parsing of --cipher-suites and
// --tls-min-version/--tls-max-version.
//
// What is read when. The certificate and key files are read at every
// handshake (GetCertificate, GetClientCertificate), so that a certificate
// replaced on disk is served by the next handshake without a restart; a
// file that cannot be read fails that handshake only. The CRL file is
// read at every handshake too. The trusted CA file is read once, when the
// configuration is built, as etcd reads it.
//
// Who is refused where, for a listener built from an Info:
//
//	check                         when                                  refusal
//	client certificate required   ClientCertAuth or TrustedCAFile set   handshake fails (bad certificate)
//	chain verified against CA     a certificate is required             handshake fails (unknown authority, expired)
//	AllowedCNs / AllowedHostnames set                                   handshake fails ("client certificate authentication failed")
//	CRL                           CRLFile set                           connection closed after the handshake
//	client SAN matches its IP     ListenerOptions.CheckSAN (peer port,  connection closed after the handshake
//	                              metrics port) and the leaf has SANs
//	handshake deadline            always (HandshakeTimeout)             connection closed
//
// A connection accepted by such a listener is a *tls.Conn whose
// handshake is done. ListenerOptions.Divert splits the connections by
// their ClientHello: those it chooses come out of Listener.Diverted
// instead (cmd/cairn sends gRPC clients, which offer HTTP/2 alone by
// ALPN, to its own gRPC server that way). A gRPC server serving it needs ServerCredentials,
// which hand the connection through and tell handlers (peer.FromContext)
// the verified chain; PeerCommonName reads it back.
package tlsutil

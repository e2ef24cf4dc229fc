package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultHandshakeTimeout is how long a new connection has to finish its
// TLS handshake (etcd's 10 s): a client that connects and says nothing is
// dropped then, rather than holding a goroutine and a descriptor for ever
// (GHSA-6vch-q96h-7gc3).
const DefaultHandshakeTimeout = 10 * time.Second

// ListenerOptions tune NewListener.
type ListenerOptions struct {
	// CheckSAN refuses a client certificate with SANs none of which
	// matches the client's address (etcd checks this on the peer port and
	// the metrics port, not the client port). Info.SkipClientSANVerify
	// turns it off.
	CheckSAN bool
	// HandshakeTimeout bounds each handshake. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// OnRefused, if set, is told of each connection refused: a failed
	// handshake, a revoked certificate, a SAN mismatch.
	OnRefused func(conn *tls.Conn, err error)
	// Divert, if set, is asked of each connection's ClientHello; a
	// connection it says yes to is handed out by Diverted's listener
	// rather than by Accept, once its handshake and checks have passed.
	// It runs in the handshake's goroutine and must not block.
	Divert func(*tls.ClientHelloInfo) bool
}

// Listener hands out TLS connections whose handshake and checks passed.
// Each accepted connection is handshaken in a goroutine of its own, so a
// slow client holds up no other; Close stops them and waits for them.
type Listener struct {
	root   net.Listener
	config *tls.Config
	info   Info
	opts   ListenerOptions

	conns chan *tls.Conn
	// diverted carries the connections ListenerOptions.Divert chose.
	diverted chan *tls.Conn
	// done is closed when the accept loop ends; err is why (read it only
	// after done is closed).
	done chan struct{}
	err  error
}

// NewListener serves TLS on l with info's server configuration. On an
// error l is closed.
func NewListener(l net.Listener, info Info, opts ListenerOptions) (*Listener, error) {
	if info.Empty() {
		l.Close()
		return nil, fmt.Errorf("cannot listen on TLS for %s: KeyFile and CertFile are not presented", l.Addr())
	}
	cfg, err := info.ServerConfig()
	if err != nil {
		l.Close()
		return nil, err
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if info.SkipClientSANVerify {
		opts.CheckSAN = false
	}
	if opts.Divert != nil {
		// One configuration for every connection (a clone per
		// connection would give each its own session ticket keys, and
		// no session would resume); the ClientHello's connection says
		// which one it is.
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if hc, ok := hello.Conn.(*helloConn); ok {
				hc.divert = opts.Divert(hello)
			}
			return nil, nil
		}
	}
	tl := &Listener{root: l, config: cfg, info: info, opts: opts, conns: make(chan *tls.Conn),
		diverted: make(chan *tls.Conn), done: make(chan struct{})}
	go tl.acceptLoop()
	return tl, nil
}

// acceptLoop accepts until the root listener closes, then closes the
// connections still handshaking and waits for their goroutines.
func (l *Listener) acceptLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu struct {
		sync.Mutex
		handshaking map[net.Conn]struct{}
	}
	mu.handshaking = map[net.Conn]struct{}{}
	defer func() {
		cancel()
		mu.Lock()
		for c := range mu.handshaking {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		close(l.done)
	}()
	for {
		raw, err := l.root.Accept()
		if err != nil {
			l.err = err
			return
		}
		mu.Lock()
		mu.handshaking[raw] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &helloConn{Conn: raw}
			conn := tls.Server(hc, l.config)
			err := l.handshake(ctx, conn)
			mu.Lock()
			delete(mu.handshaking, raw)
			mu.Unlock()
			if err != nil {
				if l.opts.OnRefused != nil {
					l.opts.OnRefused(conn, err)
				}
				conn.Close()
				return
			}
			out := l.conns
			if hc.divert {
				out = l.diverted
			}
			select {
			case out <- conn:
			case <-ctx.Done():
				conn.Close()
			}
		}()
	}
}

// helloConn is an accepted connection as its TLS handshake sees it:
// GetConfigForClient records there what ListenerOptions.Divert said of
// its ClientHello. The handshake runs on the connection's goroutine, which
// reads divert after it.
type helloConn struct {
	net.Conn
	divert bool
}

// handshake completes the handshake within the timeout and runs the
// checks the handshake itself does not.
func (l *Listener) handshake(ctx context.Context, conn *tls.Conn) error {
	conn.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	if l.info.CRLFile != "" {
		if err := CheckCRL(l.info.CRLFile, certs); err != nil {
			return err
		}
	}
	if l.opts.CheckSAN {
		if err := checkSAN(ctx, certs[0], conn.RemoteAddr()); err != nil {
			return err
		}
	}
	return nil
}

// Accept returns the next connection whose handshake and checks passed:
// a *tls.Conn.
func (l *Listener) Accept() (net.Conn, error) { return l.accept(l.conns) }

// accept returns the next connection from ch (conns or diverted), or the
// accept loop's error once it has ended.
func (l *Listener) accept(ch chan *tls.Conn) (net.Conn, error) {
	select {
	case c := <-ch:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Diverted is a listener of the connections ListenerOptions.Divert chose
// (none without it); closing it closes l.
func (l *Listener) Diverted() net.Listener { return divertedListener{l} }

type divertedListener struct{ l *Listener }

func (d divertedListener) Accept() (net.Conn, error) { return d.l.accept(d.l.diverted) }

func (d divertedListener) Close() error   { return d.l.Close() }
func (d divertedListener) Addr() net.Addr { return d.l.Addr() }

// Close closes the root listener and waits for the handshakes under way.
func (l *Listener) Close() error {
	err := l.root.Close()
	<-l.done
	return err
}

// Addr is the root listener's address.
func (l *Listener) Addr() net.Addr { return l.root.Addr() }

// CheckCRL refuses certs if the CRL in crlFile lists any of their serial
// numbers.
func CheckCRL(crlFile string, certs []*x509.Certificate) error {
	data, err := os.ReadFile(crlFile)
	if err != nil {
		return err
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return err
	}
	revoked := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		revoked[string(e.SerialNumber.Bytes())] = true
	}
	for _, c := range certs {
		if serial := c.SerialNumber.Bytes(); revoked[string(serial)] {
			return fmt.Errorf("transport: certificate serial %x revoked", serial)
		}
	}
	return nil
}

// checkSAN is etcd's client SAN check: a certificate with IP or DNS
// SANs must name the address it connects from, directly (an IP SAN) or
// through DNS (a DNS SAN whose name resolves to it, or that the address
// resolves back to). A certificate without SANs passes.
func checkSAN(ctx context.Context, cert *x509.Certificate, remote net.Addr) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		// A Unix socket's peer has no address to match.
		return nil
	}
	var ipErr error
	if len(cert.IPAddresses) > 0 {
		if ipErr = cert.VerifyHostname(host); ipErr == nil {
			return nil
		}
		if len(cert.DNSNames) == 0 {
			return ipErr
		}
	}
	ok, err := hostInDNS(ctx, host, cert.DNSNames)
	if ok {
		return nil
	}
	suffix := ""
	if err != nil {
		suffix = " (" + err.Error() + ")"
	}
	return fmt.Errorf("tls: %q does not match any of DNSNames %q%s", host, cert.DNSNames, suffix)
}

// hostInDNS reports whether the address host resolves back to one of
// names (wildcards "*.example.com" match by suffix) or one of the names
// resolves to host.
func hostInDNS(ctx context.Context, host string, names []string) (bool, error) {
	var exact, wildcards []string
	for _, n := range names {
		if suffix, ok := strings.CutPrefix(n, "*"); ok && strings.HasPrefix(suffix, ".") {
			wildcards = append(wildcards, suffix)
		} else {
			exact = append(exact, n)
		}
	}
	reverse, err := net.DefaultResolver.LookupAddr(ctx, host)
	for _, r := range reverse {
		r = strings.TrimSuffix(r, ".")
		if slices.Contains(exact, r) || slices.ContainsFunc(wildcards, func(w string) bool { return strings.HasSuffix(r, w) }) {
			return true, nil
		}
	}
	for _, n := range exact {
		addrs, lerr := net.DefaultResolver.LookupHost(ctx, n)
		if lerr != nil {
			err = lerr
			continue
		}
		if slices.Contains(addrs, host) {
			return true, nil
		}
	}
	return false, err
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"
)

// http2Preface is what every HTTP/2 connection (every gRPC client) sends
// first. The client port serves gRPC and plain HTTP (health, metrics) on
// one listener, as etcd does: a connection that opens with the preface goes
// to the gRPC server, any other to the HTTP server.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// sniffTimeout bounds how long a new connection may take to send its
// first bytes.
const sniffTimeout = 10 * time.Second

// tlsRecordHandshake opens every TLS connection (a ClientHello record).
const tlsRecordHandshake = 0x16

// demux splits one listener into a gRPC and an HTTP listener, and, when
// an address serves both http:// and https:// URLs (etcd allows it), a
// listener of the connections that open with a TLS handshake, still to
// be made (tlsutil.NewListener takes it).
type demux struct {
	root net.Listener
	grpc *chanListener
	// http is nil on a gRPC-only address (--listen-client-http-urls):
	// its plain HTTP/1 connections are closed, as etcd's gRPC server
	// closes them.
	http *chanListener
	// tls is nil unless the address also serves https://.
	tls   *chanListener
	done  chan struct{}
	close sync.Once
}

func newDemux(l net.Listener, serveHTTP, serveTLS bool) *demux {
	d := &demux{root: l, done: make(chan struct{})}
	newChan := func() *chanListener {
		return &chanListener{addr: l.Addr(), conns: make(chan net.Conn), done: d.done, closeFn: d.Close}
	}
	d.grpc = newChan()
	if serveHTTP {
		d.http = newChan()
	}
	if serveTLS {
		d.tls = newChan()
	}
	return d
}

// serve accepts connections until the root listener closes. Each new
// connection is classified in its own goroutine, so a slow client cannot
// stall the others; those goroutines end when the sniff does.
func (d *demux) serve() error {
	for {
		c, err := d.root.Accept()
		if err != nil {
			d.Close()
			return err
		}
		go d.classify(c)
	}
}

func (d *demux) classify(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, len(http2Preface))
	head, err := br.Peek(len(http2Preface))
	c.SetReadDeadline(time.Time{})
	target := d.http
	switch {
	case err == nil && bytes.Equal(head, http2Preface):
		target = d.grpc
	case len(head) == 0:
		c.Close()
		return
	case head[0] == tlsRecordHandshake && d.tls != nil:
		target = d.tls
	}
	if target == nil {
		c.Close()
		return
	}
	select {
	case target.conns <- &peekedConn{Conn: c, r: br}:
	case <-d.done:
		c.Close()
	}
}

func (d *demux) Close() error {
	var err error
	d.close.Do(func() {
		close(d.done)
		err = d.root.Close()
	})
	return err
}

// peekedConn replays the bytes read while classifying.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection if the one under it can (a TCP
// connection): h2grpc's GracefulStop sends its last answers so.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// chanListener is a net.Listener fed by the demux.
type chanListener struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	closeFn func() error
}

var errListenerClosed = errors.New("listener closed")

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errListenerClosed
	}
}

func (l *chanListener) Close() error   { return l.closeFn() }
func (l *chanListener) Addr() net.Addr { return l.addr }

// listenConfig sets SO_REUSEPORT and SO_REUSEADDR on cairn's listeners
// when asked (etcd's --socket-reuse-port, --socket-reuse-address).
func listenConfig(reusePort, reuseAddress bool) net.ListenConfig {
	if !reusePort && !reuseAddress {
		return net.ListenConfig{}
	}
	return net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if reuseAddress {
				serr = setReuseAddress(fd)
			}
			if reusePort && serr == nil {
				serr = setReusePort(fd)
			}
		})
		return firstErr(err, serr)
	}}
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// listen opens a listener for a URL: http:// and https:// on its
// host:port, unix:// and unixs:// on its path (TLS is put on by the
// caller: wrapTLS).
func listen(lc net.ListenConfig, rawURL string) (net.Listener, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
	case "unix", "unixs":
		// As etcd: a socket file left by a member that died is removed
		// (else the bind fails with "address already in use").
		path := u.Host + u.Path
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return lc.Listen(context.Background(), "unix", path)
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q", u.Scheme)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("URL %s has no port", rawURL)
	}
	return lc.Listen(context.Background(), "tcp", u.Host)
}

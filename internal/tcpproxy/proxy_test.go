package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// backend is an endpoint on loopback that greets each connection with
// its one-letter name, then echoes.
type backend struct {
	name string
	addr string
	ln   net.Listener
	wg   sync.WaitGroup
}

func startBackend(t *testing.T, name, addr string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				c.Write([]byte(name))
				io.Copy(c, c)
			}()
		}
	}()
	// After the proxy's cleanup (registered later, run earlier), which
	// closes the connections to the backend.
	t.Cleanup(func() {
		b.stop()
		b.wg.Wait()
	})
	return b
}

// stop closes the listener (so that dials are refused); connections
// already open end when their clients close them.
func (b *backend) stop() {
	b.ln.Close()
}

// greet connects to the proxy and reads the backend's greeting: the open
// connection, which the caller closes, and the backend's name ("" if the
// proxy closed the connection).
func greet(t *testing.T, proxy string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	name := make([]byte, 1)
	if _, err := io.ReadFull(c, name); err != nil {
		if errors.Is(err, io.EOF) {
			return c, ""
		}
		c.Close()
		t.Fatal(err)
	}
	return c, string(name)
}

// via connects to the proxy and returns the backend's name, after an echo
// round trip; "" if the proxy closed the connection.
func via(t *testing.T, proxy string) string {
	t.Helper()
	c, name := greet(t, proxy)
	defer c.Close()
	if name == "" {
		return ""
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(c, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("echo through the proxy: %q, %v", echo, err)
	}
	return name
}

// fakeClock is the proxy's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func startProxy(t *testing.T, clock *fakeClock, endpoints ...string) (*Proxy, string, *observer.ObservedLogs) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	p := &Proxy{Endpoints: endpoints, RetryDelay: time.Minute, Now: clock.Now, Logger: zap.New(core)}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return p, ln.Addr().String(), logs
}

// logged counts the log lines with message msg about address addr.
func logged(logs *observer.ObservedLogs, msg, addr string) int {
	n := 0
	for _, e := range logs.FilterMessage(msg).All() {
		if e.ContextMap()["address"] == addr {
			n++
		}
	}
	return n
}

// Connections are spread over the endpoints in turn; one that refuses is
// passed over until the retry delay has passed, then tried again; when
// every endpoint refused, a new connection tries them all again rather
// than being closed, and is served by the first back. An endpoint's
// changes are logged once each ("deactivated endpoint", "activated"), not
// every dial.
func TestProxy(t *testing.T) {
	a := startBackend(t, "a", "127.0.0.1:0")
	b := startBackend(t, "b", "127.0.0.1:0")
	c := startBackend(t, "c", "127.0.0.1:0")
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	_, proxy, logs := startProxy(t, clock, a.addr, b.addr, c.addr)

	var got string
	for range 6 {
		got += via(t, proxy)
	}
	if got != "abcabc" {
		t.Fatalf("six connections went to %q, want abcabc", got)
	}

	b.stop()
	got = ""
	for range 4 {
		got += via(t, proxy)
	}
	// The second tries b (refused, passed over from then on) and then c;
	// the turn goes on over a and c.
	if got != "acca" {
		t.Fatalf("with b down, four connections went to %q, want acca", got)
	}
	// b listens again, but stays passed over until the delay is over.
	b2 := startBackend(t, "b", b.addr)
	got = ""
	for range 4 {
		got += via(t, proxy)
	}
	for _, n := range got {
		if n == 'b' {
			t.Fatalf("b was tried within its retry delay: %q", got)
		}
	}
	clock.add(time.Minute)
	seen := map[rune]bool{}
	for range 3 {
		for _, n := range via(t, proxy) {
			seen[n] = true
		}
	}
	if !seen['b'] {
		t.Fatalf("b was not tried again after its retry delay: saw %v", seen)
	}
	if d, a := logged(logs, "deactivated endpoint", b.addr), logged(logs, "activated", b.addr); d != 1 || a != 1 {
		t.Fatalf("b's changes logged %d deactivations and %d activations, want 1 and 1", d, a)
	}

	// Everything down: the connection is closed.
	a.stop()
	b2.stop()
	c.stop()
	for range 5 {
		if name := via(t, proxy); name != "" {
			t.Fatalf("with every endpoint down, a connection reached %q", name)
		}
	}
	if d := logged(logs, "deactivated endpoint", a.addr); d != 1 {
		t.Fatalf("a, down for five connections, logged %d deactivations, want 1", d)
	}
	// All passed over now; c comes back: the next connection is served,
	// without waiting for a retry delay.
	startBackend(t, "c", c.addr)
	if name := via(t, proxy); name != "c" {
		t.Fatalf("after c came back, a connection reached %q, want c", name)
	}
}

// Close ends the connections being forwarded, and Serve.
func TestProxyClose(t *testing.T) {
	a := startBackend(t, "a", "127.0.0.1:0")
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	p, proxy, _ := startProxy(t, clock, a.addr)
	conn, name := greet(t, proxy)
	defer conn.Close()
	if name != "a" {
		t.Fatalf("through the proxy: %q, want a", name)
	}
	p.Close()
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("a forwarded connection stayed open after Close")
	}
}

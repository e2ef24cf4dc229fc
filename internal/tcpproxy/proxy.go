package tcpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Proxy forwards the connections its listener accepts to Endpoints.
type Proxy struct {
	// Endpoints are the cluster's client endpoints, host:port.
	Endpoints []string
	// RetryDelay is how long an endpoint that refused a dial is passed
	// over. Default 1m (etcd's --retry-delay).
	RetryDelay time.Duration
	// DialTimeout bounds each dial. Default 3s.
	DialTimeout time.Duration
	Logger      *zap.Logger
	// Now is the clock the retry delays are read from; nil is time.Now.
	Now func() time.Time

	// wg counts Serve's connection goroutines (added under mu, so that
	// none starts after Close); Close waits for them.
	wg sync.WaitGroup
	// ctx ends with Close: dials in flight give up.
	ctx    context.Context
	cancel context.CancelFunc
	mu     struct {
		sync.Mutex
		// next is the endpoint the next connection tries first.
		next int
		// passUntil[i] is when endpoint i, which refused a dial, is
		// tried again (zero: not passed over).
		passUntil []time.Time
		// conns are the open connections, both sides, which Close
		// closes.
		conns  map[net.Conn]struct{}
		closed bool
		ln     net.Listener
	}
}

// ErrClosed is Serve's answer once Close was called.
var ErrClosed = errors.New("tcpproxy: closed")

// Serve accepts connections on ln and forwards each to an endpoint, until
// ln fails or Close is called (ErrClosed). It logs etcd's "ready to proxy
// client requests" first.
func (p *Proxy) Serve(ln net.Listener) error {
	if p.RetryDelay <= 0 {
		p.RetryDelay = time.Minute
	}
	if p.DialTimeout <= 0 {
		p.DialTimeout = 3 * time.Second
	}
	if p.Logger == nil {
		p.Logger = zap.NewNop()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	p.mu.ln = ln
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.mu.passUntil = make([]time.Time, len(p.Endpoints))
	p.mu.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.Logger.Info("ready to proxy client requests", zap.Strings("endpoints", p.Endpoints))
	for {
		in, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.mu.closed
			p.mu.Unlock()
			if closed {
				return ErrClosed
			}
			return err
		}
		if !p.track(in, true) {
			in.Close()
			return ErrClosed
		}
		go func() {
			defer p.wg.Done()
			p.serve(in)
		}()
	}
}

// Close stops Serve, closes every connection being forwarded and waits
// for their goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.mu.closed = true
	if p.mu.ln != nil {
		p.mu.ln.Close()
		p.cancel()
	}
	for c := range p.mu.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// track records c among the open connections, and with goroutine a
// goroutine about to start for it; false once closed.
func (p *Proxy) track(c net.Conn, goroutine bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return false
	}
	p.mu.conns[c] = struct{}{}
	if goroutine {
		p.wg.Add(1)
	}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.mu.conns, c)
	p.mu.Unlock()
	c.Close()
}

// serve forwards in to an endpoint, or closes it if none answers.
func (p *Proxy) serve(in net.Conn) {
	defer p.untrack(in)
	out := p.dial()
	if out == nil {
		return
	}
	if !p.track(out, false) {
		out.Close()
		return
	}
	defer p.untrack(out)
	done := make(chan struct{})
	go func() {
		io.Copy(in, out)
		// Either side's end ends both, as etcd's gateway.
		in.Close()
		out.Close()
		close(done)
	}()
	io.Copy(out, in)
	in.Close()
	out.Close()
	<-done
}

// dial connects to the endpoints in turn from the next one, those passed
// over last, and returns the first connection made (nil if none answers).
// It logs an endpoint's changes, as etcd's gateway: "deactivated" when
// one starts being passed over, "activated" when one passed over answers
// again; not each connection's dials, which an outage repeats for every
// client reconnecting.
func (p *Proxy) dial() net.Conn {
	for _, i := range p.order() {
		addr := p.Endpoints[i]
		ctx, cancel := context.WithTimeout(p.ctx, p.DialTimeout)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err != nil && p.ctx.Err() != nil {
			return nil // Close, not the endpoint
		}
		p.mu.Lock()
		wasPassed := !p.mu.passUntil[i].IsZero()
		if err == nil {
			p.mu.passUntil[i] = time.Time{}
		} else {
			p.mu.passUntil[i] = p.Now().Add(p.RetryDelay)
		}
		p.mu.Unlock()
		switch {
		case err == nil && wasPassed:
			p.Logger.Info("activated", zap.String("address", addr))
		case err != nil && !wasPassed:
			p.Logger.Warn("deactivated endpoint", zap.String("address", addr), zap.Duration("interval", p.RetryDelay), zap.Error(err))
		}
		if err == nil {
			return c
		}
	}
	return nil
}

// order is the order a connection tries the endpoints in: round robin
// from the next one, those being passed over after the others.
func (p *Proxy) order() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.Endpoints)
	now := p.Now()
	var ready, passed []int
	for k := range n {
		i := (p.mu.next + k) % n
		if now.Before(p.mu.passUntil[i]) {
			passed = append(passed, i)
		} else {
			ready = append(ready, i)
		}
	}
	p.mu.next = (p.mu.next + 1) % max(n, 1)
	return append(ready, passed...)
}

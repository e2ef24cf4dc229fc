package transport

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// Direct writes: Send's fast path.
//
// The raft loop calls Send right before it syncs its log (a leader's
// appends and heartbeats) and right after (a follower's acknowledgements).
// Handed to the peer's goroutine, an append waited for a processor: 114 us
// (median) of a put with one client's 1.2 ms in scripts/trace-put1c.sh's
// trace, the raft loop holding one of two cores in its fdatasync. So Send
// writes a peer's messages to the socket itself when it can do so without
// blocking and without passing a message queued before them:
//
//   - the peer's raw connection is open and plain (TCP or Unix; a TLS
//     connection's writes go through its record layer and lock, and are
//     left to the goroutine);
//   - no message is queued for the goroutine (queued is 0) and no bytes of
//     an earlier direct write are left over (pending);
//   - no write is in progress (mu is free: TryLock, never a wait);
//   - the frame is small (directMaxBytes): a leader idle enough that its
//     appends are small is waiting on latency, not on its cores.
//
// The write is one non-blocking write(2) on the socket: what the socket
// does not take is left in pending, which the goroutine writes before
// anything else (kick wakes it). Every write of the connection, direct or
// the goroutine's, holds mu, so frames never interleave; a message the
// goroutine took from the queue counts in queued until it is written, so
// a direct write never passes it.
type direct struct {
	mu sync.Mutex
	// Guarded by mu. rc is the open raw connection's socket if it is
	// plain, else nil; conn is that connection, closed when a direct
	// write finds it broken.
	rc      syscall.RawConn
	conn    net.Conn
	pending []byte
	buf     []byte

	// queued counts the messages in the peer's queue (msgc) that are not
	// written or dropped yet.
	queued atomic.Int64
	// kick (capacity 1) tells the peer's goroutine that pending is set.
	kick chan struct{}
}

// directMaxBytes bounds a direct write's frame. A larger one is the
// goroutine's to write: an append of many entries (a loaded leader, whose
// raft loop is better spent on its own log while the goroutine writes) or
// of large values (which may fill the socket's buffer).
const directMaxBytes = 16 << 10

// tryWrite writes batch (messages to p, in order) to p's socket if it can
// without blocking or passing a queued message (see direct), and reports
// whether it took them: written, left pending for the goroutine, or, if
// the connection broke, reported lost. False: nothing was written, and the
// caller queues them. Called by Send, under Transport.mu.
func (p *peer) tryWrite(batch []raftpb.Message) bool {
	d := &p.direct
	if !d.mu.TryLock() {
		return false
	}
	defer d.mu.Unlock()
	if d.rc == nil || d.queued.Load() != 0 || len(d.pending) != 0 {
		return false
	}
	size := 0
	for i := range batch {
		size += batch[i].Size()
	}
	if size > directMaxBytes {
		return false
	}
	d.buf = encodeRawFrame(d.buf[:0], p.t.cfg.ClusterID, batch, size)
	var n int
	var werr error
	if err := d.rc.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), d.buf)
		return true // one attempt: never wait for the socket
	}); err != nil {
		return false // closed: the goroutine is reconnecting
	}
	if werr == unix.EAGAIN || werr == unix.EINTR {
		n, werr = 0, nil
	}
	if werr != nil {
		// The connection broke: closed here, the goroutine notices and
		// reconnects; these messages are lost, as a failed write's are.
		d.conn.Close()
		for _, m := range batch {
			p.t.reportFailure(m)
		}
		return true
	}
	if n < len(d.buf) {
		d.pending = append(d.pending[:0], d.buf[n:]...)
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	p.m.sentBytes.Add(float64(len(d.buf)))
	return true
}

// openDirect lets Send write directly to conn, a raw connection whose
// hello was answered, if it is a plain socket; the returned func ends
// that (before conn closes), dropping any bytes left pending.
func (p *peer) openDirect(conn net.Conn) (closeDirect func()) {
	d := &p.direct
	sc, ok := conn.(syscall.Conn) // *net.TCPConn, *net.UnixConn; not a *tls.Conn
	if !ok {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	d.mu.Lock()
	d.rc, d.conn, d.pending = rc, conn, d.pending[:0]
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.rc, d.conn, d.pending = nil, nil, d.pending[:0]
		d.mu.Unlock()
	}
}

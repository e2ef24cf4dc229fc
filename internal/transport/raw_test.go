package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
)

// A member from before the raw message connections (its peer server is
// gRPC alone) is sent to on a gRPC stream, in order and with nothing
// reported unreachable, and its refusal of a removed sender on that stream
// tells the sender; the gRPC streams such a member sends are received as
// before.
func TestOldPeerGetsGRPCStreams(t *testing.T) {
	a := startNode(t, 1, testCluster, "127.0.0.1:0", nil)
	old := startOldNode(t, 2, testCluster, "127.0.0.1:0")
	a.tr.SetPeer(2, []string{old.url()})
	var batch []raftpb.Message
	for i := uint64(1); i <= 100; i++ {
		batch = append(batch, app(1, 2, i))
	}
	a.tr.Send(batch)
	waitFor(t, "100 messages at the old member", func() bool { return len(old.raft.received(1)) >= 100 })
	checkInOrder(t, old.raft.received(1), 1, 100)
	if c := a.raft.unreachableCount(2); c != 0 {
		t.Fatalf("the old member was reported unreachable %d times", c)
	}

	// What the old member sends: a gRPC Messages stream.
	stream := openMessagesStream(t, old, a)
	frame := encodeBatch(nil, testCluster, []raftpb.Message{app(2, 1, 1), app(2, 1, 2)})
	if err := stream.SendMsg(&frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old member's messages", func() bool { return len(a.raft.received(2)) == 2 })
	checkInOrder(t, a.raft.received(2), 1, 2)

	// Removed, as the old member sees it: told on the gRPC stream.
	old.removed.Store(uint64(1), true)
	index := uint64(100)
	waitFor(t, "member 1 told by the old member it was removed", func() bool {
		index++
		a.tr.Send([]raftpb.Message{app(1, 2, index)})
		return a.toldRemoved.Load() > 0
	})
}

// A member removed from the cluster is told so by a peer it sends to, when
// it connects and on a connection opened before its removal, and nothing
// it sends once removed reaches the peer's raft.
func TestRemovedMemberTold(t *testing.T) {
	a := startNode(t, 1, testCluster, "127.0.0.1:0", nil)
	b := startNode(t, 2, testCluster, "127.0.0.1:0", nil)
	b.removed.Store(uint64(1), true)
	a.tr.SetPeer(2, []string{b.url()})
	index := uint64(0)
	waitFor(t, "member 1 told it was removed", func() bool {
		index++
		a.tr.Send([]raftpb.Message{app(1, 2, index)})
		return a.toldRemoved.Load() > 0
	})
	if got := b.raft.received(1); len(got) != 0 {
		t.Fatalf("a removed member's %d messages reached raft", len(got))
	}

	c := startNode(t, 3, testCluster, "127.0.0.1:0", nil)
	a.tr.SetPeer(3, []string{c.url()})
	a.tr.Send([]raftpb.Message{app(1, 3, 1)})
	waitFor(t, "the first message", func() bool { return len(c.raft.received(1)) == 1 })
	c.removed.Store(uint64(1), true)
	told := a.toldRemoved.Load()
	index = 1
	// Frames in bursts: the refusal comes with frames still unread, which
	// must not reset the connection before the sender reads why.
	waitFor(t, "member 1 told on its open connection", func() bool {
		for range 50 {
			index++
			a.tr.Send([]raftpb.Message{app(1, 3, index)})
		}
		return a.toldRemoved.Load() > told
	})
	if got := c.raft.received(1); len(got) != 1 {
		t.Fatalf("%d messages reached raft, want only the one sent before the removal", len(got))
	}
}

// dialRawTest opens a raw message connection to n by hand, sends hello,
// and returns the connection and n's answer.
func dialRawTest(t *testing.T, n *node, cluster, from, to uint64) (net.Conn, error) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(appendHello(nil, cluster, from, to)); err != nil {
		t.Fatal(err)
	}
	return conn, readAnswer(conn)
}

// A raw connection that says it is from another cluster or for another
// member is refused at its hello; one whose frame is of another cluster,
// too large or garbled is refused at that frame and closed; a message
// whose sender is not the connection's is dropped, the rest delivered.
// Nothing refused reaches raft.
func TestBadRawConnectionsRefused(t *testing.T) {
	b := startNode(t, 2, testCluster, "127.0.0.1:0", nil)
	refused := func(err error, code rawCode, text string) bool {
		var r *refusal
		return errors.As(err, &r) && r.code == code && strings.Contains(r.text, text)
	}
	if _, err := dialRawTest(t, b, testCluster+1, 1, 2); !refused(err, rawOtherCluster, ErrClusterMismatch.Error()) ||
		!errors.Is(err, ErrClusterMismatch) {
		t.Errorf("hello from another cluster: %v", err)
	}
	if _, err := dialRawTest(t, b, testCluster, 1, 3); !refused(err, rawOtherMember, "meant for member 3") {
		t.Errorf("hello meant for another member: %v", err)
	}

	badFrames := []struct {
		name  string
		frame []byte
		text  string
	}{
		{"of another cluster", encodeRawFrame(nil, testCluster+1, []raftpb.Message{app(1, 2, 1)}, 0), ErrClusterMismatch.Error()},
		{"too large", []byte{0xff, 0xff, 0xff, 0xff}, "limit"},
		{"garbled", append([]byte{0, 0, 0, 12}, "not a frame!"...), "transport:"},
	}
	for _, c := range badFrames {
		conn, err := dialRawTest(t, b, testCluster, 1, 2)
		if err != nil {
			t.Fatalf("hello: %v", err)
		}
		if _, err := conn.Write(c.frame); err != nil {
			t.Fatal(err)
		}
		if err := readStatus(conn); !refused(err, rawBadFrame, c.text) {
			t.Errorf("a frame %s: %v, want a refusal saying %q", c.name, err, c.text)
		}
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after a frame %s: read %v, want the connection closed", c.name, err)
		}
	}
	if got := b.raft.received(1); len(got) != 0 {
		t.Fatalf("%d refused messages reached raft", len(got))
	}

	conn, err := dialRawTest(t, b, testCluster, 1, 2)
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	frame := encodeRawFrame(nil, testCluster, []raftpb.Message{app(5, 2, 1), app(1, 2, 1)}, 0)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message from the connection's sender", func() bool { return len(b.raft.received(1)) == 1 })
	if got := b.raft.received(5); len(got) != 0 {
		t.Fatalf("a message from another sender than the connection's reached raft")
	}
}

// While a receiver reads nothing (its raft loop held), a sender's Send
// never blocks: its direct writes fill the socket, what the socket does
// not take is left to the peer's goroutine, and what does not fit the
// queue is dropped and reported. Once the receiver reads again, every
// message not reported arrives, in the order sent.
func TestSendNeverBlocksOnAFullSocket(t *testing.T) {
	a := startNode(t, 1, testCluster, "127.0.0.1:0", nil)
	b := newNode(2, testCluster, nil, Config{})
	b.raft.gate = make(chan struct{})
	serveNodeWith(t, b, listen(t, "127.0.0.1:0"), "")
	a.tr.SetPeer(2, []string{b.url()})
	a.tr.Send([]raftpb.Message{app(1, 2, 1)})
	waitFor(t, "the connection", func() bool { return !a.tr.ActiveSince(2).IsZero() })

	const count = 6000 // 4 KiB each: more than the sockets and the queue hold
	data := bytes.Repeat([]byte("x"), 4<<10)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for index := uint64(2); index <= count; {
			var batch []raftpb.Message
			for n := 1 + int(index%3); n > 0 && index <= count; n-- {
				m := app(1, 2, index)
				m.Entries[0].Data = data
				batch = append(batch, m)
				index++
			}
			a.tr.Send(batch)
		}
	}()
	select {
	case <-sent:
	case <-time.After(waitTimeout):
		t.Fatal("Send blocked on a peer that reads nothing")
	}
	close(b.raft.gate)
	waitFor(t, "every message sent and not reported lost", func() bool {
		return len(b.raft.received(1))+a.raft.unreachableCount(2) == count
	})
	got := b.raft.received(1)
	if len(got) == count || len(got) < 100 {
		t.Fatalf("%d of %d messages arrived: the test wants the queue overflowed and the sockets full", len(got), count)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Index <= got[i-1].Index {
			t.Fatalf("message %d arrived after %d", got[i].Index, got[i-1].Index)
		}
	}
}

// Command h2floor is a measuring stick, not a server: the least a member
// could spend answering a small unary gRPC request on this machine. It
// speaks just enough HTTP/2 (cleartext, prior knowledge, as the etcd
// clients do for http:// endpoints) and gRPC to answer
// /etcdserverpb.KV/Range from a map of keys it was started with, and
// answers every other method Unimplemented, so etcd's benchmark tool and
// etcdctl can read from it (scripts/h2floor.sh compares it with a
// one-member Cairn and etcd under the same benchmark).
//
// The -mode says who answers a request and who writes the answer, the
// choice a gRPC server's design makes:
//
//	inline   the connection's reader goroutine decodes, answers and
//	         buffers the answer, and writes everything buffered once its
//	         read buffer is empty: no goroutine is woken per request
//	writer   the reader answers, a writer goroutine per connection writes
//	         (woken once per read buffer emptied, as gRPC's loopy writer)
//	workers  a worker from a pool answers each request and a writer
//	         goroutine writes, the hand-offs of grpc-go's server with
//	         stream workers (reader -> worker -> writer)
//
// What it leaves out, deliberately: flow control of what it sends (its
// answers are small; it never waits for the client's window), TLS,
// metadata, deadlines, streams beyond unary calls, and errors beyond
// closing the connection. It answers from memory: the store's own cost
// (Cairn's Range handler, about a tenth of a member's CPU for such reads)
// is not in its numbers.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:27379", "address to listen on")
	mode := flag.String("mode", "inline", "inline, writer or workers (see the package comment)")
	key := flag.String("key", "abc", "the key it holds")
	valueSize := flag.Int("value-size", 256, "the size of the key's value")
	flag.Parse()
	m, ok := parseMode(*mode)
	if !ok {
		fmt.Fprintf(os.Stderr, "h2floor: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := newServer(m, map[string][]byte{*key: bytes.Repeat([]byte("v"), *valueSize)})
	log.Fatal(s.serve(l))
}

type mode int

const (
	inline mode = iota
	writer
	workers
)

func parseMode(s string) (mode, bool) {
	switch s {
	case "inline":
		return inline, true
	case "writer":
		return writer, true
	case "workers":
		return workers, true
	}
	return 0, false
}

// server answers Range from kvs, which is never modified.
type server struct {
	mode mode
	kvs  map[string][]byte
	// work feeds the worker pool (mode workers); the workers live as long
	// as the process.
	work chan func()
}

func newServer(m mode, kvs map[string][]byte) *server {
	s := &server{mode: m, kvs: kvs}
	if m == workers {
		s.work = make(chan func(), 1024)
		for range 256 {
			go func() {
				for f := range s.work {
					f()
				}
			}()
		}
	}
	return s
}

// serve accepts connections until l fails; each has a goroutine reading
// it (and, but for mode inline, one writing it) that end with it.
func (s *server) serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go s.serveConn(c)
	}
}

// call is one request's stream: its method and the bytes of its message.
type call struct {
	path string
	data []byte
}

// out is a connection's outgoing side: frames are encoded into buf under
// lock and written by flush (the reader, in mode inline) or by the writer
// goroutine (otherwise).
type out struct {
	c net.Conn
	// shared: goroutines other than the reader write frames (every mode
	// but inline), so lock takes mu.
	shared bool
	mu     sync.Mutex
	buf    []byte
	fr     *http2.Framer // writes into buf, through out.Write
	hbuf   bytes.Buffer
	enc    *hpack.Encoder // the connection's HPACK state, into hbuf
	wake   chan struct{}  // mode writer and workers: something to write
	done   chan struct{}  // closed when the reader ends: the writer ends too
	msg    []byte         // an answer's gRPC message, reused under lock
}

func newOut(c net.Conn, shared bool) *out {
	o := &out{c: c, shared: shared, wake: make(chan struct{}, 1), done: make(chan struct{})}
	o.fr = http2.NewFramer(o, nil)
	o.enc = hpack.NewEncoder(&o.hbuf)
	return o
}

// lock and unlock guard buf and the encoders: mu when the connection's
// frames are written by more than the reader, nothing otherwise (the
// inline mode measures a reader that takes no lock).
func (o *out) lock() {
	if o.shared {
		o.mu.Lock()
	}
}

func (o *out) unlock() {
	if o.shared {
		o.mu.Unlock()
	}
}

// Write appends p to the buffer. REQUIRES: o.lock held.
func (o *out) Write(p []byte) (int, error) {
	o.buf = append(o.buf, p...)
	return len(p), nil
}

// flush writes what is buffered. Mode inline only (the reader, which
// alone touches buf).
func (o *out) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	_, err := o.c.Write(o.buf)
	o.buf = o.buf[:0]
	return err
}

func (o *out) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the writer goroutine: it swaps the buffer out under mu and
// writes it, until the connection fails or done is closed. (wake is never
// closed: a worker may still answer on a connection that has ended.)
func (o *out) writeLoop() {
	var spare []byte
	for {
		select {
		case <-o.wake:
		case <-o.done:
			return
		}
		o.lock()
		b := o.buf
		o.buf = spare[:0]
		o.unlock()
		if len(b) > 0 {
			if _, err := o.c.Write(b); err != nil {
				o.c.Close() // the reader's next read fails and it ends
				return
			}
		}
		spare = b
	}
}

func (s *server) serveConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 32<<10)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	o := newOut(c, s.mode != inline)
	if o.shared {
		go o.writeLoop()
		defer close(o.done)
	}
	fr := http2.NewFramer(nil, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.SetMaxReadFrameSize(1 << 20)
	o.lock()
	o.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	o.fr.WriteWindowUpdate(0, 16<<20)
	o.unlock()
	calls := map[uint32]*call{}
	received := 0 // DATA bytes not yet given back to the client's window
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			cl := &call{}
			for _, hf := range f.Fields {
				if hf.Name == ":path" {
					cl.path = hf.Value
				}
			}
			calls[f.StreamID] = cl
		case *http2.DataFrame:
			received += len(f.Data())
			cl := calls[f.StreamID]
			if cl == nil {
				break
			}
			cl.data = append(cl.data, f.Data()...)
			if f.StreamEnded() {
				delete(calls, f.StreamID)
				s.answer(o, f.StreamID, cl)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				o.lock()
				o.fr.WriteSettingsAck()
				o.unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				o.lock()
				o.fr.WritePing(true, f.Data)
				o.unlock()
			}
		}
		if received > 1<<20 {
			o.lock()
			o.fr.WriteWindowUpdate(0, uint32(received))
			o.unlock()
			received = 0
		}
		if br.Buffered() == 0 { // the next read may block: write now
			if o.shared {
				o.kick()
			} else if o.flush() != nil {
				return
			}
		}
	}
}

// answer answers cl on stream id: on the reader (modes inline and writer;
// written when the reader's buffer empties) or on a worker.
func (s *server) answer(o *out, id uint32, cl *call) {
	if s.mode != workers {
		o.lock()
		s.respond(o, id, cl)
		o.unlock()
		return
	}
	s.work <- func() {
		o.lock()
		s.respond(o, id, cl)
		o.unlock()
		o.kick()
	}
}

// respond encodes the answer to cl: headers, the message, and trailers
// with its status. REQUIRES: o.lock held.
func (s *server) respond(o *out, id uint32, cl *call) {
	var resp proto.Message
	if cl.path == "/etcdserverpb.KV/Range" && len(cl.data) >= 5 {
		var req pb.RangeRequest
		if proto.Unmarshal(cl.data[5:], &req) == nil {
			r := &pb.RangeResponse{Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 1, Revision: 2, RaftTerm: 2}}
			if v, ok := s.kvs[string(req.Key)]; ok && len(req.RangeEnd) == 0 {
				r.Kvs = []*mvccpb.KeyValue{{Key: req.Key, Value: v, CreateRevision: 2, ModRevision: 2, Version: 1}}
				r.Count = 1
			}
			resp = r
		}
	}
	o.hbuf.Reset()
	o.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	o.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	o.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: o.hbuf.Bytes(), EndHeaders: true})
	o.hbuf.Reset()
	if resp != nil {
		o.msg = append(o.msg[:0], 0, 0, 0, 0, 0) // uncompressed, length
		o.msg, _ = proto.MarshalOptions{}.MarshalAppend(o.msg, resp)
		binary.BigEndian.PutUint32(o.msg[1:5], uint32(len(o.msg)-5))
		o.fr.WriteData(id, false, o.msg)
		o.enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	} else {
		o.enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: "12"}) // Unimplemented
		o.enc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: "h2floor answers KV.Range only"})
	}
	o.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: o.hbuf.Bytes(), EndHeaders: true, EndStream: true})
}

package v3rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/server"
)

// A client that pings more often than --grpc-keepalive-min-time is sent
// GOAWAY "too_many_pings", as etcd's gRPC server does; one that keeps to
// it is not. Go's gRPC client will not ping more than every 10s, so the
// client here writes HTTP/2 frames itself: a Watch stream held open (so
// the pings count against MinTime, not against pinging with no stream),
// then a ping every 20ms.
func TestKeepAliveMinTime(t *testing.T) { eachServer(t, testKeepAliveMinTime) }

func testKeepAliveMinTime(t *testing.T, kind string) {
	for _, tc := range []struct {
		name       string
		minTime    time.Duration
		wantGoAway bool
	}{
		{"default 5s", 0, true},
		{"1ms", time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMemberOn(t, kind, func(cfg *server.Config) { cfg.GRPCKeepAliveMinTime = tc.minTime })
			c, frames := dialHTTP2(t, m)
			writeFrame(t, c, frameHeaders, flagEndHeaders, 1, requestHeaders("/etcdserverpb.Watch/Watch"))

			const pings = 10
			acks := 0
			for i := range pings {
				writeFrame(t, c, framePing, 0, 0, binary.BigEndian.AppendUint64(nil, uint64(i)))
				// Each ping's ack before the next ping is sent.
				for acked := false; !acked; {
					f, ok := <-frames
					if !ok {
						t.Fatalf("connection ended after %d pings without a GOAWAY", i)
					}
					switch {
					case f.typ == frameGoAway:
						if !tc.wantGoAway {
							t.Fatalf("GOAWAY %q after %d pings 20ms apart with MinTime %v", f.payload[8:], i, tc.minTime)
						}
						if debug := f.payload[8:]; !bytes.Equal(debug, []byte("too_many_pings")) {
							t.Fatalf("GOAWAY %q, want too_many_pings", debug)
						}
						return
					case f.typ == framePing && f.flags&flagAck != 0:
						acked = true
						acks++
					case f.typ == frameSettings && f.flags&flagAck == 0:
						writeFrame(t, c, frameSettings, flagAck, 0, nil)
					}
				}
				time.Sleep(20 * time.Millisecond) // the pinging rate under test
			}
			if tc.wantGoAway {
				t.Fatalf("%d pings 20ms apart acknowledged without a GOAWAY", acks)
			}
		})
	}
}

const (
	frameData     = 0x0
	frameHeaders  = 0x1
	frameSettings = 0x4
	framePing     = 0x6
	frameGoAway   = 0x7

	flagAck        = 0x1
	flagEndStream  = 0x1
	flagEndHeaders = 0x4

	settingInitialWindowSize = 0x4
)

type frame struct {
	typ, flags byte
	payload    []byte
}

// dialHTTP2 opens a client connection to m that the test speaks HTTP/2 on
// frame by frame: the preface and an empty SETTINGS are written, and the
// frames the server sends arrive on the channel. The connection closes
// when the test ends and fails every read and write after waitTimeout.
func dialHTTP2(t *testing.T, m *member) (net.Conn, <-chan frame) {
	t.Helper()
	c, err := net.Dial("tcp", m.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	frames := readFrames(c)
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	writeFrame(t, c, frameSettings, 0, 0, nil)
	return c, frames
}

// requestHeaders is the HPACK block of a gRPC call's HEADERS frame to
// path: each field a literal, not indexed, with a new name and no Huffman
// coding.
func requestHeaders(path string) []byte {
	var hdr []byte
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", path},
		{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		hdr = append(hdr, 0, byte(len(f[0])))
		hdr = append(append(hdr, f[0]...), byte(len(f[1])))
		hdr = append(hdr, f[1]...)
	}
	return hdr
}

// writeFrame writes one HTTP/2 frame: | length (3B) | type | flags |
// stream (4B) | payload |.
func writeFrame(t *testing.T, w io.Writer, typ, flags byte, stream uint32, payload []byte) {
	t.Helper()
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags}
	b = binary.BigEndian.AppendUint32(b, stream)
	if _, err := w.Write(append(b, payload...)); err != nil {
		t.Fatal(err)
	}
}

// readFrames delivers the frames read from r until it fails, then closes
// the channel. The goroutine ends when the connection is closed.
func readFrames(r io.Reader) <-chan frame {
	out := make(chan frame, 64)
	go func() {
		defer close(out)
		var h [9]byte
		for {
			if _, err := io.ReadFull(r, h[:]); err != nil {
				return
			}
			f := frame{typ: h[3], flags: h[4], payload: make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))}
			if _, err := io.ReadFull(r, f.payload); err != nil {
				return
			}
			out <- f
		}
	}()
	return out
}

// --max-concurrent-streams bounds the streams one client connection has
// open: with a limit of one, an open watch holds the only stream and a
// request waits for it; with the default, it goes through.
func TestMaxConcurrentStreams(t *testing.T) { eachServer(t, testMaxConcurrentStreams) }

func testMaxConcurrentStreams(t *testing.T, kind string) {
	for _, limit := range []uint32{1, 0} {
		m := startMemberOn(t, kind, func(cfg *server.Config) { cfg.MaxConcurrentStreams = limit })
		ctx, cancel := context.WithCancel(context.Background())
		m.openWatch(t, ctx, "k", 0)
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, err := pb.NewKVClient(m.conn).Range(rctx, &pb.RangeRequest{Key: []byte("k"), Serializable: true})
		rcancel()
		if limit == 1 && status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("limit 1, a watch open: a range got %v, want to wait past its deadline", err)
		}
		if limit == 0 && err != nil {
			t.Fatalf("no limit, a watch open: a range got %v", err)
		}
		cancel()
		m.stop(t)
	}
}

// The server's flow-control windows are static, so gRPC does not estimate
// the bandwidth-delay product: that estimator answers a request arriving
// with no PING of its own outstanding with a WINDOW_UPDATE and a PING,
// which with one request at a time on a connection is every request, and
// each costs the client a read and a PING ACK. Three puts in turn on one
// connection written frame by frame: each succeeds, no PING comes from
// the server, and its SETTINGS give streams a window that holds a request
// of --max-request-bytes.
func TestUnaryRequestsDrawNoPings(t *testing.T) { eachServer(t, testUnaryRequestsDrawNoPings) }

func testUnaryRequestsDrawNoPings(t *testing.T, kind string) {
	m := startMemberOn(t, kind, nil)
	c, frames := dialHTTP2(t, m)
	hdr := requestHeaders("/etcdserverpb.KV/Put")
	dec := hpack.NewDecoder(4096, nil)
	var window uint32
	for i, stream := range []uint32{1, 3, 5} {
		req, err := proto.Marshal(&pb.PutRequest{Key: []byte("k"), Value: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(req)))
		writeFrame(t, c, frameHeaders, flagEndHeaders, stream, hdr)
		writeFrame(t, c, frameData, flagEndStream, stream, append(msg, req...))
		for done := false; !done; {
			f, ok := <-frames
			if !ok {
				t.Fatalf("put %d: the connection ended before its trailers", i)
			}
			switch f.typ {
			case framePing:
				if f.flags&flagAck == 0 {
					t.Fatalf("put %d: the server sent a PING (%x): it is estimating the bandwidth-delay product", i, f.payload)
				}
			case frameSettings:
				if f.flags&flagAck != 0 {
					break
				}
				for p := f.payload; len(p) >= 6; p = p[6:] {
					if binary.BigEndian.Uint16(p) == settingInitialWindowSize {
						window = binary.BigEndian.Uint32(p[2:])
					}
				}
				writeFrame(t, c, frameSettings, flagAck, 0, nil)
			case frameHeaders:
				fields, err := dec.DecodeFull(f.payload)
				if err != nil {
					t.Fatal(err)
				}
				if f.flags&flagEndStream == 0 {
					break
				}
				for _, hf := range fields {
					if hf.Name == "grpc-status" && hf.Value != "0" {
						t.Fatalf("put %d: trailers %v", i, fields)
					}
				}
				done = true
			}
		}
	}
	if want := uint32(server.DefaultMaxRequestBytes + grpcOverheadBytes); window < want {
		t.Fatalf("the server's SETTINGS give streams a window of %d bytes, want at least %d", window, want)
	}
	resp, err := pb.NewKVClient(m.conn).Range(context.Background(), &pb.RangeRequest{Key: []byte("k")})
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Version != 3 {
		t.Fatalf("after three puts: %v, %v; want the key at version 3", resp, err)
	}
}

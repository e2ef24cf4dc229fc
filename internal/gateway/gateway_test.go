package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// fakeKV answers every Range with one key whose value is the caller's
// "authorization" metadata.
type fakeKV struct{ pb.UnimplementedKVServer }

func (fakeKV) Range(ctx context.Context, _ *pb.RangeRequest) (*pb.RangeResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 9},
		Kvs:   []*mvccpb.KeyValue{{Key: []byte("foo"), Value: []byte(strings.Join(md.Get("authorization"), ",")), CreateRevision: 2}},
		Count: 1}, nil
}

// fakeLease answers each keep-alive with the lease's ID and a TTL of 10.
type fakeLease struct{ pb.UnimplementedLeaseServer }

func (fakeLease) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		if err := stream.Send(&pb.LeaseKeepAliveResponse{ID: req.ID, TTL: 10}); err != nil {
			return err
		}
	}
}

// serve runs a gateway in front of a gRPC server with the fakes, and an
// HTTP server in front of the gateway; the test's end stops all three
// and checks that no goroutine is left.
func serve(t *testing.T) *httptest.Server {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	gw, err := New(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterKVServer(gs, fakeKV{})
	pb.RegisterLeaseServer(gs, fakeLease{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		gs.Serve(gw.Listener())
	}()
	hs := httptest.NewServer(gw.Handler())
	t.Cleanup(func() {
		hs.Close()
		gs.Stop()
		<-served
		gw.Close()
		goleak.VerifyNone(t, opt)
	})
	return hs
}

// The JSON is etcd's: the .proto's field names, 64-bit integers as
// strings, bytes in base64, zero values left out; the Authorization
// header reaches the server as "authorization" metadata.
func TestJSONAsEtcd(t *testing.T) {
	hs := serve(t)
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v3/kv/range", strings.NewReader(`{"key":"Zm9v","unknown":1}`))
	req.Header.Set("Authorization", "tok.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := strings.Join(strings.Fields(string(body)), "")
	want := `{"header":{"revision":"9"},"kvs":[{"key":"Zm9v","create_revision":"2","value":"dG9rLjE="}],"count":"1"}`
	if resp.StatusCode != 200 || got != want {
		t.Errorf("range: %d %s, want %s", resp.StatusCode, got, want)
	}
}

// A keep-alive stream over a WebSocket: a message each way per request;
// when the client goes, the proxy's goroutines and the call end (the
// cleanup's leak check).
func TestWebSocketStream(t *testing.T) {
	hs := serve(t)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/v3/lease/keepalive", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"5", "6"} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"ID":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
		_, msg, err := conn.ReadMessage()
		got := strings.Join(strings.Fields(string(msg)), "")
		if want := `{"result":{"ID":"` + id + `","TTL":"10"}}`; err != nil || got != want {
			t.Fatalf("keep-alive %s: %q %v, want %s", id, got, err, want)
		}
	}
	conn.Close()
}

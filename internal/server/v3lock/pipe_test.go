package v3lock

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// spawner is a Server's spawn without the rest of it.
type spawner struct {
	wg     sync.WaitGroup
	closed bool
}

func (s *spawner) spawn(fn func()) bool {
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

type keepAliveEnd = serverEnd[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]

// An echo handler: each request answered in order; the client's
// CloseSend is the handler's io.EOF, and the handler's return the
// client's io.EOF.
func TestPipeEcho(t *testing.T) {
	var sp spawner
	defer sp.wg.Wait()
	c, err := openPipe(context.Background(), sp.spawn, func(s *keepAliveEnd) error {
		for {
			req, err := s.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := s.Send(&pb.LeaseKeepAliveResponse{ID: req.ID, TTL: 10 * req.ID}); err != nil {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 3; id++ {
		if err := c.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Recv()
		if err != nil || resp.ID != id || resp.TTL != 10*id {
			t.Fatalf("answer %d: %v, %v", id, resp, err)
		}
	}
	c.CloseSend()
	if resp, err := c.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, %v; want io.EOF", resp, err)
	}
	if err := c.Send(&pb.LeaseKeepAliveRequest{ID: 4}); err == nil {
		t.Fatal("Send after CloseSend: no error")
	}
}

// A handler's error reaches the client as gRPC would send it (a status),
// and Send after the handler returned is io.EOF, as gRPC's.
func TestPipeHandlerError(t *testing.T) {
	var sp spawner
	defer sp.wg.Wait()
	c, err := openPipe(context.Background(), sp.spawn, func(*keepAliveEnd) error {
		return rpctypes.ErrGRPCNoLeader
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(); !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		t.Fatalf("Recv: %v, want %v", err, rpctypes.ErrGRPCNoLeader)
	}
	if err := c.Send(&pb.LeaseKeepAliveRequest{}); err != io.EOF {
		t.Fatalf("Send after the handler returned: %v, want io.EOF", err)
	}
	c2, err := openPipe(context.Background(), sp.spawn, func(*keepAliveEnd) error { return errors.New("plain") })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Recv(); status.Code(err) != codes.Unknown || status.Convert(err).Message() != "plain" {
		t.Fatalf("a plain error: %v, want Unknown \"plain\"", err)
	}
}

// Cancelling the client's context ends both ends: the handler's Recv and
// Send return, and so does the client's Recv, with Canceled.
func TestPipeCancel(t *testing.T) {
	var sp spawner
	ctx, cancel := context.WithCancel(context.Background())
	handlerErr := make(chan error, 1)
	c, err := openPipe(ctx, sp.spawn, func(s *keepAliveEnd) error {
		_, err := s.Recv()
		handlerErr <- err
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-handlerErr; status.Code(err) != codes.Canceled {
		t.Fatalf("the handler's Recv: %v, want Canceled", err)
	}
	if _, err := c.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("the client's Recv: %v, want Canceled", err)
	}
	sp.wg.Wait()
}

// Once the owner refuses goroutines, no stream opens.
func TestPipeRefused(t *testing.T) {
	sp := spawner{closed: true}
	_, err := openPipe(context.Background(), sp.spawn, func(*keepAliveEnd) error {
		t.Error("the handler ran")
		return nil
	})
	if !errors.Is(err, rpctypes.ErrGRPCStopped) {
		t.Fatalf("open: %v, want %v", err, rpctypes.ErrGRPCStopped)
	}
}

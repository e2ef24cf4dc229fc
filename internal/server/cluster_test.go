package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// These tests run members in the process, each serving the peer service on
// a loopback port, as cmd/cairn does, and drive them through the Server's
// methods.

const waitTimeout = 30 * time.Second

// testMember is a running member.
type testMember struct {
	s      *Server
	g      *grpc.Server
	served chan struct{}
}

// testCluster is n members; members[i] is nil while member i is stopped.
type testCluster struct {
	t       *testing.T
	cfgs    []Config
	members []*testMember
}

// newTestCluster starts n members; tune, if set, changes each config
// first.
func newTestCluster(t *testing.T, n int, tune func(i int, cfg *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: make([]Config, n), members: make([]*testMember, n)}
	lns := make([]net.Listener, n)
	var initial []string
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, ln.Addr()))
	}
	for i := range n {
		c.cfgs[i] = Config{
			Name: fmt.Sprintf("m%d", i), DataDir: t.TempDir(),
			AdvertisePeerURLs:   []string{"http://" + lns[i].Addr().String()},
			AdvertiseClientURLs: []string{fmt.Sprintf("http://127.0.0.1:%d", 30000+i)},
			InitialCluster:      strings.Join(initial, ","),
			HeartbeatInterval:   20 * time.Millisecond,
			ElectionTimeout:     400 * time.Millisecond,
		}
		if tune != nil {
			tune(i, &c.cfgs[i])
		}
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.stop(i)
		}
	})
	for i := range n {
		c.startOn(i, lns[i])
	}
	return c
}

// start restarts member i with its config, on its peer address.
func (c *testCluster) start(i int) {
	c.t.Helper()
	addr := strings.TrimPrefix(c.cfgs[i].AdvertisePeerURLs[0], "http://")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.startOn(i, ln)
}

func (c *testCluster) startOn(i int, ln net.Listener) {
	c.t.Helper()
	s, err := New(c.cfgs[i])
	if err != nil {
		ln.Close()
		c.t.Fatalf("member %d: %v", i, err)
	}
	if err := s.Start(); err != nil {
		ln.Close()
		s.Stop()
		c.t.Fatalf("member %d: %v", i, err)
	}
	m := &testMember{s: s, g: grpc.NewServer(PeerServerOptions()...), served: make(chan struct{})}
	s.RegisterPeerService(m.g)
	go func() {
		defer close(m.served)
		m.s.ServePeers(ln, m.g)
	}()
	c.members[i] = m
}

// stop stops member i, if it runs.
func (c *testCluster) stop(i int) {
	m := c.members[i]
	if m == nil {
		return
	}
	c.members[i] = nil
	// As cmd/cairn: the member first (a leader hands over leadership,
	// which needs its peers' answers), then its peer server.
	m.s.Stop()
	m.g.Stop()
	<-m.served
}

// waitLeader waits until member i knows a leader, and returns it.
func (c *testCluster) waitLeader(i int) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if lead := c.members[i].s.Leader(); lead != 0 {
			return lead
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("member %d knows no leader after %v", i, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond) // a polling interval
	}
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, s *Server, key, value string) {
	t.Helper()
	if _, err := s.Put(ctxTimeout(t), &pb.PutRequest{Key: []byte(key), Value: []byte(value)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// mustGet reads key linearizably and returns its value ("" if absent).
func mustGet(t *testing.T, s *Server, key string) string {
	t.Helper()
	resp, err := s.Range(ctxTimeout(t), &pb.RangeRequest{Key: []byte(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

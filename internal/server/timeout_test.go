package server

import (
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestTimeoutIsLogged: a put and a read that cannot complete (the leader lost both
// followers) is answered "request timed out", and the member logs why:
// what timed out, after how long, that it was proposed and nothing was
// committed past what was applied, and what was in flight (the put, and
// perhaps the member's own proposals, such as the cluster version).
func TestTimeoutIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	c := newTestCluster(t, 3, func(i int, cfg *Config) {
		cfg.RequestTimeout = 300 * time.Millisecond
		// The leader steps down (CheckQuorum) one to two election
		// timeouts after its last follower answered; the put and the
		// read below are made, and time out, well before that.
		cfg.HeartbeatInterval, cfg.ElectionTimeout = 100*time.Millisecond, 2*time.Second
		cfg.Logger = zap.New(core)
	})
	lead := c.waitLeader(0)
	lt := -1
	for i, m := range c.members {
		if m.s.ID() == lead {
			lt = i
		}
	}
	leader := c.members[lt].s
	mustPut(t, leader, "k", "v")
	for i := range c.members {
		if i != lt {
			c.stop(i)
		}
	}
	_, err := leader.Put(ctxTimeout(t), &pb.PutRequest{Key: []byte("k"), Value: []byte("lost")})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("put without a quorum: %v, want %v", err, ErrTimeout)
	}
	lines := logs.FilterMessage("request timed out").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"request timed out\" lines, want 1: %v", len(lines), logs.All())
	}
	f := lines[0].ContextMap()
	if f["request-type"] != "Put" || f["stage"] != "proposed, not applied in time" ||
		f["committed-index"] != f["applied-index"] || f["apply-backlog"] != uint64(0) ||
		f["proposals-in-flight"].(int64) < 1 || f["request-bytes"].(int64) < 10 ||
		f["proposal-bytes-in-flight"].(int64) < f["request-bytes"].(int64) || f["waited"].(time.Duration) < 300*time.Millisecond ||
		f["timed-out-since-last-warning"] != int64(1) {
		t.Fatalf("the warning's fields: %v", f)
	}

	// A linearizable read times out too, and says so in etcd's words.
	if _, err := leader.Range(ctxTimeout(t), &pb.RangeRequest{Key: []byte("k")}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("read without a quorum: %v, want %v", err, ErrTimeout)
	}
	if n := logs.FilterMessage("timed out waiting for read index response (local node might have slow network)").Len(); n != 1 {
		t.Fatalf("%d read index timeout lines, want 1: %v", n, logs.All())
	}
}

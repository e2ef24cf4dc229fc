package server

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A three-member cluster started together elects its leader within one
// election timeout when its members fast-forward their election clocks
// (--initial-election-tick-advance, the default), and not before one
// timeout has passed when they do not: no member may campaign before its
// randomized timeout, at least one election timeout of ticks. Each member
// says which it did, in etcd's words.
func TestInitialElectionTickAdvance(t *testing.T) {
	// Long enough that an election in it is the advance at work even on
	// a busy machine; the run without the advance waits it out.
	const electionTimeout = 5 * time.Second
	for _, disable := range []bool{false, true} {
		core, logs := observer.New(zapcore.InfoLevel)
		start := time.Now()
		c := newTestCluster(t, 3, func(_ int, cfg *Config) {
			cfg.HeartbeatInterval, cfg.ElectionTimeout = 100*time.Millisecond, electionTimeout
			cfg.DisableInitialElectionTickAdvance = disable
			cfg.Logger = zap.New(core)
		})
		c.waitLeader(0)
		took := time.Since(start)
		t.Logf("disable=%v: a leader after %v", disable, took)
		if !disable && took >= electionTimeout {
			t.Errorf("with the advance, a leader took %v (election timeout %v)", took, electionTimeout)
		}
		if disable && took < electionTimeout {
			t.Errorf("without the advance, a leader after %v, before an election timeout (%v)", took, electionTimeout)
		}
		for i := range 3 {
			c.stop(i)
		}
		msg := "initialized peer connections; fast-forwarding election ticks"
		if disable {
			msg = "skipping initial election tick advance"
		}
		if n := logs.FilterMessage(msg).Len(); n != 3 {
			t.Errorf("disable=%v: %d members logged %q, want 3", disable, n, msg)
		}
	}
}

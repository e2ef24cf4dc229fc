package membersim

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
)

// Environment variables:
//
//	CAIRN_MEMBERSIM_SEED=N    replay seed N alone, tracing every event to stderr (use -v)
//	CAIRN_MEMBERSIM_SEEDS=N   run N seeds from CAIRN_MEMBERSIM_FIRST (default 0)
//	CAIRN_MEMBERSIM_STEPS=N   steps per seed
//	CAIRN_MEMBERSIM_MAXFAIL=N stop after N failing seeds (default 5)
//	CAIRN_MEMBERSIM_MEMBERS=N found every cluster with N members (default 3, or 5 for seeds 3 mod 4)
//	CAIRN_MEMBERSIM_RECONFIG=N try a membership change at N per mille of steps (default: the seed's draw)
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

func configFor(t *testing.T, seed uint64, steps int) Config {
	members := 3
	if seed%4 == 3 {
		members = 5
	}
	members = envInt(t, "CAIRN_MEMBERSIM_MEMBERS", members)
	return Config{Seed: seed, Members: members, Steps: steps, ReconfigPerMille: envInt(t, "CAIRN_MEMBERSIM_RECONFIG", 0)}
}

func runSeed(cfg Config) (stats Stats, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("seed %d panicked: %v\n%s", cfg.Seed, r, debug.Stack())
		}
	}()
	s, err := New(cfg)
	if err != nil {
		return Stats{}, err
	}
	return s.Run()
}

// TestMemberSimulation runs seeded clusters of real members (see the
// package doc). A failure names its seed; CAIRN_MEMBERSIM_SEED=<seed>
// replays it with a trace.
func TestMemberSimulation(t *testing.T) {
	steps := envInt(t, "CAIRN_MEMBERSIM_STEPS", 3000)
	if seed := os.Getenv("CAIRN_MEMBERSIM_SEED"); seed != "" {
		n, err := strconv.ParseUint(seed, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		cfg := configFor(t, n, steps)
		cfg.Trace = os.Stderr
		stats, err := runSeed(cfg)
		t.Logf("%+v", stats)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	seeds := envInt(t, "CAIRN_MEMBERSIM_SEEDS", 150)
	if testing.Short() {
		seeds = min(seeds, 20)
	}
	first := envInt(t, "CAIRN_MEMBERSIM_FIRST", 0)
	maxFail := envInt(t, "CAIRN_MEMBERSIM_MAXFAIL", 5)
	var total Stats
	failed := 0
	for seed := first; seed < first+seeds; seed++ {
		stats, err := runSeed(configFor(t, uint64(seed), steps))
		if err != nil {
			failed++
			t.Errorf("FAILED SEED %d: %v\n  replay: CAIRN_MEMBERSIM_SEED=%d go test ./internal/membersim -run TestMemberSimulation -v", seed, err, seed)
			if failed >= maxFail {
				t.Fatalf("STOPPED after %d failing seeds, at seed %d", failed, seed)
			}
			continue
		}
		total = add(total, stats)
	}
	t.Logf("%d seeds: %s", seeds, summary(total))
}

func add(a, b Stats) Stats {
	a.Steps += b.Steps
	a.Ticks += b.Ticks
	a.Ops += b.Ops
	a.OpsAcked += b.OpsAcked
	a.OpsUnknown += b.OpsUnknown
	a.OpsFailed += b.OpsFailed
	a.Reads += b.Reads
	a.SerializableReads += b.SerializableReads
	a.Crashes += b.Crashes
	a.Restarts += b.Restarts
	a.Partitions += b.Partitions
	a.SnapshotsSent += b.SnapshotsSent
	a.SnapshotsInstalled += b.SnapshotsInstalled
	a.Compactions += b.Compactions
	a.WatchEvents += b.WatchEvents
	a.WatchResum += b.WatchResum
	a.Expiries += b.Expiries
	a.MaxRev = max(a.MaxRev, b.MaxRev)
	a.Delivered += b.Delivered
	a.Dropped += b.Dropped
	a.Duplicated += b.Duplicated
	a.ConfProposed += b.ConfProposed
	a.ConfRefused += b.ConfRefused
	a.Added += b.Added
	a.Promoted += b.Promoted
	a.Removed += b.Removed
	a.Updated += b.Updated
	a.RemovedStopped += b.RemovedStopped
	a.Joins += b.Joins
	a.Rejoins += b.Rejoins
	return a
}

func summary(s Stats) string { return fmt.Sprintf("%+v", s) }

package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// gate is one of etcd 3.7.3's server feature gates (--feature-gates), and
// what Cairn does with it.
type gate struct {
	name  string
	beta  bool // else alpha
	deflt bool
	// cairn says how Cairn treats the gate once it is given: "" (honoured:
	// Cairn does what the gate asks), or the line logged, or, with
	// notBuilt set, the start-up error.
	cairn    string
	notBuilt bool // only when the gate is on
}

// gates are etcd 3.7.3's, in its help's (alphabetical) order. AllAlpha
// and AllBeta set every alpha (beta) gate not named explicitly.
var gates = []gate{
	{name: "CompactHashCheck"},
	{name: "FastLeaseKeepAlive", beta: true, deflt: true, cairn: "no effect in Cairn: its leader always renews a lease after applying every committed entry, as etcd does with the gate off"},
	{name: "InitialCorruptCheck"},
	{name: "LeaseCheckpoint", cairn: "no effect in Cairn: lease remaining TTLs are always checkpointed (see --lease-checkpoint-interval)"},
	{name: "LeaseCheckpointPersist", cairn: "no effect in Cairn: lease checkpoints are always persisted"},
	{name: "PriorityRequest", cairn: "no effect in Cairn: requests are applied in log order, with no priority for lease revocations"},
	{name: "SetMemberLocalAddr"},
	{name: "StopGRPCServiceOnDefrag", cairn: "no effect in Cairn: its pebble backend needs no stop-the-world defragmentation"},
	{name: "TxnModeWriteWithSharedBuffer", beta: true, deflt: true, cairn: "no effect in Cairn: the gate tunes bbolt's read buffer, and Cairn's backend is pebble"},
}

// featureGates is the value of --feature-gates: etcd's syntax,
// "Name=bool,Name=bool", merged over repeated flags.
type featureGates struct {
	explicit map[string]bool
}

func (f *featureGates) Set(s string) error {
	next := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("missing bool value for %s", k)
		}
		v = strings.TrimSpace(v)
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s, err: %w", k, v, err)
		}
		if k != "AllAlpha" && k != "AllBeta" && !slices.ContainsFunc(gates, func(g gate) bool { return g.name == k }) {
			return fmt.Errorf("unrecognized feature gate: %s", k)
		}
		next[k] = b
	}
	if f.explicit == nil {
		f.explicit = map[string]bool{}
	}
	for k, v := range next {
		f.explicit[k] = v
	}
	return nil
}

// String lists the gates given, sorted, as Set takes them.
func (f *featureGates) String() string {
	if f == nil {
		return ""
	}
	var pairs []string
	for k, v := range f.explicit {
		pairs = append(pairs, k+"="+strconv.FormatBool(v))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// enabled reports whether gate g is on, and whether it was set at all
// (by name or by AllAlpha/AllBeta).
func (f *featureGates) enabled(g gate) (on, given bool) {
	if v, ok := f.explicit[g.name]; ok {
		return v, true
	}
	all := "AllAlpha"
	if g.beta {
		all = "AllBeta"
	}
	if v, ok := f.explicit[all]; ok {
		return v, true
	}
	return g.deflt, false
}

func gateNamed(name string) gate {
	for _, g := range gates {
		if g.name == name {
			return g
		}
	}
	panic("unknown feature gate " + name)
}

// gatesHelp is the list --help shows under --feature-gates.
func gatesHelp() string {
	lines := []string{"AllAlpha=true|false (ALPHA - default=false)", "AllBeta=true|false (BETA - default=false)"}
	for _, g := range gates {
		level := "ALPHA"
		if g.beta {
			level = "BETA"
		}
		lines = append(lines, fmt.Sprintf("%s=true|false (%s - default=%t)", g.name, level, g.deflt))
	}
	return strings.Join(lines, "\n")
}

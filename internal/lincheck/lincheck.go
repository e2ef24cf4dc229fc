package lincheck

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config is a run of the check.
type Config struct {
	// Clients are the workers' clients, one each; Endpoints[i] names
	// Clients[i]'s endpoint in the report and the visualisation.
	Clients   []*clientv3.Client
	Endpoints []string
	// Prefix is where the keys go: it must hold no key (the caller
	// checks) and nothing else may write under it during the run.
	Prefix string
	// Keys is how many keys the workers share. Default 8: few enough
	// that every key sees concurrent puts and reads.
	Keys int
	// Duration is how long the workers run (ctx can end them sooner).
	Duration time.Duration
	// OpTimeout bounds one request. Default 5 s.
	OpTimeout time.Duration
	// CheckTimeout bounds porcupine's search. Default 2 minutes.
	CheckTimeout time.Duration
	// Seed picks the workers' keys and operations.
	Seed uint64
}

// Input is an operation on one key: a put of a value no other put writes,
// or a linearizable read.
type Input struct {
	Key   string
	Put   bool
	Value string
}

// Output is an operation's answer.
type Output struct {
	// Value is what a read returned ("" for no key).
	Value string
	// Rev is a put's revision (its answer's header), a read's mod
	// revision (0 for no key).
	Rev int64
	// Unknown marks a put whose client heard no answer: it may take
	// effect at any time after its call, or never.
	Unknown bool
}

// state is one key's register: its value and the revision that wrote it
// (-1 while unknown: after a put whose outcome is unknown).
type state struct {
	value string
	rev   int64
}

// Model is one register per key, with revisions (see the package doc).
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(Input).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() any { return state{} },
	Step: func(st, input, output any) (bool, any) {
		s, in, out := st.(state), input.(Input), output.(Output)
		switch {
		case in.Put && out.Unknown:
			return true, state{value: in.Value, rev: -1}
		case in.Put:
			return s.rev == -1 || out.Rev > s.rev, state{value: in.Value, rev: out.Rev}
		default:
			ok := out.Value == s.value && (s.rev == -1 || out.Rev == s.rev)
			return ok, state{value: s.value, rev: out.Rev}
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		switch {
		case in.Put && out.Unknown:
			return fmt.Sprintf("put(%s, %s) -> no answer", in.Key, in.Value)
		case in.Put:
			return fmt.Sprintf("put(%s, %s) -> revision %d", in.Key, in.Value, out.Rev)
		case out.Rev == 0:
			return fmt.Sprintf("get(%s) -> no key", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s at revision %d", in.Key, out.Value, out.Rev)
	},
	DescribeState: func(st any) string {
		s := st.(state)
		switch {
		case s.rev == 0 && s.value == "":
			return "no key"
		case s.rev == -1:
			return fmt.Sprintf("%s (revision unknown)", s.value)
		}
		return fmt.Sprintf("%s at revision %d", s.value, s.rev)
	},
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return fmt.Sprintf("endpoint %v", info)
	},
}

// Result is what a run found.
type Result struct {
	// Ops counts the operations in the history: Puts (Unknown of them
	// without an answer) and Gets. FailedGets are reads that got an
	// error: they changed nothing and are left out.
	Ops, Puts, Unknown, Gets, FailedGets int
	// Elapsed is how long the workers ran.
	Elapsed time.Duration
	// Check is porcupine's verdict (Unknown: its search timed out), and
	// CheckTook how long it searched.
	Check     porcupine.CheckResult
	CheckTook time.Duration
	// IllegalKey is a key whose history porcupine found illegal.
	IllegalKey string
	// Audit is the watch's account of the acknowledged puts.
	Audit Audit

	history []porcupine.Operation
	info    porcupine.LinearizationInfo
}

// Audit is what the watch over the run's revisions showed.
type Audit struct {
	// From and To are the revisions watched: after From, up to To.
	From, To int64
	// Acknowledged is how many puts had an answer; Found how many of
	// them the watch showed, at their revision and with their value.
	Acknowledged, Found int
	// Missing describes acknowledged puts the watch did not show as
	// answered; Foreign, events under the prefix that no put of the run
	// wrote. Both empty when the audit passes (a few of each at most).
	Missing, Foreign []string
	// Err is why the audit could not be made (the revisions were
	// compacted, the watch failed), nil if it was.
	Err error
}

// Passed reports whether the audit was made and found nothing wrong.
func (a Audit) Passed() bool { return a.Err == nil && len(a.Missing) == 0 && len(a.Foreign) == 0 }

// maxListed bounds the Missing and Foreign descriptions kept.
const maxListed = 10

// Run runs the check (see the package doc). ctx ends the workers early
// (an interrupt); the history so far is still checked and audited. An
// error means the check could not start or audit at all.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Clients) == 0 {
		return nil, errors.New("lincheck: no clients")
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 8
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 2 * time.Minute
	}
	first := cfg.Clients[0]
	rctx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
	resp, err := first.Get(rctx, cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("lincheck: reading the start revision: %w", err)
	}
	from := resp.Header.Revision

	res := &Result{}
	start := time.Now()
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	var (
		mu sync.Mutex // guards res's counts and history
		wg sync.WaitGroup
	)
	for w, c := range cfg.Clients {
		var endpoint string
		if w < len(cfg.Endpoints) {
			endpoint = cfg.Endpoints[w]
		}
		wg.Add(1)
		go func() { // owned by Run: ends with runCtx
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			for n := 0; runCtx.Err() == nil; n++ {
				in := Input{Key: fmt.Sprintf("%sk%d", cfg.Prefix, rnd.IntN(cfg.Keys)), Put: rnd.IntN(2) == 0}
				if in.Put {
					in.Value = fmt.Sprintf("w%d-%d", w, n)
				}
				op, failedGet := do(c, in, start, cfg.OpTimeout)
				op.ClientId, op.Metadata = w, endpoint
				mu.Lock()
				if failedGet {
					res.FailedGets++
				} else {
					res.history = append(res.history, op)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stop()
	res.Elapsed = time.Since(start)
	for _, op := range res.history {
		if op.Input.(Input).Put {
			res.Puts++
			if op.Output.(Output).Unknown {
				res.Unknown++
			}
		} else {
			res.Gets++
		}
	}
	res.Ops = len(res.history)

	checkStart := time.Now()
	res.Check, res.info = porcupine.CheckOperationsVerbose(Model, res.history, cfg.CheckTimeout)
	res.CheckTook = time.Since(checkStart)
	if res.Check == porcupine.Illegal {
		res.IllegalKey = illegalKey(res.history, cfg.CheckTimeout)
	}
	res.Audit = audit(first, cfg, from, res.history)
	return res, nil
}

// do makes one operation, timed on the run's clock (monotonic since
// start). A read that fails is dropped (failedGet): it changed nothing.
func do(c *clientv3.Client, in Input, start time.Time, timeout time.Duration) (op porcupine.Operation, failedGet bool) {
	// Not the run's context: the end of the run must not cut a request
	// short and make its outcome unknown.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	op.Input = in
	op.Call = time.Since(start).Nanoseconds()
	var out Output
	var err error
	if in.Put {
		var resp *clientv3.PutResponse
		resp, err = c.Put(ctx, in.Key, in.Value)
		if err == nil {
			out.Rev = resp.Header.Revision
		}
	} else {
		var resp *clientv3.GetResponse
		resp, err = c.Get(ctx, in.Key)
		if err == nil && len(resp.Kvs) > 0 {
			out.Value, out.Rev = string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
		}
	}
	op.Return = time.Since(start).Nanoseconds()
	if err != nil {
		if !in.Put {
			return op, true
		}
		// It may take effect at any time from its call on.
		out.Unknown, op.Return = true, math.MaxInt64
	}
	op.Output = out
	return op, false
}

// illegalKey is the key of the first partition (key) of history that
// porcupine finds illegal on its own, "" if none does within timeout.
func illegalKey(history []porcupine.Operation, timeout time.Duration) string {
	for _, part := range Model.Partition(history) {
		if porcupine.CheckOperationsTimeout(Model, part, timeout) == porcupine.Illegal {
			return part[0].Input.(Input).Key
		}
	}
	return ""
}

// auditTimeout bounds the audit's watch.
const auditTimeout = time.Minute

// audit watches the prefix from after from to the revision now, and checks
// every acknowledged put of history against it.
func audit(c *clientv3.Client, cfg Config, from int64, history []porcupine.Operation) Audit {
	a := Audit{From: from}
	ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
	defer cancel()
	resp, err := c.Get(ctx, cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		a.Err = fmt.Errorf("reading the end revision: %w", err)
		return a
	}
	// At least the last acknowledged put's revision: a member that
	// answers reads from a stale state would otherwise cut the audit
	// short, and report puts missing that are only late.
	a.To = resp.Header.Revision
	for _, op := range history {
		if in, out := op.Input.(Input), op.Output.(Output); in.Put && !out.Unknown {
			a.To = max(a.To, out.Rev)
		}
	}

	type written struct {
		key string
		rev int64
	}
	events := map[string]written{} // value -> where the watch saw it
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := c.Watch(wctx, cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from+1))
	// A progress notification says the watch has sent every event up to
	// its revision; one at or past To ends the watch. They are sent only
	// once the watch has caught up, so ask again until then.
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
watch:
	for {
		select {
		case <-ticker.C:
			if err := c.RequestProgress(wctx); err != nil {
				a.Err = fmt.Errorf("watching the prefix: requesting progress: %w", err)
				return a
			}
		case wr, ok := <-wch:
			switch {
			case !ok:
				a.Err = fmt.Errorf("watching the prefix: the watch ended (%w)", ctx.Err())
				return a
			case wr.CompactRevision != 0:
				a.Err = fmt.Errorf("watching the prefix: revisions up to %d were compacted during the run", wr.CompactRevision)
				return a
			case wr.Err() != nil:
				a.Err = fmt.Errorf("watching the prefix: %w", wr.Err())
				return a
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					a.Foreign = appendListed(a.Foreign, fmt.Sprintf("a delete of %s at revision %d", ev.Kv.Key, ev.Kv.ModRevision))
					continue
				}
				events[string(ev.Kv.Value)] = written{string(ev.Kv.Key), ev.Kv.ModRevision}
			}
			if wr.IsProgressNotify() && wr.Header.Revision >= a.To {
				break watch
			}
		}
	}

	ours := map[string]bool{}
	for _, op := range history {
		in, out := op.Input.(Input), op.Output.(Output)
		if !in.Put {
			continue
		}
		ours[in.Value] = true
		if out.Unknown {
			continue
		}
		a.Acknowledged++
		switch w, ok := events[in.Value]; {
		case !ok:
			a.Missing = appendListed(a.Missing, fmt.Sprintf("put(%s, %s) answered revision %d: not in the watch", in.Key, in.Value, out.Rev))
		case w.key != in.Key || w.rev != out.Rev:
			a.Missing = appendListed(a.Missing, fmt.Sprintf("put(%s, %s) answered revision %d: the watch has it as %s at revision %d", in.Key, in.Value, out.Rev, w.key, w.rev))
		default:
			a.Found++
		}
	}
	for value, w := range events {
		if !ours[value] {
			a.Foreign = appendListed(a.Foreign, fmt.Sprintf("%s=%q at revision %d", w.key, value, w.rev))
		}
	}
	return a
}

func appendListed(list []string, s string) []string {
	if len(list) < maxListed {
		list = append(list, s)
	}
	return list
}

// Visualize writes porcupine's visualisation of the history (an HTML
// page: each key's operations on a time line, and the longest orders the
// checker found) to path.
func (r *Result) Visualize(path string) error {
	return porcupine.VisualizePath(Model, r.info, path)
}

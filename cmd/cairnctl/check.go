package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/tool"
)

// check perf and check datascale: etcdctl's load checks, with its
// workloads, thresholds and messages. etcdctl also draws a progress bar
// while they run; cairnctl does not.

// checkLoads are the workload names each --load value may be given as.
var checkLoads = map[string]string{
	"s": "s", "small": "s",
	"m": "m", "medium": "m",
	"l": "l", "large": "l",
	"xl": "xl", "xLarge": "xl",
}

// perfLoad is a check perf workload: puts at most limit a second from
// clients connections, for duration.
type perfLoad struct {
	limit, clients int
	duration       time.Duration
}

var perfLoads = map[string]perfLoad{
	"s":  {150, 50, 60 * time.Second},
	"m":  {1000, 200, 60 * time.Second},
	"l":  {8000, 500, 60 * time.Second},
	"xl": {15000, 1000, 60 * time.Second},
}

// datascaleLoad is a check datascale workload: limit puts of kvSize bytes
// from clients connections.
type datascaleLoad struct {
	limit, kvSize, clients int
}

var datascaleLoads = map[string]datascaleLoad{
	"s":  {10000, 1024, 50},
	"m":  {100000, 1024, 200},
	"l":  {1000000, 1024, 500},
	"xl": {3000000, 1024, 1000},
}

type checkOptions struct {
	load, prefix            string
	autoCompact, autoDefrag bool
	duration                time.Duration // check perf's; 0 is the workload's
}

func (o *checkOptions) register(cmd *cobra.Command, loadUsage, prefix string) {
	f := cmd.Flags()
	f.StringVar(&o.load, "load", "s", loadUsage)
	f.StringVar(&o.prefix, "prefix", prefix, fmt.Sprintf("The prefix for writing the %s check's keys.", map[bool]string{true: "performance", false: "datascale"}[strings.Contains(prefix, "perf")]))
	f.BoolVar(&o.autoCompact, "auto-compact", false, "Compact storage with last revision after test is finished.")
	f.BoolVar(&o.autoDefrag, "auto-defrag", false, "Defragment storage after test is finished.")
}

func newCheckCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("check <subcommand>", "commands for checking properties of the etcd cluster")
	var perf, scale checkOptions
	perfCmd := &cobra.Command{
		Use:   "perf [options]",
		Short: "Check the performance of the etcd cluster",
		RunE:  func(cmd *cobra.Command, args []string) error { return g.checkPerf(&perf) },
	}
	perf.register(perfCmd, "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge). Different workload models use different configurations in terms of number of clients and expected throughput.", "/etcdctl-check-perf/")
	completeWith(perfCmd, "load", "small", "medium", "large", "xLarge")
	perfCmd.Flags().DurationVar(&perf.duration, "duration", 0, "How long to run the load (default: the workload's, 1m) (Cairn)")
	g.extension(perfCmd.Flags(), "duration")
	scaleCmd := &cobra.Command{
		Use:   "datascale [options]",
		Short: "Check the memory usage of holding data for different workloads on a given server endpoint.",
		Long:  "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
		RunE:  func(cmd *cobra.Command, args []string) error { return g.checkDatascale(&scale) },
	}
	scale.register(scaleCmd, "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)", "/etcdctl-check-datascale/")
	cmd.AddCommand(perfCmd, scaleCmd)
	// etcdctl has no such check: under its name, cairnctl has none either
	// (even hidden, cobra would pad the help's command list for it).
	if g.name != "etcdctl" {
		cmd.AddCommand(newCheckLinearizableCommand(g))
	}
	return cmd
}

// completeWith offers values for a flag in shell completion.
func completeWith(cmd *cobra.Command, flag string, values ...string) {
	err := cmd.RegisterFlagCompletionFunc(flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveDefault
	})
	if err != nil {
		panic(err) // a flag name misspelt here
	}
}

// loadStats summarises a load's requests: latencies of the successful
// ones, a count per error, and the wall time.
type loadStats struct {
	mu      sync.Mutex
	lats    []float64 // seconds
	errs    map[string]int
	started time.Time
	total   time.Duration
}

func (s *loadStats) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.errs == nil {
			s.errs = map[string]int{}
		}
		s.errs[err.Error()]++
		return
	}
	s.lats = append(s.lats, d.Seconds())
}

// reportErrors prints the load's failed requests, a count per error, as
// etcdctl's checks do, and says whether there were none.
func (g *globals) reportErrors(s *loadStats) bool {
	if len(s.errs) == 0 {
		return true
	}
	fmt.Fprintln(g.stdout, "FAIL: too many errors")
	for e, n := range s.errs {
		fmt.Fprintf(g.stdout, "FAIL: ERROR(%v) -> %d\n", e, n)
	}
	return false
}

// summary is requests a second, the slowest request and the standard
// deviation of the latencies, in seconds.
func (s *loadStats) summary() (rps, slowest, stddev float64) {
	if len(s.lats) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(s.lats)
	var sum float64
	for _, l := range s.lats {
		sum += l
	}
	mean := sum / float64(len(s.lats))
	for _, l := range s.lats {
		stddev += (l - mean) * (l - mean)
	}
	return float64(len(s.lats)) / s.total.Seconds(), s.lats[len(s.lats)-1], math.Sqrt(stddev / float64(len(s.lats)))
}

// runLoad sends every op from ops through clients connections, one
// request at a time each, until ops is closed.
func runLoad(clients []*clientv3.Client, ops <-chan clientv3.Op, stats *loadStats) {
	stats.started = time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { // owned by runLoad: ends when ops is closed
			defer wg.Done()
			for op := range ops {
				start := time.Now()
				_, err := c.Do(context.Background(), op)
				stats.add(time.Since(start), err)
			}
		}()
	}
	wg.Wait()
	stats.total = time.Since(stats.started)
}

// checkClients opens n connections, closed by the returned function.
func (g *globals) checkClients(n int) ([]*clientv3.Client, func(), error) {
	clients := make([]*clientv3.Client, 0, n)
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for range n {
		c, err := g.client()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
	}
	return clients, closeAll, nil
}

// checkEmpty refuses a prefix that holds keys: the check deletes its
// prefix when it is done.
func (g *globals) checkEmpty(c *clientv3.Client, prefix, hint string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithLimit(1))
	if err != nil {
		return err
	}
	if len(resp.Kvs) > 0 {
		return tool.ExitErr{Code: tool.ExitInvalidInput, Err: fmt.Errorf("prefix %q has keys. Delete with %s first", prefix, hint)}
	}
	return nil
}

// checkCleanup deletes the check's keys, then compacts and defragments
// if asked.
func (g *globals) checkCleanup(c *clientv3.Client, o *checkOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	resp, err := c.Delete(ctx, o.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		// The verdict is still worth having: reported, not fatal.
		fmt.Fprintf(g.stdout, "FAIL: Cleanup failed during key deletion: ERROR(%v)\n", err)
	}
	if err == nil && o.autoCompact {
		rev := resp.Header.Revision
		fmt.Fprintf(g.stdout, "Compacting with revision %d\n", rev)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical())
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "Compacted with revision %d\n", rev)
	}
	if o.autoDefrag {
		for _, ep := range c.Endpoints() {
			fmt.Fprintf(g.stdout, "Defragmenting %q\n", ep)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := c.Defragment(ctx, ep)
			cancel()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Defragmented %q\n", ep)
		}
	}
	return nil
}

// randomKey is the prefix and a random 64-bit value, varint-encoded into
// size bytes.
func randomKey(prefix string, size int) string {
	k := make([]byte, size)
	binary.PutVarint(k, rand.Int64N(math.MaxInt64))
	return prefix + string(k)
}

// checkPerf puts 256-byte keys with 1 KiB values at the workload's rate
// for its duration, and passes when throughput reached 90% of the rate,
// no request took over 500 ms and latencies' standard deviation is under
// 100 ms.
func (g *globals) checkPerf(o *checkOptions) error {
	model, ok := checkLoads[o.load]
	if !ok {
		return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("unknown load option %v", o.load)}
	}
	load := perfLoads[model]
	if o.duration > 0 {
		load.duration = o.duration
	}
	clients, closeAll, err := g.checkClients(load.clients)
	if err != nil {
		return err
	}
	defer closeAll()
	if err := g.checkEmpty(clients[0], o.prefix, fmt.Sprintf("'%s del --prefix %s'", g.name, o.prefix), load.duration); err != nil {
		return err
	}

	// An interrupt ends the load early; the keys are still deleted and
	// the verdict given, as etcdctl does.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, load.duration)
	defer cancel()
	ops := make(chan clientv3.Op, load.clients)
	value := string(make([]byte, 1024))
	go func() { // owned by checkPerf: ends with ctx, closing ops
		defer close(ops)
		// At most limit puts a second, with no catching up after a
		// stall (a token bucket of one, etcdctl's limiter).
		interval := time.Second / time.Duration(load.limit)
		next := time.Now()
		for {
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case <-ctx.Done():
				return
			case ops <- clientv3.OpPut(randomKey(o.prefix, 256), value):
			}
			// The next slot follows this one; after a stall it is now (one
			// token saved up, no more), as a limiter's reservations go.
			next = maxTime(next.Add(interval), time.Now())
		}
	}()
	var stats loadStats
	runLoad(clients, ops, &stats)
	if err := g.checkCleanup(clients[0], o); err != nil {
		return err
	}

	rps, slowest, stddev := stats.summary()
	pass := g.reportErrors(&stats)
	if rps/float64(load.limit) <= 0.9 {
		fmt.Fprintf(g.stdout, "FAIL: Throughput too low: %d writes/s\n", int(rps)+1)
		pass = false
	} else {
		fmt.Fprintf(g.stdout, "PASS: Throughput is %d writes/s\n", int(rps)+1)
	}
	if slowest > 0.5 {
		fmt.Fprintf(g.stdout, "Slowest request took too long: %fs\n", slowest)
		pass = false
	} else {
		fmt.Fprintf(g.stdout, "PASS: Slowest request took %fs\n", slowest)
	}
	if stddev > 0.1 {
		fmt.Fprintf(g.stdout, "Stddev too high: %fs\n", stddev)
		pass = false
	} else {
		fmt.Fprintf(g.stdout, "PASS: Stddev is %fs\n", stddev)
	}
	return g.verdict(pass)
}

// verdict prints a check's last line, PASS or FAIL, and returns the exit
// error a failure takes (the lines above said why).
func (g *globals) verdict(pass bool) error {
	if !pass {
		fmt.Fprintln(g.stdout, "FAIL")
		return tool.ExitErr{Code: tool.ExitError, Err: errLogged}
	}
	fmt.Fprintln(g.stdout, "PASS")
	return nil
}

// checkDatascale puts the workload's number of 512-byte keys with
// 512-byte values and reports how much the first endpoint's resident
// memory grew (process_resident_memory_bytes on its /metrics).
func (g *globals) checkDatascale(o *checkOptions) error {
	model, ok := checkLoads[o.load]
	if !ok {
		return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("unknown load option %v", o.load)}
	}
	load := datascaleLoads[model]
	clients, closeAll, err := g.checkClients(load.clients)
	if err != nil {
		return err
	}
	defer closeAll()
	if err := g.checkEmpty(clients[0], o.prefix, fmt.Sprintf("%s del --prefix %s", g.name, o.prefix), time.Hour); err != nil {
		return err
	}
	before := g.residentMemory(g.endpoints[0])
	if before == 0 {
		fmt.Fprintln(g.stdout, "FAIL: Could not read process_resident_memory_bytes before the put operations.")
		return tool.ExitErr{Code: tool.ExitError, Err: errLogged}
	}
	fmt.Fprintf(g.stdout, "Start data scale check for work load [%v key-value pairs, %v bytes per key-value, %v concurrent clients].\n", load.limit, load.kvSize, load.clients)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ops := make(chan clientv3.Op, load.clients)
	value := string(make([]byte, 512))
	go func() { // owned by checkDatascale: ends after limit ops or an interrupt, closing ops
		defer close(ops)
		for range load.limit {
			select {
			case <-ctx.Done():
				return
			case ops <- clientv3.OpPut(randomKey(o.prefix, 512), value):
			}
		}
	}()
	var stats loadStats
	runLoad(clients, ops, &stats)

	after := g.residentMemory(g.endpoints[0])
	if after == 0 {
		fmt.Fprintln(g.stdout, "FAIL: Could not read process_resident_memory_bytes after the put operations.")
		return tool.ExitErr{Code: tool.ExitError, Err: errLogged}
	}
	if err := g.checkCleanup(clients[0], o); err != nil {
		return err
	}
	if !g.reportErrors(&stats) {
		return tool.ExitErr{Code: tool.ExitError, Err: errLogged}
	}
	mb := (after - before) / (1024 * 1024)
	fmt.Fprintf(g.stdout, "PASS: Approximate system memory used : %v MB.\n", strconv.FormatFloat(mb, 'f', 2, 64))
	return nil
}

// residentMemory reads process_resident_memory_bytes from the endpoint's
// /metrics, or says why it could not and returns 0.
func (g *globals) residentMemory(endpoint string) float64 {
	const key = "process_resident_memory_bytes"
	url := endpoint
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + url
	}
	url += "/metrics"
	hc := &http.Client{Timeout: g.commandTimeout}
	if strings.HasPrefix(url, "https://") {
		tlsCfg, err := g.tlsConfig()
		if err != nil {
			fmt.Fprintf(g.stdout, "client certificate error: %v\n", err)
			return 0
		}
		hc.Transport = &http.Transport{TLSClientConfig: tlsCfg}
	}
	resp, err := hc.Get(url)
	if err != nil {
		fmt.Fprintf(g.stdout, "fetch error: %v\n", err)
		return 0
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		fmt.Fprintf(g.stdout, "fetch error: reading %s: %v\n", url, err)
		return 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			bytes, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				fmt.Fprintf(g.stdout, "parse error: %v\n", err)
				return 0
			}
			return bytes
		}
	}
	fmt.Fprintf(g.stdout, "could not find: %v\n", key)
	return 0
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

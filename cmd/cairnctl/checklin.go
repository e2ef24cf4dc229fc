package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/internal/lincheck"
	"github.com/cairn-db/cairn/internal/tool"
)

// check linearizable: Cairn's own check (etcdctl has none), see
// internal/lincheck.

type linOptions struct {
	clients, keys int
	duration      time.Duration
	prefix        string
	visualization string
	seed          uint64
}

func newCheckLinearizableCommand(g *globals) *cobra.Command {
	var o linOptions
	cmd := &cobra.Command{
		Use:   "linearizable [options]",
		Short: "Check that the cluster's reads and writes are linearizable (Cairn)",
		Long: `Runs puts and linearizable gets from several clients over a few keys under a
private prefix, each client on one endpoint in turn, then checks the history with
porcupine against a register per key (a get returns the last put's value and
revision) and audits, with a watch, that every acknowledged put is in the store at
the revision it was answered with. A violation prints FAIL and writes porcupine's
visualisation of the history (an HTML page) to --visualization. The prefix must be
empty; its keys are deleted at the end. Works against any etcd-API cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return g.checkLinearizable(&o) },
	}
	f := cmd.Flags()
	f.IntVar(&o.clients, "clients", 12, "How many clients (each on one endpoint, in turn)")
	f.IntVar(&o.keys, "keys", 8, "How many keys the clients share")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "How long to run the clients")
	f.StringVar(&o.prefix, "prefix", "/cairnctl-check-linearizable/", "The prefix for the check's keys")
	f.StringVar(&o.visualization, "visualization", "check-linearizable.html", "Where to write the visualisation of a history that is not linearizable")
	f.Uint64Var(&o.seed, "seed", 0, "Seeds the clients' choice of keys and operations (default: from the time)")
	return cmd
}

func (g *globals) checkLinearizable(o *linOptions) error {
	if o.clients < 1 || o.keys < 1 || o.duration <= 0 {
		return tool.ExitErr{Code: tool.ExitBadArgs, Err: errors.New("--clients, --keys and --duration must be positive")}
	}
	if err := g.discover(); err != nil {
		return err
	}
	cfg := lincheck.Config{Prefix: o.prefix, Keys: o.keys, Duration: o.duration, OpTimeout: g.commandTimeout, Seed: o.seed}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	defer func() {
		for _, c := range cfg.Clients {
			c.Close()
		}
	}()
	for i := range o.clients {
		ep := g.endpoints[i%len(g.endpoints)]
		c, err := g.clientTo([]string{ep})
		if err != nil {
			return err
		}
		cfg.Clients, cfg.Endpoints = append(cfg.Clients, c), append(cfg.Endpoints, ep)
	}
	if err := g.checkEmpty(cfg.Clients[0], o.prefix, fmt.Sprintf("'%s del --prefix %s'", g.name, o.prefix), g.commandTimeout); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Running %d clients over %d keys under %q on %d endpoints for %v (seed %d)\n",
		o.clients, o.keys, o.prefix, len(g.endpoints), o.duration, cfg.Seed)

	// An interrupt ends the run early; the history so far is still
	// checked, and the keys deleted.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := lincheck.Run(ctx, cfg)
	if cerr := g.checkCleanup(cfg.Clients[0], &checkOptions{prefix: o.prefix}); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	fmt.Fprintf(g.stdout, "%d operations in %.1fs: %d puts (%d without an answer), %d gets (%d more failed and are left out)\n",
		res.Ops, res.Elapsed.Seconds(), res.Puts, res.Unknown, res.Gets, res.FailedGets)
	pass := true
	switch res.Check {
	case porcupine.Ok:
		fmt.Fprintf(g.stdout, "PASS: the history is linearizable (checked in %.1fs)\n", res.CheckTook.Seconds())
	case porcupine.Illegal:
		pass = false
		fmt.Fprintf(g.stdout, "FAIL: the history is not linearizable (key %s)\n", res.IllegalKey)
		if err := res.Visualize(o.visualization); err != nil {
			fmt.Fprintf(g.stdout, "FAIL: writing the visualisation: %v\n", err)
		} else {
			fmt.Fprintf(g.stdout, "The visualisation of the history is in %s\n", o.visualization)
		}
	default:
		pass = false
		fmt.Fprintf(g.stdout, "UNKNOWN: the checker gave up after %.1fs (a shorter --duration or fewer --clients checks faster)\n", res.CheckTook.Seconds())
	}
	a := res.Audit
	switch {
	case a.Err != nil:
		pass = false
		fmt.Fprintf(g.stdout, "FAIL: could not audit the acknowledged puts: %v\n", a.Err)
	case a.Passed():
		fmt.Fprintf(g.stdout, "PASS: all %d acknowledged puts are in the store's history (revisions %d to %d)\n", a.Found, a.From+1, a.To)
	default:
		pass = false
		fmt.Fprintf(g.stdout, "FAIL: %d of %d acknowledged puts are not in the store's history as answered (revisions %d to %d)\n",
			a.Acknowledged-a.Found, a.Acknowledged, a.From+1, a.To)
		for _, m := range a.Missing {
			fmt.Fprintf(g.stdout, "  %s\n", m)
		}
		for _, f := range a.Foreign {
			fmt.Fprintf(g.stdout, "  not written by the check: %s\n", f)
		}
	}
	return g.verdict(pass)
}

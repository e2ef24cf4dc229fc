package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cairn-db/cairn/internal/tool"
)

// interruptCtx is cancelled by SIGINT or SIGTERM: lock and elect then
// give up what they hold and exit 0, as etcdctl's do.
func interruptCtx() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newLockCommand(g *globals) *cobra.Command {
	var ttl int
	cmd := &cobra.Command{
		Use:   "lock <lockname> [exec-command arg1 arg2 ...]",
		Short: "Acquires a named lock",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return tool.BadArgs("lock takes a lock name argument and an optional command to execute")
			}
			return g.withClient(func(cli *clientv3.Client) error {
				s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
				if err != nil {
					return err
				}
				m := concurrency.NewMutex(s, args[0])
				ctx, stop := interruptCtx()
				defer stop()
				if err := m.Lock(ctx); err != nil {
					return err
				}
				if len(args) > 1 {
					c := exec.Command(args[1], args[2:]...)
					c.Env = append([]string{fmt.Sprintf("ETCD_LOCK_KEY=%s", m.Key()),
						fmt.Sprintf("ETCD_LOCK_REV=%d", m.Header().Revision)}, os.Environ()...)
					c.Stdout, c.Stderr = g.stdout, g.stderr
					err := c.Run()
					unlockErr := m.Unlock(context.TODO())
					if err != nil {
						return err
					}
					return unlockErr
				}
				resp, err := cli.Get(ctx, m.Key())
				if err != nil {
					return err
				}
				if len(resp.Kvs) == 0 {
					return errors.New("lock lost on init")
				}
				g.printGet(resp)
				select {
				case <-ctx.Done():
					return m.Unlock(context.TODO())
				case <-s.Done():
				}
				return errors.New("session expired")
			})
		},
	}
	cmd.Flags().IntVarP(&ttl, "ttl", "", 10, "timeout for session")
	return cmd
}

func newElectCommand(g *globals) *cobra.Command {
	var listen bool
	cmd := &cobra.Command{
		Use:   "elect <election-name> [proposal]",
		Short: "Observes and participates in leader election",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 && len(args) != 2 {
				return tool.BadArgs("elect takes one election name argument and an optional proposal")
			}
			if listen && len(args) == 2 {
				return tool.BadArgs("proposal given but -l is set")
			}
			if !listen && len(args) != 2 {
				return tool.BadArgs("no proposal argument but -l not set")
			}
			return g.withClient(func(cli *clientv3.Client) error {
				s, err := concurrency.NewSession(cli)
				if err != nil {
					return err
				}
				e := concurrency.NewElection(s, args[0])
				ctx, stop := interruptCtx()
				defer stop()
				if listen {
					for resp := range e.Observe(ctx) {
						g.printGet(resp)
					}
					return nil
				}
				if err := e.Campaign(ctx, args[1]); err != nil {
					return err
				}
				resp, err := cli.Get(ctx, e.Key())
				if err != nil {
					return err
				}
				g.printGet(resp)
				select {
				case <-ctx.Done():
				case <-s.Done():
					return errors.New("elect: session expired")
				}
				return e.Resign(context.TODO())
			})
		},
	}
	cmd.Flags().BoolVarP(&listen, "listen", "l", false, "observation mode")
	return cmd
}

// printGet prints a range response in the chosen format.
func (g *globals) printGet(resp *clientv3.GetResponse) {
	switch g.writeOut {
	case formatJSON:
		printJSON(g.stdout, resp)
	case formatFields:
		g.printGetFields(resp)
	default:
		g.printGetSimple(resp, false)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newWatchCommand(g *globals) *cobra.Command {
	var prefix, prevKV, progressNotify, interactive bool
	var rev int64
	cmd := &cobra.Command{
		Use:   "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
		Short: "Watches events stream on keys or prefixes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			if interactive {
				return exitErr{exitBadFeature, fmt.Errorf("interactive mode (-i) is not supported yet")}
			}
			keyArgs, execArgs := args, []string(nil)
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				keyArgs, execArgs = args[:dash], args[dash:]
				if len(execArgs) == 0 {
					return badArgs("exec command not given")
				}
			}
			if len(keyArgs) == 0 || len(keyArgs) > 2 {
				return badArgs("bad number of arguments")
			}
			if prefix && len(keyArgs) == 2 {
				return badArgs("`range_end` and `--prefix` are mutually exclusive")
			}
			var opts []clientv3.OpOption
			if len(keyArgs) == 2 {
				opts = append(opts, clientv3.WithRange(keyArgs[1]))
			}
			if prefix {
				opts = append(opts, clientv3.WithPrefix())
			}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			if progressNotify {
				opts = append(opts, clientv3.WithProgressNotify())
			}
			return g.withClient(func(cli *clientv3.Client) error {
				// Runs until interrupted (the signal's default action ends
				// the process, as etcdctl's), or the watch ends.
				for resp := range cli.Watch(clientv3.WithRequireLeader(context.Background()), keyArgs[0], opts...) {
					if resp.Canceled {
						fmt.Fprintf(g.stderr, "watch was canceled (%v)\n", resp.Err())
					}
					if resp.IsProgressNotify() {
						fmt.Fprintf(g.stdout, "progress notify: %d\n", resp.Header.Revision)
						continue
					}
					g.printWatch(resp)
					if len(execArgs) > 0 {
						for _, ev := range resp.Events {
							c := exec.Command(execArgs[0], execArgs[1:]...)
							c.Env = append(os.Environ(),
								fmt.Sprintf("ETCD_WATCH_REVISION=%d", resp.Header.Revision),
								fmt.Sprintf("ETCD_WATCH_EVENT_TYPE=%q", ev.Type),
								fmt.Sprintf("ETCD_WATCH_KEY=%q", ev.Kv.Key),
								fmt.Sprintf("ETCD_WATCH_VALUE=%q", ev.Kv.Value))
							c.Stdout, c.Stderr = g.stdout, g.stderr
							if err := c.Run(); err != nil {
								fmt.Fprintf(g.stderr, "command %q error (%v)\n", execArgs, err)
								os.Exit(exitError)
							}
						}
					}
				}
				return exitErr{exitInterrupted, fmt.Errorf("watch is canceled by the server")}
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&interactive, "interactive", "i", false, "Interactive mode")
	f.BoolVar(&prefix, "prefix", false, "Watch on a prefix if prefix is set")
	f.Int64Var(&rev, "rev", 0, "Revision to start watching")
	f.BoolVar(&prevKV, "prev-kv", false, "get the previous key-value pair before the event happens")
	f.BoolVar(&progressNotify, "progress-notify", false, "get periodic watch progress notification from server")
	return cmd
}

func (g *globals) printWatch(resp clientv3.WatchResponse) {
	switch g.writeOut {
	case formatJSON:
		printJSON(g.stdout, resp)
		return
	case formatProtobuf:
		// etcdctl prints each event's encoding.
		for _, ev := range resp.Events {
			printProtobuf(g.stdout, (*mvccpb.Event)(ev))
		}
		return
	case formatFields:
		g.printHeaderFields(&resp.Header)
		for _, ev := range resp.Events {
			fmt.Fprintln(g.stdout, `"Type" :`, ev.Type)
			if ev.PrevKv != nil {
				g.printKVFields("Prev", ev.PrevKv)
			}
			g.printKVFields("", ev.Kv)
		}
		return
	}
	for _, ev := range resp.Events {
		fmt.Fprintln(g.stdout, ev.Type)
		if ev.PrevKv != nil {
			g.printKVSimple(ev.PrevKv, false)
		}
		g.printKVSimple(ev.Kv, false)
	}
}

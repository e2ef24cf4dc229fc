package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"

	"github.com/cairn-db/cairn/internal/tool"
)

var (
	errBadArgsNum          = errors.New("bad number of arguments")
	errBadArgsNumEnv       = errors.New("bad number of arguments (found conflicting environment key)")
	errBadArgsNumSeparator = errors.New("bad number of arguments (found separator --, but no commands)")
)

// watchOptions are a watch's flags: the command line's, or one line's in
// interactive mode.
type watchOptions struct {
	interactive    bool
	prefix         bool
	fromKey        bool
	rev            int64
	prevKV         bool
	progressNotify bool
}

// register defines the watch flags on fs. --from-key and --revision are
// Cairn's (the seeds' `watch --from-key key --revision 5`); they are
// hidden from help under the name etcdctl, whose help they are not in.
func (o *watchOptions) register(g *globals, fs *pflag.FlagSet) {
	fs.BoolVarP(&o.interactive, "interactive", "i", false, "Interactive mode")
	fs.BoolVar(&o.prefix, "prefix", false, "Watch on a prefix if prefix is set")
	fs.Int64Var(&o.rev, "rev", 0, "Revision to start watching")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "get the previous key-value pair before the event happens")
	fs.BoolVar(&o.progressNotify, "progress-notify", false, "get periodic watch progress notification from server")
	fs.BoolVar(&o.fromKey, "from-key", false, "Watch keys that are greater than or equal to the given key using byte compare (Cairn)")
	fs.Int64Var(&o.rev, "revision", 0, "Revision to start watching; the same as --rev (Cairn)")
	g.extension(fs, "from-key", "revision")
}

func newWatchCommand(g *globals) *cobra.Command {
	var o watchOptions
	cmd := &cobra.Command{
		Use:   "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
		Short: "Watches events stream on keys or prefixes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			envKey, envRange := g.getenv("WATCH_KEY"), g.getenv("WATCH_RANGE_END")
			if envKey == "" && envRange != "" {
				return tool.BadArgs("ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=%q", envRange)
			}
			if o.interactive {
				return g.watchInteractive(args, envKey, envRange)
			}
			keyArgs, execArgs := args, []string(nil)
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				keyArgs, execArgs = args[:dash], args[dash:]
				if len(execArgs) == 0 {
					return tool.BadArgs("%v", errBadArgsNumSeparator)
				}
			}
			if envKey != "" {
				if len(keyArgs) > 0 {
					return tool.BadArgs("%v", errBadArgsNumEnv)
				}
				keyArgs = []string{envKey}
				if envRange != "" {
					keyArgs = append(keyArgs, envRange)
				}
			}
			if len(keyArgs) == 0 {
				return tool.BadArgs("%v", errBadArgsNum)
			}
			return g.withClient(func(cli *clientv3.Client) error {
				ch, err := o.watch(cli, keyArgs)
				if err != nil {
					return tool.BadArgs("%v", err)
				}
				// Runs until interrupted (the signal's default action ends
				// the process, as etcdctl's), or the watch ends.
				g.printWatchChan(cli, ch, execArgs)
				return tool.ExitErr{Code: tool.ExitInterrupted, Err: fmt.Errorf("watch is canceled by the server")}
			})
		},
	}
	o.register(g, cmd.Flags())
	return cmd
}

// watch starts the watch keyArgs (a key, and maybe a range end) and the
// options name.
func (o *watchOptions) watch(cli *clientv3.Client, keyArgs []string) (clientv3.WatchChan, error) {
	// As etcdctl: a key and a range end; arguments after those are
	// ignored, and with three the range end is too.
	opts := []clientv3.OpOption{clientv3.WithRev(o.rev)}
	if len(keyArgs) == 2 {
		if o.prefix {
			return nil, fmt.Errorf("`range_end` and `--prefix` are mutually exclusive")
		}
		if o.fromKey {
			return nil, fmt.Errorf("`range_end` and `--from-key` are mutually exclusive")
		}
		opts = append(opts, clientv3.WithRange(keyArgs[1]))
	}
	if o.prefix && o.fromKey {
		return nil, fmt.Errorf("`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	if o.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if o.fromKey {
		opts = append(opts, clientv3.WithFromKey())
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.progressNotify {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	return cli.Watch(clientv3.WithRequireLeader(context.Background()), keyArgs[0], opts...), nil
}

// watchInteractive reads commands from stdin, a line each: "watch
// [options] <key> [range_end] [-- exec-command ...]" starts a watch whose
// events are printed as they come, "progress" asks the server for a
// progress notification on every watch. As in etcdctl, it ends at the end
// of stdin (exit 3), or at a line whose options do not parse (exit 128).
//
// etcdctl ignores arguments after -i; Cairn runs them first when they
// start with "watch" or "progress", as lines starting at each such word,
// so that the seeds' `watch -i watch key1 watch key2` watches both keys.
// Other arguments are ignored, as etcdctl ignores them.
func (g *globals) watchInteractive(args []string, envKey, envRange string) error {
	return g.withClient(func(cli *clientv3.Client) error {
		var mu sync.Mutex // serialises the printing of concurrent watches
		line := func(l string) error {
			words := argify(l)
			if len(words) < 1 {
				fmt.Fprintf(g.stderr, "Invalid command: %s (watch and progress supported)\n", l)
				return nil
			}
			switch words[0] {
			case "watch":
				if len(words) < 2 && envKey == "" {
					fmt.Fprintf(g.stderr, "Invalid command %s (command type or key is not provided)\n", l)
					return nil
				}
				var o watchOptions
				keyArgs, execArgs, err := o.parseLine(g, words[1:], envKey, envRange)
				if err != nil {
					return tool.BadArgs("%v", err)
				}
				ch, err := o.watch(cli, keyArgs)
				if err != nil {
					fmt.Fprintf(g.stderr, "Invalid command %s (%v)\n", l, err)
					return nil
				}
				go func() {
					for resp := range ch {
						mu.Lock()
						g.printWatchResponse(cli, resp, execArgs)
						mu.Unlock()
					}
				}()
			case "progress":
				if err := cli.RequestProgress(clientv3.WithRequireLeader(context.Background())); err != nil {
					return err
				}
			default:
				fmt.Fprintf(g.stderr, "Invalid command %s (only support watch)\n", l)
			}
			return nil
		}
		if len(args) > 0 && (args[0] == "watch" || args[0] == "progress") {
			for _, l := range splitCommands(args) {
				if err := line(l); err != nil {
					return err
				}
			}
		}
		r := bufio.NewReader(g.stdin)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return tool.ExitErr{Code: tool.ExitInvalidInput, Err: fmt.Errorf("error reading watch request line: %w", err)}
			}
			if err := line(strings.TrimSuffix(l, "\n")); err != nil {
				return err
			}
		}
	})
}

// splitCommands cuts arguments into command lines, one starting at each
// "watch" or "progress".
func splitCommands(args []string) []string {
	var lines []string
	for _, a := range args {
		if a == "watch" || a == "progress" {
			lines = append(lines, a)
			continue
		}
		lines[len(lines)-1] += " " + quoteWord(a)
	}
	return lines
}

// quoteWord quotes a word argify would otherwise split or unquote.
func quoteWord(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// parseLine parses one interactive watch line's words after "watch":
// options, the key and range end (or the environment's), and a command
// after "--".
func (o *watchOptions) parseLine(g *globals, words []string, envKey, envRange string) (keyArgs, execArgs []string, err error) {
	for i, w := range words {
		if w == "--" {
			if i == len(words)-1 {
				return nil, nil, errBadArgsNumSeparator
			}
			words, execArgs = words[:i], words[i+1:]
			break
		}
	}
	fs := pflag.NewFlagSet("watch", pflag.ContinueOnError)
	fs.SetOutput(nopWriter{})
	o.register(g, fs)
	if err := fs.Parse(words); err != nil {
		return nil, nil, err
	}
	keyArgs = fs.Args()
	if envKey != "" {
		if len(keyArgs) > 0 && execArgs == nil {
			return nil, nil, errBadArgsNumEnv
		}
		// The environment's key (and range end) come first; as in
		// etcdctl, a key on the line then follows them.
		env := []string{envKey}
		if envRange != "" {
			env = append(env, envRange)
		}
		keyArgs = append(env, keyArgs...)
	}
	if len(keyArgs) < 1 {
		return nil, nil, errBadArgsNum
	}
	return keyArgs, execArgs, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// printWatchChan prints every response of a watch until it ends.
func (g *globals) printWatchChan(cli *clientv3.Client, ch clientv3.WatchChan, execArgs []string) {
	for resp := range ch {
		g.printWatchResponse(cli, resp, execArgs)
	}
}

// printWatchResponse prints one watch response, and runs execArgs, if
// any, once per event with the event in its environment
// (ETCD_WATCH_REVISION, _EVENT_TYPE, _KEY, _VALUE); a failed command ends
// cairnctl, as it ends etcdctl.
func (g *globals) printWatchResponse(cli *clientv3.Client, resp clientv3.WatchResponse, execArgs []string) {
	if resp.Canceled {
		fmt.Fprintf(g.stderr, "watch was canceled (%v)\n", resp.Err())
	}
	if resp.IsProgressNotify() {
		fmt.Fprintf(g.stdout, "progress notify: %d\n", resp.Header.Revision)
	}
	g.printWatch(resp)
	if len(execArgs) == 0 {
		return
	}
	for _, ev := range resp.Events {
		c := exec.CommandContext(cli.Ctx(), execArgs[0], execArgs[1:]...)
		c.Env = append(os.Environ(),
			fmt.Sprintf("ETCD_WATCH_REVISION=%d", resp.Header.Revision),
			fmt.Sprintf("ETCD_WATCH_EVENT_TYPE=%q", ev.Type),
			fmt.Sprintf("ETCD_WATCH_KEY=%q", ev.Kv.Key),
			fmt.Sprintf("ETCD_WATCH_VALUE=%q", ev.Kv.Value))
		c.Stdout, c.Stderr = g.stdout, g.stderr
		if err := c.Run(); err != nil {
			fmt.Fprintf(g.stderr, "command %q error (%v)\n", execArgs, err)
			os.Exit(tool.ExitError)
		}
	}
}

func (g *globals) printWatch(resp clientv3.WatchResponse) {
	switch g.writeOut {
	case formatJSON:
		// etcdctl 3.7's client response, whose last field is the
		// reason a canceled watch gives (the 3.6 client keeps it
		// unexported; its Err carries it).
		reason := ""
		var ee rpctypes.EtcdError
		if err := resp.Err(); resp.Canceled && resp.CompactRevision == 0 && errors.As(err, &ee) && ee.Code() == codes.FailedPrecondition {
			reason = ee.Error()
		}
		printJSON(g.stdout, struct {
			Header          *pb.ResponseHeader
			Events          []*clientv3.Event
			CompactRevision int64
			Canceled        bool
			Created         bool
			CancelReason    string
		}{resp.Header, resp.Events, resp.CompactRevision, resp.Canceled, resp.Created, reason})
		return
	case formatProtobuf:
		// etcdctl prints the response as the server's WatchResponse
		// message, less the watch ID.
		evs := make([]*mvccpb.Event, len(resp.Events))
		for i, ev := range resp.Events {
			evs[i] = (*mvccpb.Event)(ev)
		}
		printProtobuf(g.stdout, &pb.WatchResponse{Header: resp.Header, Events: evs,
			CompactRevision: resp.CompactRevision, Canceled: resp.Canceled, Created: resp.Created})
		return
	case formatFields:
		g.printHeaderFields(resp.Header)
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

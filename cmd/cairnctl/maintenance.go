package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"

	"github.com/cairn-db/cairn/internal/tool"
)

func newAlarmCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("alarm <subcommand>", "Alarm related commands")
	for _, disarm := range []bool{false, true} {
		use, short := "list", "Lists all alarms"
		if disarm {
			use, short = "disarm", "Disarms all alarms"
		}
		cmd.AddCommand(&cobra.Command{
			Use:   use,
			Short: short,
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) != 0 {
					return tool.BadArgs("alarm %s command accepts no arguments", use)
				}
				return g.request(func(cli *clientv3.Client, ctx context.Context) error {
					var resp *clientv3.AlarmResponse
					var err error
					if disarm {
						resp, err = cli.AlarmDisarm(ctx, &clientv3.AlarmMember{})
					} else {
						resp, err = cli.AlarmList(ctx)
					}
					if err != nil {
						return err
					}
					return g.display(resp, nil, func() {
						g.printHeaderFields(resp.Header)
						for _, a := range resp.Alarms {
							g.printIDField("MemberID", a.MemberID, "%x")
							fmt.Fprintln(g.stdout, `"AlarmType" :`, a.Alarm)
							fmt.Fprintln(g.stdout)
						}
					}, func() {
						for _, a := range resp.Alarms {
							fmt.Fprintf(g.stdout, "memberID:%d alarm:%v\n", a.MemberID, a.Alarm)
						}
					})
				})
			},
		})
	}
	return cmd
}

func newDefragCommand(g *globals) *cobra.Command {
	var cluster bool
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Defragments the storage of the etcd members with given endpoints",
		RunE: func(cmd *cobra.Command, args []string) error {
			eps, err := g.endpointsFor(cluster)
			if err != nil {
				return err
			}
			failures := 0
			for _, ep := range eps {
				err := g.withEndpoint(ep, func(cli *clientv3.Client, ctx context.Context) error {
					start := time.Now()
					_, err := cli.Defragment(ctx, ep)
					took := time.Since(start)
					if err != nil {
						fmt.Fprintf(g.stderr, "Failed to defragment etcd member[%s]. took %s. (%v)\n", ep, took, err)
						return err
					}
					fmt.Fprintf(g.stdout, "Finished defragmenting etcd member[%s]. took %s\n", ep, took)
					return nil
				})
				if err != nil {
					failures++
				}
			}
			if failures > 0 {
				return tool.ExitErr{Code: tool.ExitError, Err: errLogged}
			}
			return nil
		},
	}
	cmd.PersistentFlags().BoolVar(&cluster, "cluster", false, "use all endpoints from the cluster member list")
	return cmd
}

func newMoveLeaderCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "move-leader <transferee-member-id>",
		Short: "Transfers leadership to another etcd cluster member.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("move-leader command needs 1 argument")
			}
			if err := rpcFormatsOnly(g.writeOut); err != nil {
				return err
			}
			target, err := strconv.ParseUint(args[0], 16, 64)
			if err != nil {
				return tool.BadArgs("%v", err)
			}
			// The request must reach the leader: find it among the
			// endpoints.
			if err := g.discover(); err != nil {
				return err
			}
			var leaderEP string
			var leaderID uint64
			for _, ep := range g.endpoints {
				// As etcdctl, the first endpoint that does not answer
				// ends the command.
				if err := g.withEndpoint(ep, func(cli *clientv3.Client, ctx context.Context) error {
					resp, err := cli.Status(ctx, ep)
					if err == nil && resp.Header.MemberId == resp.Leader {
						leaderEP, leaderID = ep, resp.Leader
					}
					return err
				}); err != nil {
					return err
				}
				if leaderEP != "" {
					break
				}
			}
			if leaderEP == "" {
				return tool.BadArgs("no leader endpoint given at %v", g.endpoints)
			}
			return g.withEndpoint(leaderEP, func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.MoveLeader(ctx, target)
				if err != nil {
					return err
				}
				return g.display(g.hexJSON(resp), (*pb.MoveLeaderResponse)(resp), func() {}, func() {
					fmt.Fprintf(g.stdout, "Leadership transferred from %s to %s\n",
						strconv.FormatUint(leaderID, 16), strconv.FormatUint(target, 16))
				})
			})
		},
	}
}

func newSnapshotCommand(g *globals) *cobra.Command {
	// etcdctl's examples; each line is indented, blank ones too.
	example := "  " + strings.ReplaceAll(strings.Join([]string{
		"# Save snapshot to a given file",
		"etcdctl snapshot save /backup/etcd-snapshot.db",
		"",
		"# Get snapshot from given address and save it to file",
		"etcdctl snapshot save --endpoints=127.0.0.1:3000 /backup/etcd-snapshot.db",
		"",
		"# Get snapshot from given address with certificates",
		"etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/etcd/ca.crt --cert=/etc/etcd/etcd.crt --key=/etc/etcd/etcd.key snapshot save /backup/etcd-snapshot.db",
		"",
		"# Get snapshot with certain user and password",
		"etcdctl --user=root --password=password123 snapshot save /backup/etcd-snapshot.db",
		"",
		"# Get snapshot from given address with timeout",
		"etcdctl --endpoints=https://127.0.0.1:2379 --dial-timeout=20s snapshot save /backup/etcd-snapshot.db",
		"",
		"# Save snapshot with desirable time format",
		"etcdctl snapshot save /mnt/backup/etcd/backup_$(date +%Y%m%d_%H%M%S).db",
	}, "\n  "), "etcdctl", g.name)
	cmd := &cobra.Command{Use: "snapshot <subcommand>", Short: "Manages etcd node snapshots", Example: example}
	cmd.AddCommand(&cobra.Command{
		Use:     "save <filename>",
		Short:   "Stores an etcd node backend snapshot to a given file",
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("snapshot save expects one argument")
			}
			if err := g.discover(); err != nil {
				return err
			}
			if len(g.endpoints) != 1 {
				return tool.BadArgs("snapshot must be requested to one selected node, not multiple %v", g.endpoints)
			}
			cfg := clientv3.Config{Endpoints: g.endpoints, DialTimeout: g.dialTimeout, Logger: g.logger()}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			version, err := snapshot.SaveWithVersion(ctx, g.logger(), cfg, args[0])
			if err != nil {
				return tool.ExitErr{Code: tool.ExitInterrupted, Err: err}
			}
			fmt.Fprintf(g.stdout, "Snapshot saved at %s\n", args[0])
			if version != "" {
				fmt.Fprintf(g.stdout, "Server version %s\n", version)
			}
			return nil
		},
	})
	return cmd
}

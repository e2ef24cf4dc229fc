package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/tool"
	"github.com/cairn-db/cairn/internal/version"
)

func newLeaseCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("lease <subcommand>", "Lease related commands")
	cmd.AddCommand(newLeaseGrant(g), newLeaseRevoke(g), newLeaseTimeToLive(g), newLeaseList(g), newLeaseKeepAlive(g))
	return cmd
}

func leaseArg(args []string, what string) (clientv3.LeaseID, error) {
	if len(args) != 1 {
		return 0, tool.BadArgs("lease %s command needs lease ID as argument", what)
	}
	return parseLeaseID(args[0], "lease ID arg")
}

func newLeaseGrant(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "grant <ttl>",
		Short: "Creates leases",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			if len(args) != 1 {
				return tool.BadArgs("lease grant command needs TTL argument")
			}
			var ttl int64
			if _, err := fmt.Sscan(args[0], &ttl); err != nil {
				return tool.BadArgs("bad TTL (%v)", err)
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.Grant(ctx, ttl)
				if err != nil {
					return fmt.Errorf("failed to grant lease (%v)", err)
				}
				return g.display(resp, &pb.LeaseGrantResponse{Header: resp.ResponseHeader, ID: int64(resp.ID), TTL: resp.TTL, Error: resp.Error},
					func() {
						g.printHeaderFields(resp.ResponseHeader)
						g.printIDField("ID", uint64(resp.ID), "%016x")
						fmt.Fprintln(g.stdout, `"TTL" :`, resp.TTL)
					}, func() { fmt.Fprintf(g.stdout, "lease %016x granted with TTL(%ds)\n", resp.ID, resp.TTL) })
			})
		},
	}
}

func newLeaseRevoke(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <leaseID>",
		Short: "Revokes leases",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			if len(args) != 1 {
				return tool.BadArgs("lease revoke command needs 1 argument")
			}
			id, err := parseLeaseID(args[0], "lease ID arg")
			if err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.Revoke(ctx, id)
				if err != nil {
					return fmt.Errorf("failed to revoke lease (%v)", err)
				}
				return g.display(resp, (*pb.LeaseRevokeResponse)(resp), func() { g.printHeaderFields(resp.Header) },
					func() { fmt.Fprintf(g.stdout, "lease %016x revoked\n", id) })
			})
		},
	}
}

func newLeaseTimeToLive(g *globals) *cobra.Command {
	var keys bool
	cmd := &cobra.Command{
		Use:   "timetolive <leaseID> [options]",
		Short: "Get lease information",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			id, err := leaseArg(args, "timetolive")
			if err != nil {
				return err
			}
			var opts []clientv3.LeaseOption
			if keys {
				opts = append(opts, clientv3.WithAttachedKeys())
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.TimeToLive(ctx, id, opts...)
				if err != nil {
					return err
				}
				return g.display(resp, &pb.LeaseTimeToLiveResponse{Header: resp.ResponseHeader,
					ID: int64(resp.ID), TTL: resp.TTL, GrantedTTL: resp.GrantedTTL, Keys: resp.Keys}, func() {
					g.printHeaderFields(resp.ResponseHeader)
					g.printIDField("ID", uint64(resp.ID), "%016x")
					fmt.Fprintln(g.stdout, `"TTL" :`, resp.TTL)
					fmt.Fprintln(g.stdout, `"GrantedTTL" :`, resp.GrantedTTL)
					for _, k := range resp.Keys {
						fmt.Fprintf(g.stdout, "\"Key\" : %q\n", string(k))
					}
				}, func() {
					if resp.TTL == -1 {
						fmt.Fprintf(g.stdout, "lease %016x already expired\n", resp.ID)
						return
					}
					txt := fmt.Sprintf("lease %016x granted with TTL(%ds), remaining(%ds)", resp.ID, resp.GrantedTTL, resp.TTL)
					if keys {
						ks := make([]string, len(resp.Keys))
						for i := range resp.Keys {
							ks[i] = string(resp.Keys[i])
						}
						txt += fmt.Sprintf(", attached keys(%v)", ks)
					}
					fmt.Fprintln(g.stdout, txt)
				})
			})
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "Get keys attached to this lease")
	return cmd
}

func newLeaseList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List all active leases",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.Leases(ctx)
				if err != nil {
					return fmt.Errorf("failed to list leases (%v)", err)
				}
				out := &pb.LeaseLeasesResponse{Header: resp.ResponseHeader}
				for _, l := range resp.Leases {
					out.Leases = append(out.Leases, &pb.LeaseStatus{ID: int64(l.ID)})
				}
				return g.display(resp, out, func() {
					g.printHeaderFields(resp.ResponseHeader)
					for _, l := range resp.Leases {
						g.printIDField("ID", uint64(l.ID), "%016x")
					}
				}, func() {
					fmt.Fprintf(g.stdout, "found %d leases\n", len(resp.Leases))
					for _, l := range resp.Leases {
						fmt.Fprintf(g.stdout, "%016x\n", l.ID)
					}
				})
			})
		},
	}
}

func newLeaseKeepAlive(g *globals) *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "keep-alive [options] <leaseID>",
		Short: "Keeps leases alive (renew)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			id, err := leaseArg(args, "keep-alive")
			if err != nil {
				return err
			}
			return g.withClient(func(cli *clientv3.Client) error {
				if once {
					ctx, cancel := g.commandCtx()
					defer cancel()
					resp, err := cli.KeepAliveOnce(ctx, id)
					if err != nil {
						// etcdctl exits as for a bad connection here.
						return tool.ExitErr{Code: tool.ExitBadConnection, Err: err}
					}
					return g.printKeepAlive(resp)
				}
				ch, err := cli.KeepAlive(context.Background(), id)
				if err != nil {
					return err
				}
				for resp := range ch {
					if err := g.printKeepAlive(resp); err != nil {
						return err
					}
				}
				if g.writeOut == formatSimple {
					fmt.Fprintf(g.stdout, "lease %016x expired or revoked.\n", id)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "Resets the keep-alive time to its original value and cobrautl.Exits immediately")
	return cmd
}

func (g *globals) printKeepAlive(resp *clientv3.LeaseKeepAliveResponse) error {
	return g.display(resp, &pb.LeaseKeepAliveResponse{Header: resp.ResponseHeader, ID: int64(resp.ID), TTL: resp.TTL}, func() {
		g.printHeaderFields(resp.ResponseHeader)
		g.printIDField("ID", uint64(resp.ID), "%016x")
		fmt.Fprintln(g.stdout, `"TTL" :`, resp.TTL)
	}, func() { fmt.Fprintf(g.stdout, "lease %016x keepalived with TTL(%d)\n", resp.ID, resp.TTL) })
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Prints the version of etcdctl",
		Run: func(cmd *cobra.Command, args []string) {
			// etcdctl's lines, so that scripts reading them keep working:
			// cairnctl speaks the API of the etcd release Cairn follows.
			fmt.Fprintf(g.stdout, "%s version: %s\n", g.name, version.Etcd)
			fmt.Fprintf(g.stdout, "API version: %s\n", version.API)
		},
	}
}

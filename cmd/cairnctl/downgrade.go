package main

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/internal/tool"
)

// newDowngradeCommand is etcdctl's downgrade validate/enable/cancel.
func newDowngradeCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("downgrade <TARGET_VERSION>", "Downgrade related commands")
	action := func(use, short, name string, a clientv3.DowngradeAction, needsVersion bool) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := rpcFormatsOnly(g.writeOut); err != nil {
					return err
				}
				version := ""
				if needsVersion {
					if len(args) < 1 {
						return tool.BadArgs("TARGET_VERSION not provided")
					}
					if len(args) > 1 {
						return tool.BadArgs("too many arguments")
					}
					version = args[0]
				}
				return g.request(func(cli *clientv3.Client, ctx context.Context) error {
					resp, err := cli.Downgrade(ctx, a, version)
					if err != nil {
						return err
					}
					return g.display(resp, (*pb.DowngradeResponse)(resp), nil, func() {
						fmt.Fprintf(g.stdout, "Downgrade %s success, cluster version %s\n", name, resp.Version)
					})
				})
			},
		}
	}
	cmd.AddCommand(
		action("validate <TARGET_VERSION>", "Validate downgrade capability before starting downgrade", "validate", clientv3.DowngradeValidate, true),
		action("enable <TARGET_VERSION>", "Start a downgrade action to cluster", "enable", clientv3.DowngradeEnable, true),
		action("cancel", "Cancel the ongoing downgrade action to cluster", "cancel", clientv3.DowngradeCancel, false),
	)
	return cmd
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/tool"
)

// addMemberCommands adds member add, remove, update and promote to cmd.
func addMemberCommands(g *globals, cmd *cobra.Command) {
	var peerURLs string
	var learner bool
	add := &cobra.Command{
		Use:   "add <memberName> [options]",
		Short: "Adds a member into the cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("member name not provided")
			}
			if len(args) > 1 {
				return tool.BadArgs("too many arguments")
			}
			if len(peerURLs) == 0 {
				return tool.BadArgs("member peer urls not provided")
			}
			name, urls := args[0], strings.Split(peerURLs, ",")
			if err := rpcFormatsOnly(g.writeOut); err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				var resp *clientv3.MemberAddResponse
				var err error
				if learner {
					resp, err = cli.MemberAddAsLearner(ctx, urls)
				} else {
					resp, err = cli.MemberAdd(ctx, urls)
				}
				if err != nil {
					return err
				}
				switch g.writeOut {
				case formatJSON:
					return printJSON(g.stdout, g.hexJSON(resp))
				case formatProtobuf:
					return printProtobuf(g.stdout, (*pb.MemberAddResponse)(resp))
				}
				as := ""
				if resp.Member.IsLearner {
					as = " as learner"
				}
				fmt.Fprintf(g.stdout, "Member %16x added%s to cluster %16x\n", resp.Member.ID, as, resp.Header.ClusterId)
				// The new member's configuration, for its first start.
				var conf []string
				for _, m := range resp.Members {
					for _, u := range m.PeerURLs {
						n := m.Name
						if m.ID == resp.Member.ID {
							n = name
						}
						conf = append(conf, fmt.Sprintf("%s=%s", n, u))
					}
				}
				fmt.Fprint(g.stdout, "\n")
				fmt.Fprintf(g.stdout, "ETCD_NAME=%q\n", name)
				fmt.Fprintf(g.stdout, "ETCD_INITIAL_CLUSTER=%q\n", strings.Join(conf, ","))
				fmt.Fprintf(g.stdout, "ETCD_INITIAL_ADVERTISE_PEER_URLS=%q\n", peerURLs)
				fmt.Fprintf(g.stdout, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n")
				return nil
			})
		},
	}
	add.Flags().StringVar(&peerURLs, "peer-urls", "", "comma separated peer URLs for the new member.")
	add.Flags().BoolVar(&learner, "learner", false, "indicates if the new member is raft learner")

	memberID := func(args []string) (uint64, error) {
		if len(args) != 1 {
			return 0, tool.BadArgs("member ID is not provided")
		}
		id, err := strconv.ParseUint(args[0], 16, 64)
		if err != nil {
			return 0, tool.BadArgs("bad member ID arg (%v), expecting ID in Hex", err)
		}
		return id, nil
	}
	remove := &cobra.Command{
		Use:   "remove <memberID>",
		Short: "Removes a member from the cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberID(args)
			if err != nil {
				return err
			}
			return g.memberChange("removed from", id, func(cli *clientv3.Client, ctx context.Context) (*pb.ResponseHeader, marshaler, any, error) {
				resp, err := cli.MemberRemove(ctx, id)
				if err != nil {
					return nil, nil, nil, err
				}
				return resp.Header, (*pb.MemberRemoveResponse)(resp), resp, nil
			})
		},
	}
	var updateURLs string
	update := &cobra.Command{
		Use:   "update <memberID> [options]",
		Short: "Updates a member in the cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberID(args)
			if err != nil {
				return err
			}
			if len(updateURLs) == 0 {
				return tool.BadArgs("member peer urls not provided")
			}
			return g.memberChange("updated in", id, func(cli *clientv3.Client, ctx context.Context) (*pb.ResponseHeader, marshaler, any, error) {
				resp, err := cli.MemberUpdate(ctx, id, strings.Split(updateURLs, ","))
				if err != nil {
					return nil, nil, nil, err
				}
				return resp.Header, (*pb.MemberUpdateResponse)(resp), resp, nil
			})
		},
	}
	update.Flags().StringVar(&updateURLs, "peer-urls", "", "comma separated peer URLs for the updated member.")
	promote := &cobra.Command{
		Use:   "promote <memberID>",
		Short: "Promotes a non-voting member in the cluster",
		Long:  "Promotes a non-voting learner member to a voting one in the cluster.\n",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberID(args)
			if err != nil {
				return err
			}
			return g.memberChange("promoted in", id, func(cli *clientv3.Client, ctx context.Context) (*pb.ResponseHeader, marshaler, any, error) {
				resp, err := cli.MemberPromote(ctx, id)
				if err != nil {
					return nil, nil, nil, err
				}
				return resp.Header, (*pb.MemberPromoteResponse)(resp), resp, nil
			})
		},
	}
	cmd.AddCommand(add, remove, update, promote)
}

// memberChange sends one change of member id (call) and prints its
// answer: "Member <id> <what> cluster <cluster>", or the response as JSON
// or protobuf. Fields and table, which etcdctl cannot print for these,
// are refused before the request.
func (g *globals) memberChange(what string, id uint64, call func(*clientv3.Client, context.Context) (*pb.ResponseHeader, marshaler, any, error)) error {
	if err := rpcFormatsOnly(g.writeOut); err != nil {
		return err
	}
	return g.request(func(cli *clientv3.Client, ctx context.Context) error {
		h, m, resp, err := call(cli, ctx)
		if err != nil {
			return err
		}
		return g.display(g.hexJSON(resp), m, func() {},
			func() { fmt.Fprintf(g.stdout, "Member %16x %s cluster %16x\n", id, what, h.ClusterId) })
	})
}

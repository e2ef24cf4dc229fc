package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/tool"
)

func newMemberCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("member <subcommand>", "Membership related commands")
	var consistency string
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists all members in the cluster",
		Long: `When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, true); err != nil {
				return err
			}
			opts, err := consistencyOpts(consistency)
			if err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.MemberList(ctx, opts...)
				if err != nil {
					return err
				}
				g.printMemberList(resp)
				return nil
			})
		},
	}
	list.Flags().StringVar(&consistency, "consistency", "l", "Linearizable(l) or Serializable(s)")
	cmd.AddCommand(list)
	addMemberCommands(g, cmd)
	return cmd
}

func memberRows(resp *clientv3.MemberListResponse) (hdr []string, rows [][]string) {
	hdr = []string{"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"}
	for _, m := range resp.Members {
		status := "started"
		if len(m.Name) == 0 {
			status = "unstarted"
		}
		rows = append(rows, []string{fmt.Sprintf("%x", m.ID), status, m.Name, strings.Join(m.PeerURLs, ","),
			strings.Join(m.ClientURLs, ","), fmt.Sprint(m.IsLearner)})
	}
	return hdr, rows
}

func (g *globals) printMemberList(resp *clientv3.MemberListResponse) {
	switch g.writeOut {
	case formatJSON:
		printJSON(g.stdout, g.hexJSON(resp))
	case formatProtobuf:
		printProtobuf(g.stdout, (*pb.MemberListResponse)(resp))
	case formatTable:
		hdr, rows := memberRows(resp)
		tool.Render(g.stdout, hdr, rows)
	case formatFields:
		g.printHeaderFields(resp.Header)
		for _, m := range resp.Members {
			g.printIDField("ID", m.ID, "%x")
			fmt.Fprintf(g.stdout, "\"Name\" : %q\n", m.Name)
			for _, u := range m.PeerURLs {
				fmt.Fprintf(g.stdout, "\"PeerURL\" : %q\n", u)
			}
			for _, u := range m.ClientURLs {
				fmt.Fprintf(g.stdout, "\"ClientURL\" : %q\n", u)
			}
			fmt.Fprintln(g.stdout, `"IsLearner" :`, m.IsLearner)
			fmt.Fprintln(g.stdout)
		}
	default:
		_, rows := memberRows(resp)
		for _, r := range rows {
			fmt.Fprintln(g.stdout, strings.Join(r, ", "))
		}
	}
}

// hexJSON is what etcdctl 3.7 prints as JSON, with --hex, for the member
// list and member changes: member and header IDs as hex strings, empty
// fields left out. Without --hex, or for other values, it is v itself.
func (g *globals) hexJSON(v any) any {
	if !g.hex {
		return v
	}
	switch r := v.(type) {
	case *clientv3.MemberAddResponse:
		return struct {
			Header  *hexHeader   `json:"header"`
			Member  *hexMember   `json:"member"`
			Members []*hexMember `json:"members"`
		}{(*hexHeader)(r.Header), (*hexMember)(r.Member), hexMembers(r.Members)}
	case *clientv3.MemberRemoveResponse:
		return hexMemberList{(*hexHeader)(r.Header), hexMembers(r.Members)}
	case *clientv3.MemberUpdateResponse:
		return hexMemberList{(*hexHeader)(r.Header), hexMembers(r.Members)}
	case *clientv3.MemberPromoteResponse:
		return hexMemberList{(*hexHeader)(r.Header), hexMembers(r.Members)}
	case *clientv3.MemberListResponse:
		return hexMemberList{(*hexHeader)(r.Header), hexMembers(r.Members)}
	}
	return v
}

type hexMemberList struct {
	Header  *hexHeader   `json:"header"`
	Members []*hexMember `json:"members"`
}

// hexHeader and hexMember print with IDs in hex (etcdctl's --hex JSON).
type (
	hexHeader pb.ResponseHeader
	hexMember pb.Member
)

func (h *hexHeader) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ClusterID string `json:"cluster_id"`
		MemberID  string `json:"member_id"`
		Revision  int64  `json:"revision,omitempty"`
		RaftTerm  uint64 `json:"raft_term,omitempty"`
	}{fmt.Sprintf("%x", h.ClusterId), fmt.Sprintf("%x", h.MemberId), h.Revision, h.RaftTerm})
}

func (m *hexMember) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID         string   `json:"ID"`
		Name       string   `json:"name,omitempty"`
		PeerURLs   []string `json:"peerURLs,omitempty"`
		ClientURLs []string `json:"clientURLs,omitempty"`
		IsLearner  bool     `json:"isLearner,omitempty"`
	}{fmt.Sprintf("%x", m.ID), m.Name, m.PeerURLs, m.ClientURLs, m.IsLearner})
}

// hexMembers is never nil: an empty list prints as [].
func hexMembers(ms []*pb.Member) []*hexMember {
	out := make([]*hexMember, len(ms))
	for i, m := range ms {
		out[i] = (*hexMember)(m)
	}
	return out
}

func newEndpointCommand(g *globals) *cobra.Command {
	var cluster bool
	cmd := g.parentCommand("endpoint <subcommand>", "Endpoint related commands")
	cmd.PersistentFlags().BoolVar(&cluster, "cluster", false, "use all endpoints from the cluster member list")
	health := &cobra.Command{
		Use:   "health",
		Short: "Checks the healthiness of endpoints specified in `--endpoints` flag",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, true); err != nil {
				return err
			}
			eps, err := g.endpointsFor(cluster)
			if err != nil {
				return err
			}
			return g.endpointHealth(eps)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Prints out the status of endpoints specified in `--endpoints` flag",
		Long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, true); err != nil {
				return err
			}
			eps, err := g.endpointsFor(cluster)
			if err != nil {
				return err
			}
			return g.endpointStatus(eps)
		},
	}
	var rev int64
	hashkv := &cobra.Command{
		Use:   "hashkv",
		Short: "Prints the KV history hash for each endpoint in --endpoints",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, true); err != nil {
				return err
			}
			eps, err := g.endpointsFor(cluster)
			if err != nil {
				return err
			}
			return g.endpointHashKV(eps, rev)
		},
	}
	hashkv.PersistentFlags().Int64Var(&rev, "rev", 0, "maximum revision to hash (default: latest revision)")
	cmd.AddCommand(health, status, hashkv)
	return cmd
}

type epHashKV struct {
	Ep   string             `json:"Endpoint"`
	Resp *pb.HashKVResponse `json:"HashKV"`
}

func (g *globals) endpointHashKV(eps []string, rev int64) error {
	var hs []epHashKV
	failed := g.eachEndpoint(eps, "hash", func(cli *clientv3.Client, ctx context.Context, ep string) error {
		resp, err := cli.HashKV(ctx, ep, rev)
		if err != nil {
			return err
		}
		hs = append(hs, epHashKV{ep, (*pb.HashKVResponse)(resp)})
		return nil
	})
	switch g.writeOut {
	case formatJSON:
		printJSON(g.stdout, hs)
	case formatTable:
		var rows [][]string
		for _, h := range hs {
			rows = append(rows, []string{h.Ep, fmt.Sprint(h.Resp.Hash), fmt.Sprint(h.Resp.HashRevision)})
		}
		tool.Render(g.stdout, []string{"endpoint", "hash", "hash revision"}, rows)
	case formatFields:
		for _, h := range hs {
			g.printHeaderFields(h.Resp.Header)
			fmt.Fprintf(g.stdout, "\"Endpoint\" : %q\n", h.Ep)
			fmt.Fprintln(g.stdout, `"Hash" :`, h.Resp.Hash)
			fmt.Fprintln(g.stdout, `"HashRevision" :`, h.Resp.HashRevision)
			fmt.Fprintln(g.stdout)
		}
	default:
		for _, h := range hs {
			fmt.Fprintf(g.stdout, "%s, %d, %d\n", h.Ep, h.Resp.Hash, h.Resp.HashRevision)
		}
	}
	return failed
}

// endpointsFor is --endpoints, or with --cluster every member's client
// URLs.
func (g *globals) endpointsFor(cluster bool) ([]string, error) {
	if err := g.discover(); err != nil {
		return nil, err
	}
	if !cluster {
		return g.endpoints, nil
	}
	var eps []string
	err := g.request(func(cli *clientv3.Client, ctx context.Context) error {
		resp, err := cli.MemberList(ctx)
		if err != nil {
			return err
		}
		for _, m := range resp.Members {
			eps = append(eps, m.ClientURLs...)
		}
		return nil
	})
	return eps, err
}

// withEndpoint is request with a client of ep alone.
func (g *globals) withEndpoint(ep string, fn func(cli *clientv3.Client, ctx context.Context) error) error {
	one := *g
	one.endpoints = []string{ep}
	return one.request(fn)
}

// eachEndpoint runs fn against each endpoint alone. A failure is reported
// as etcdctl reports it ("Failed to get the <what> of endpoint ..."), the
// others still tried, and the last failure returned.
func (g *globals) eachEndpoint(eps []string, what string, fn func(cli *clientv3.Client, ctx context.Context, ep string) error) error {
	var failed error
	for _, ep := range eps {
		if err := g.withEndpoint(ep, func(cli *clientv3.Client, ctx context.Context) error { return fn(cli, ctx, ep) }); err != nil {
			fmt.Fprintf(g.stderr, "Failed to get the %s of endpoint %s (%v)\n", what, ep, err)
			failed = err
		}
	}
	return failed
}

type epHealth struct {
	Ep     string `json:"endpoint"`
	Health bool   `json:"health"`
	Took   string `json:"took"`
	Error  string `json:"error,omitempty"`
}

func (g *globals) endpointHealth(eps []string) error {
	var results []epHealth
	for _, ep := range eps {
		h := epHealth{Ep: ep}
		err := g.withEndpoint(ep, func(cli *clientv3.Client, ctx context.Context) error {
			start := time.Now()
			// As etcdctl: a linearizable read; permission denied still
			// means the cluster answers.
			_, err := cli.Get(ctx, "health")
			if err == nil || err == rpctypes.ErrPermissionDenied {
				h.Health = true
				err = nil
			}
			h.Took = time.Since(start).String()
			if err == nil {
				resp, aerr := cli.AlarmList(ctx)
				if aerr == nil && len(resp.Alarms) > 0 {
					h.Health = false
					var as []string
					for _, a := range resp.Alarms {
						as = append(as, a.Alarm.String())
					}
					//lint:ignore ST1005 etcdctl's message, word for word
					err = fmt.Errorf("Active Alarm(s): %s", strings.Join(as, " "))
				}
			}
			return err
		})
		if err != nil {
			h.Error = err.Error()
		}
		results = append(results, h)
	}
	unhealthy := false
	switch g.writeOut {
	case formatJSON:
		printJSON(g.stdout, results)
	case formatTable:
		var rows [][]string
		for _, h := range results {
			rows = append(rows, []string{h.Ep, fmt.Sprint(h.Health), h.Took, h.Error})
		}
		tool.Render(g.stdout, []string{"endpoint", "health", "took", "error"}, rows)
	case formatFields:
		for _, h := range results {
			fmt.Fprintf(g.stdout, "\"Endpoint\" : %q\n", h.Ep)
			fmt.Fprintln(g.stdout, `"Health" :`, h.Health)
			fmt.Fprintln(g.stdout, `"Took" :`, h.Took)
			fmt.Fprintln(g.stdout, `"Error" :`, h.Error)
			fmt.Fprintln(g.stdout)
		}
	default:
		for _, h := range results {
			if h.Error == "" {
				fmt.Fprintf(g.stdout, "%s is healthy: successfully committed proposal: took = %v\n", h.Ep, h.Took)
			} else {
				fmt.Fprintf(g.stderr, "%s is unhealthy: failed to commit proposal: %v\n", h.Ep, h.Error)
			}
		}
	}
	for _, h := range results {
		unhealthy = unhealthy || !h.Health
	}
	if unhealthy {
		return tool.ExitErr{Code: tool.ExitError, Err: fmt.Errorf("unhealthy cluster")}
	}
	return nil
}

type epStatus struct {
	Ep   string             `json:"Endpoint"`
	Resp *pb.StatusResponse `json:"Status"`
}

func (g *globals) endpointStatus(eps []string) error {
	var sts []epStatus
	failed := g.eachEndpoint(eps, "status", func(cli *clientv3.Client, ctx context.Context, ep string) error {
		resp, err := cli.Status(ctx, ep)
		if err != nil {
			return err
		}
		sts = append(sts, epStatus{ep, (*pb.StatusResponse)(resp)})
		return nil
	})
	switch g.writeOut {
	case formatJSON:
		printJSON(g.stdout, sts)
	case formatTable:
		var rows [][]string
		for _, s := range sts {
			rows = append(rows, statusRow(s))
		}
		tool.Render(g.stdout, []string{"endpoint", "ID", "version", "storage version", "db size", "in use",
			"percentage not in use", "quota", "is leader", "is learner", "raft term", "raft index",
			"raft applied index", "errors", "downgrade target version", "downgrade enabled"}, rows)
	case formatFields:
		for _, s := range sts {
			r := s.Resp
			g.printHeaderFields(r.Header)
			fmt.Fprintf(g.stdout, "\"Version\" : %q\n", r.Version)
			fmt.Fprintf(g.stdout, "\"StorageVersion\" : %q\n", r.StorageVersion)
			fmt.Fprintln(g.stdout, `"DBSize" :`, r.DbSize)
			fmt.Fprintln(g.stdout, `"DBSizeInUse" :`, r.DbSizeInUse)
			fmt.Fprintln(g.stdout, `"DBSizeQuota" :`, r.DbSizeQuota)
			fmt.Fprintln(g.stdout, `"Leader" :`, r.Leader)
			fmt.Fprintln(g.stdout, `"IsLearner" :`, r.IsLearner)
			fmt.Fprintln(g.stdout, `"RaftIndex" :`, r.RaftIndex)
			fmt.Fprintln(g.stdout, `"RaftAppliedIndex" :`, r.RaftAppliedIndex)
			fmt.Fprintln(g.stdout, `"Errors" :`, r.Errors)
			fmt.Fprintf(g.stdout, "\"Endpoint\" : %q\n", s.Ep)
			target, enabled := "", false
			if r.DowngradeInfo != nil {
				target, enabled = r.DowngradeInfo.TargetVersion, r.DowngradeInfo.Enabled
			}
			fmt.Fprintf(g.stdout, "\"DowngradeTargetVersion\" : %q\n", target)
			fmt.Fprintln(g.stdout, `"DowngradeEnabled" :`, enabled)
			fmt.Fprintln(g.stdout)
		}
	default:
		for _, s := range sts {
			fmt.Fprintln(g.stdout, strings.Join(statusRow(s), ", "))
		}
	}
	return failed
}

func statusRow(s epStatus) []string {
	r := s.Resp
	notInUse := 0
	if r.DbSize > 0 {
		notInUse = int(100 - r.DbSizeInUse*100/r.DbSize)
	}
	target, enabled := "", false
	if r.DowngradeInfo != nil {
		target, enabled = r.DowngradeInfo.TargetVersion, r.DowngradeInfo.Enabled
	}
	return []string{s.Ep, fmt.Sprintf("%x", r.Header.MemberId), r.Version, r.StorageVersion,
		tool.HumanBytes(r.DbSize), tool.HumanBytes(r.DbSizeInUse), fmt.Sprintf("%d%%", notInUse), tool.HumanBytes(r.DbSizeQuota),
		fmt.Sprint(r.Leader == r.Header.MemberId), fmt.Sprint(r.IsLearner), fmt.Sprint(r.RaftTerm),
		fmt.Sprint(r.RaftIndex), fmt.Sprint(r.RaftAppliedIndex), strings.Join(r.Errors, ", "), target, fmt.Sprint(enabled)}
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/tool"
)

func newTxnCommand(g *globals) *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "txn [options]",
		Short: "Txn processes all the requests in one transaction",
		Long: `Txn reads multiple etcd requests from standard input and applies them as a single atomic transaction.

A transaction consists of three components:
1) a list of conditions,
2) a list of requests to apply if all the conditions are true,
3) a list of requests to apply if any condition is false.

Example interactive stdin usage:

---
` + g.name + ` txn -i
# compares:
mod("key1") > "0"

# success requests (get, put, delete):
put key1 "overwrote-key1"

# failure requests (get, put, delete):
put key1 "created-key1"
put key2 "some extra key"
---

Refer to https://github.com/etcd-io/etcd/blob/main/etcdctl/README.md#txn-options.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			// "txn i" is Cairn's spelling of "txn -i" (the seeds use it);
			// etcdctl refuses any argument.
			if len(args) == 1 && (args[0] == "i" || args[0] == "interactive") {
				interactive, args = true, nil
			}
			if len(args) != 0 {
				return tool.BadArgs("txn command does not accept argument")
			}
			r := bufio.NewReader(g.stdin)
			prompt := func(s string) {
				if interactive {
					fmt.Fprintln(g.stdout, s)
				}
			}
			prompt("compares:")
			cmps, err := readCompares(r)
			if err != nil {
				return err
			}
			prompt("success requests (get, put, del):")
			thenOps, err := readOps(g, r)
			if err != nil {
				return err
			}
			prompt("failure requests (get, put, del):")
			elseOps, err := readOps(g, r)
			if err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.Txn(ctx).If(cmps...).Then(thenOps...).Else(elseOps...).Commit()
				if err != nil {
					return err
				}
				return g.printTxn(resp)
			})
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Input transaction in interactive mode")
	return cmd
}

// readCompares reads compares, one a line, up to an empty line.
func readCompares(r *bufio.Reader) ([]clientv3.Cmp, error) {
	var cmps []clientv3.Cmp
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, tool.ExitErr{Code: tool.ExitInvalidInput, Err: err}
		}
		if len(strings.TrimSpace(line)) == 0 {
			return cmps, nil
		}
		cmp, err := parseCompare(strings.TrimSpace(line))
		if err != nil {
			return nil, tool.ExitErr{Code: tool.ExitInvalidInput, Err: err}
		}
		cmps = append(cmps, *cmp)
	}
}

// parseCompare reads etcdctl's compare syntax: target("key") op "value".
func parseCompare(line string) (*clientv3.Cmp, error) {
	target, rest, ok := strings.Cut(line, "(")
	if !ok {
		return nil, fmt.Errorf("malformed comparison: %s", line)
	}
	var key, op, val string
	n, serr := fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)
	if n != 3 {
		return nil, fmt.Errorf("malformed comparison: %s; got %s(%q) %s %q", line, target, key, op, val)
	}
	if serr != nil {
		return nil, fmt.Errorf("malformed comparison: %s (%v)", line, serr)
	}
	var (
		v   int64
		err error
		cmp clientv3.Cmp
	)
	switch target {
	case "ver", "version":
		if v, err = strconv.ParseInt(val, 10, 64); err == nil {
			cmp = clientv3.Compare(clientv3.Version(key), op, v)
		}
	case "c", "create":
		if v, err = strconv.ParseInt(val, 10, 64); err == nil {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), op, v)
		}
	case "m", "mod":
		if v, err = strconv.ParseInt(val, 10, 64); err == nil {
			cmp = clientv3.Compare(clientv3.ModRevision(key), op, v)
		}
	case "val", "value":
		cmp = clientv3.Compare(clientv3.Value(key), op, val)
	case "lease":
		// etcdctl passes the string on and panics ("bad value"); a lease
		// ID is read in hex, as every etcdctl lease command reads it.
		if v, err = strconv.ParseInt(val, 16, 64); err == nil {
			cmp = clientv3.Compare(clientv3.LeaseValue(key), op, clientv3.LeaseID(v))
		}
	default:
		return nil, fmt.Errorf("malformed comparison: %s (unknown target %s)", line, target)
	}
	if err != nil {
		return nil, fmt.Errorf("invalid txn compare request: %s", line)
	}
	return &cmp, nil
}

// readOps reads requests (put, get, del, with their flags), one a line,
// up to an empty line.
func readOps(g *globals, r *bufio.Reader) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, tool.ExitErr{Code: tool.ExitInvalidInput, Err: err}
		}
		if len(strings.TrimSpace(line)) == 0 {
			return ops, nil
		}
		op, err := parseRequest(g, strings.TrimSpace(line))
		var ee tool.ExitErr
		if errors.As(err, &ee) {
			return nil, err // the request's own command refused it, as etcdctl exits then
		}
		if err != nil {
			return nil, tool.ExitErr{Code: tool.ExitInvalidInput, Err: err}
		}
		ops = append(ops, op)
	}
}

// parseRequest parses one request with the put, get and del commands
// themselves, so their flags mean what they mean on the command line.
func parseRequest(g *globals, line string) (clientv3.Op, error) {
	args := argify(line)
	if len(args) < 2 {
		return clientv3.Op{}, fmt.Errorf("invalid txn compare request: %s", line)
	}
	var op *clientv3.Op
	sub := *g
	sub.capture = func(o clientv3.Op) error {
		op = &o
		return nil
	}
	sub.writeOut = formatSimple
	root := &cobra.Command{SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(newPutCommand(&sub), newGetCommand(&sub), newDelCommand(&sub))
	root.SetArgs(args)
	err := root.Execute()
	var ee tool.ExitErr
	if errors.As(err, &ee) && ee.Code == tool.ExitBadArgs {
		return clientv3.Op{}, err
	}
	if err != nil || op == nil {
		return clientv3.Op{}, fmt.Errorf("invalid txn request: %s", line)
	}
	return *op, nil
}

// argify splits a line into words, keeping double-quoted strings (Go
// syntax) and single-quoted ones (taken as they are) as one word each, as
// etcdctl 3.7 does.
func argify(s string) []string {
	var args []string
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return args
		}
		if s[0] == '\'' {
			if end := strings.IndexByte(s[1:], '\''); end >= 0 {
				args = append(args, s[1:1+end])
				s = s[2+end:]
				continue
			}
		}
		if s[0] == '"' {
			// The quoted string, with escapes, up to its closing quote.
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end < len(s) {
				if unq, err := strconv.Unquote(s[:end+1]); err == nil {
					args = append(args, unq)
					s = s[end+1:]
					continue
				}
			}
		}
		i := strings.IndexAny(s, " \t\r\n")
		if i < 0 {
			i = len(s)
		}
		args = append(args, s[:i])
		s = s[i:]
	}
}

func (g *globals) printTxn(resp *clientv3.TxnResponse) error {
	return g.display(newTxnJSON((*pb.TxnResponse)(resp)), (*pb.TxnResponse)(resp), func() { g.printTxnFields(resp) }, func() { g.printTxnSimple(resp) })
}

func (g *globals) printTxnFields(resp *clientv3.TxnResponse) {
	g.printHeaderFields(resp.Header)
	fmt.Fprintln(g.stdout, `"Succeeded" :`, resp.Succeeded)
	for _, r := range resp.Responses {
		switch v := r.Response.(type) {
		case *pb.ResponseOp_ResponseDeleteRange:
			g.printDelFields((*clientv3.DeleteResponse)(v.ResponseDeleteRange))
		case *pb.ResponseOp_ResponsePut:
			g.printPutFields((*clientv3.PutResponse)(v.ResponsePut))
		case *pb.ResponseOp_ResponseRange:
			g.printGetFields((*clientv3.GetResponse)(v.ResponseRange))
		default:
			fmt.Fprintf(g.stdout, "\"Unknown\" : %q\n", r.String())
		}
	}
}

func (g *globals) printTxnSimple(resp *clientv3.TxnResponse) {
	if resp.Succeeded {
		fmt.Fprintln(g.stdout, "SUCCESS")
	} else {
		fmt.Fprintln(g.stdout, "FAILURE")
	}
	for _, r := range resp.Responses {
		fmt.Fprintln(g.stdout, "")
		switch v := r.Response.(type) {
		case *pb.ResponseOp_ResponseDeleteRange:
			g.printDelSimple((*clientv3.DeleteResponse)(v.ResponseDeleteRange))
		case *pb.ResponseOp_ResponsePut:
			g.printPutSimple((*clientv3.PutResponse)(v.ResponsePut))
		case *pb.ResponseOp_ResponseRange:
			g.printGetSimple((*clientv3.GetResponse)(v.ResponseRange), false)
		default:
			fmt.Fprintf(g.stdout, "unexpected response %+v\n", r)
		}
	}
}

// txnJSON is a TxnResponse as etcdctl 3.7 prints it in JSON: each
// response under "Response" with its oneof field's name, as etcd 3.6's
// messages (gogoproto) had it (protobuf-go's oneof wrappers have no JSON
// names).
type txnJSON struct {
	Header    *pb.ResponseHeader `json:"header,omitempty"`
	Succeeded bool               `json:"succeeded,omitempty"`
	Responses []responseOpJSON   `json:"responses,omitempty"`
}

type responseOpJSON struct {
	Response struct {
		ResponseRange       *pb.RangeResponse       `json:"response_range,omitempty"`
		ResponsePut         *pb.PutResponse         `json:"response_put,omitempty"`
		ResponseDeleteRange *pb.DeleteRangeResponse `json:"response_delete_range,omitempty"`
		ResponseTxn         *txnJSON                `json:"response_txn,omitempty"`
	} `json:"Response"`
}

func newTxnJSON(r *pb.TxnResponse) *txnJSON {
	out := &txnJSON{Header: r.GetHeader(), Succeeded: r.GetSucceeded()}
	for _, op := range r.GetResponses() {
		var j responseOpJSON
		switch op := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			j.Response.ResponseRange = op.ResponseRange
		case *pb.ResponseOp_ResponsePut:
			j.Response.ResponsePut = op.ResponsePut
		case *pb.ResponseOp_ResponseDeleteRange:
			j.Response.ResponseDeleteRange = op.ResponseDeleteRange
		case *pb.ResponseOp_ResponseTxn:
			j.Response.ResponseTxn = newTxnJSON(op.ResponseTxn)
		}
		out.Responses = append(out.Responses, j)
	}
	return out
}

package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/tool"
)

// The output formats, etcdctl's (-w).
const (
	formatSimple   = "simple"
	formatJSON     = "json"
	formatFields   = "fields"
	formatProtobuf = "protobuf"
	formatTable    = "table"
)

// checkFormat refuses formats this build does not know, and formats a
// command does not have (table, for most), as etcdctl does.
func checkFormat(format string, table bool) error {
	switch format {
	case formatSimple, formatJSON, formatFields, formatProtobuf:
		return nil
	case formatTable:
		if table {
			return nil
		}
		return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("%s not supported as output format", format)}
	}
	return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("unsupported output format")}
}

// rpcFormatsOnly refuses fields and table for responses etcdctl prints
// only as simple, json or protobuf (member changes, move-leader,
// downgrade). etcdctl says so after the request has been carried out;
// cairnctl says the same before sending it, so that nothing changes.
func rpcFormatsOnly(format string) error {
	if format == formatFields || format == formatTable {
		return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("%s not supported as output format", format)}
	}
	return checkFormat(format, false)
}

// printJSON prints v as etcdctl does: encoding/json of the client's
// response type, on one line.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// marshaler is a response with a protobuf encoding.
type marshaler = proto.Message

// display prints a response in the chosen format: v as JSON; m's protobuf
// encoding (with no m, protobuf prints as simple, as etcdctl's printers do
// for such responses); the fields; or the simple form.
func (g *globals) display(v any, m marshaler, fields, simple func()) error {
	switch g.writeOut {
	case formatJSON:
		return printJSON(g.stdout, v)
	case formatProtobuf:
		if m != nil {
			return printProtobuf(g.stdout, m)
		}
	case formatFields:
		fields()
		return nil
	}
	simple()
	return nil
}

// printProtobuf writes the response's protobuf encoding.
func printProtobuf(w io.Writer, m marshaler) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// hexBytes is etcdctl's --hex form: \x before every byte's two digits.
func hexBytes(b []byte) string {
	h := hex.EncodeToString(b)
	var s strings.Builder
	for i := 0; i < len(h); i += 2 {
		s.WriteString(`\x`)
		s.WriteString(h[i : i+2])
	}
	return s.String()
}

// printKVSimple prints a KeyValue as etcdctl's simple format: the key
// (unless valueOnly) and the value, a line each.
func (g *globals) printKVSimple(kv *mvccpb.KeyValue, valueOnly bool) {
	k, v := string(kv.Key), string(kv.Value)
	if g.hex {
		k, v = hexBytes(kv.Key), hexBytes(kv.Value)
	}
	if !valueOnly {
		fmt.Fprintln(g.stdout, k)
	}
	fmt.Fprintln(g.stdout, v)
}

func (g *globals) printHeaderFields(h *pb.ResponseHeader) {
	if g.hex {
		fmt.Fprintf(g.stdout, "\"ClusterID\" : %x\n", h.ClusterId)
		fmt.Fprintf(g.stdout, "\"MemberID\" : %x\n", h.MemberId)
	} else {
		fmt.Fprintln(g.stdout, `"ClusterID" :`, h.ClusterId)
		fmt.Fprintln(g.stdout, `"MemberID" :`, h.MemberId)
	}
	// As etcdctl: responses outside the key-value store (the member
	// list) carry no revision, and print none.
	if h.Revision > 0 {
		fmt.Fprintln(g.stdout, `"Revision" :`, h.Revision)
	}
	fmt.Fprintln(g.stdout, `"RaftTerm" :`, h.RaftTerm)
}

// printIDField prints an ID in the fields format: decimal, or with --hex
// in hexFormat (etcdctl pads lease IDs to 16 digits, not member IDs).
func (g *globals) printIDField(name string, id uint64, hexFormat string) {
	if g.hex {
		fmt.Fprintf(g.stdout, "\"%s\" : "+hexFormat+"\n", name, id)
		return
	}
	fmt.Fprintf(g.stdout, "\"%s\" : %d\n", name, id)
}

// printKVFields prints a KeyValue as etcdctl's fields format, each field
// name after prefix ("" or "Prev").
func (g *globals) printKVFields(prefix string, kv *mvccpb.KeyValue) {
	fmt.Fprintf(g.stdout, "\"%sKey\" : %q\n", prefix, string(kv.Key))
	fmt.Fprintf(g.stdout, "\"%sCreateRevision\" : %d\n", prefix, kv.CreateRevision)
	fmt.Fprintf(g.stdout, "\"%sModRevision\" : %d\n", prefix, kv.ModRevision)
	fmt.Fprintf(g.stdout, "\"%sVersion\" : %d\n", prefix, kv.Version)
	fmt.Fprintf(g.stdout, "\"%sValue\" : %q\n", prefix, string(kv.Value))
	g.printIDField(prefix+"Lease", uint64(kv.Lease), "%016x")
}

func (g *globals) printPutSimple(resp *clientv3.PutResponse) {
	fmt.Fprintln(g.stdout, "OK")
	if resp.PrevKv != nil {
		g.printKVSimple(resp.PrevKv, false)
	}
}

func (g *globals) printPutFields(resp *clientv3.PutResponse) {
	g.printHeaderFields(resp.Header)
	if resp.PrevKv != nil {
		g.printKVFields("Prev", resp.PrevKv)
	}
}

func (g *globals) printGetSimple(resp *clientv3.GetResponse, valueOnly bool) {
	for _, kv := range resp.Kvs {
		g.printKVSimple(kv, valueOnly)
	}
}

func (g *globals) printGetFields(resp *clientv3.GetResponse) {
	g.printHeaderFields(resp.Header)
	for _, kv := range resp.Kvs {
		g.printKVFields("", kv)
	}
	fmt.Fprintln(g.stdout, `"More" :`, resp.More)
	fmt.Fprintln(g.stdout, `"Count" :`, resp.Count)
}

func (g *globals) printDelSimple(resp *clientv3.DeleteResponse) {
	fmt.Fprintln(g.stdout, resp.Deleted)
	for _, kv := range resp.PrevKvs {
		g.printKVSimple(kv, false)
	}
}

func (g *globals) printDelFields(resp *clientv3.DeleteResponse) {
	g.printHeaderFields(resp.Header)
	fmt.Fprintln(g.stdout, `"Deleted" :`, resp.Deleted)
	for _, kv := range resp.PrevKvs {
		g.printKVFields("Prev", kv)
	}
}

package v3rpc

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// A response over the limit is split into fragments of whole events, each
// under the limit (unless one event alone is not), all but the last marked
// Fragment, the events in order; under the limit, or of one event, it is
// sent whole.
func TestFragments(t *testing.T) {
	resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: 9}, WatchId: 3}
	for i := range 20 {
		resp.Events = append(resp.Events, &mvccpb.Event{Kv: &mvccpb.KeyValue{
			Key: fmt.Appendf(nil, "k%02d", i), Value: []byte(strings.Repeat("v", 100*i))}})
	}
	const limit = 2000
	parts := fragments(resp, limit)
	if len(parts) < 2 {
		t.Fatalf("%d parts", len(parts))
	}
	var keys []string
	for i, p := range parts {
		if p.Fragment != (i < len(parts)-1) {
			t.Fatalf("part %d of %d: fragment=%v", i, len(parts), p.Fragment)
		}
		if proto.Size(p) >= limit && len(p.Events) > 1 {
			t.Fatalf("part %d: %d bytes, %d events", i, proto.Size(p), len(p.Events))
		}
		if p.WatchId != 3 || p.Header.Revision != 9 {
			t.Fatalf("part %d: %v", i, p)
		}
		for _, ev := range p.Events {
			keys = append(keys, string(ev.Kv.Key))
		}
		// Maximal: the next event would not have fitted.
		if i < len(parts)-1 {
			grown := proto.CloneOf(p)
			grown.Events = append(append([]*mvccpb.Event(nil), p.Events...), parts[i+1].Events[0])
			if proto.Size(grown) < limit {
				t.Fatalf("part %d stopped early", i)
			}
		}
	}
	if len(keys) != 20 || keys[0] != "k00" || keys[19] != "k19" {
		t.Fatalf("events: %v", keys)
	}
	if parts := fragments(resp, 1<<20); len(parts) != 1 || parts[0].Fragment {
		t.Fatal("a response under the limit was split")
	}
	one := &pb.WatchResponse{Events: resp.Events[19:]}
	if parts := fragments(one, 10); len(parts) != 1 || parts[0].Fragment {
		t.Fatal("a single event was split")
	}
}

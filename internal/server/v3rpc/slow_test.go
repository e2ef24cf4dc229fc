package v3rpc

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-db/cairn/internal/server"
)

// Requests slower than --warning-apply-duration and
// --warning-unary-request-duration are logged with etcd's messages and
// fields (log alerts written for etcd depend on them), values redacted;
// faster ones are not.
func TestSlowRequestWarnings(t *testing.T) { eachServer(t, testSlowRequestWarnings) }

func testSlowRequestWarnings(t *testing.T, kind string) {
	for _, slow := range []bool{true, false} {
		limit := time.Hour
		if slow {
			limit = time.Nanosecond // every request is slow
		}
		core, logs := observer.New(zapcore.InfoLevel)
		m := startMemberOn(t, kind, func(cfg *server.Config) {
			cfg.Logger = zap.New(core)
			cfg.WarningApplyDuration, cfg.WarningUnaryRequestDuration = limit, limit
		})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		kv := pb.NewKVClient(m.conn)
		if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("secret")}); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
			t.Fatal(err)
		}
		cancel()
		m.stop(t)

		applies := logs.FilterMessage("apply request took too long").FilterLevelExact(zapcore.WarnLevel)
		stats := logs.FilterMessage("request stats").FilterLevelExact(zapcore.WarnLevel)
		if !slow {
			if n := applies.Len() + stats.Len(); n != 0 {
				t.Fatalf("%d slow-request warnings for fast requests: %v", n, append(applies.All(), stats.All()...))
			}
			continue
		}
		prefixes := map[string]bool{}
		for _, e := range applies.All() {
			f := e.ContextMap()
			prefixes[f["prefix"].(string)] = true
			if f["expected-duration"] != time.Nanosecond || f["took"] == nil || f["request"] == nil || f["response"] == nil {
				t.Fatalf("apply warning fields %v", f)
			}
			if req := f["request"].(string); len(req) == 0 || strings.Contains(req, "secret") {
				t.Fatalf("apply warning request %q: want the request, value redacted", req)
			}
		}
		if !prefixes[""] || !prefixes["read-only range "] {
			t.Fatalf("apply warnings with prefixes %v, want the put's (\"\") and the range's (\"read-only range \")", prefixes)
		}
		methods := map[string]bool{}
		for _, e := range stats.All() {
			f := e.ContextMap()
			methods[f["response type"].(string)] = true
			for _, k := range []string{"start time", "time spent", "remote", "request count", "request size",
				"response count", "response size", "request content"} {
				if _, ok := f[k]; !ok {
					t.Fatalf("request stats without %q: %v", k, f)
				}
			}
			if strings.Contains(f["request content"].(string), "secret") {
				t.Fatalf("request stats show the value: %v", f)
			}
		}
		if !methods["/etcdserverpb.KV/Put"] || !methods["/etcdserverpb.KV/Range"] {
			t.Fatalf("request stats for %v, want Put and Range", methods)
		}
	}
}

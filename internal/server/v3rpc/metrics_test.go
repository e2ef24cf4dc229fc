package v3rpc

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/internal/server"
)

// family gathers reg and returns the family name, or nil.
func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// labelled returns the series of mf whose labels include labels.
func labelled(mf *dto.MetricFamily, labels map[string]string) *dto.Metric {
	for _, m := range mf.GetMetric() {
		n := 0
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
				n++
			}
		}
		if n == len(labels) {
			return m
		}
	}
	return nil
}

// etcd's --metrics=extensive adds the gRPC handling-time histograms; basic
// has none.
func TestHandlingTimeOnlyWhenExtensive(t *testing.T) {
	for _, level := range []string{"basic", "extensive"} {
		t.Run(level, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := startMemberWith(t, func(cfg *server.Config) { cfg.Metrics, cfg.Registry = level, reg })
			kv := pb.NewKVClient(m.conn)
			for range 3 {
				if _, err := kv.Put(context.Background(), &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
					t.Fatal(err)
				}
			}
			mf := family(t, reg, "grpc_server_handling_seconds")
			if level == "basic" {
				if mf != nil {
					t.Fatal("grpc_server_handling_seconds exported at basic")
				}
				return
			}
			if mf == nil {
				t.Fatal("no grpc_server_handling_seconds at extensive")
			}
			put := labelled(mf, map[string]string{"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary"})
			if put == nil || put.GetHistogram().GetSampleCount() != 3 {
				t.Errorf("Put's handling time: %v, want 3 observations", put)
			}
			watch := labelled(mf, map[string]string{"grpc_method": "Watch", "grpc_type": "bidi_stream"})
			if watch == nil || watch.GetHistogram().GetSampleCount() != 0 {
				t.Errorf("Watch's handling time: %v, want a series at 0 before any call", watch)
			}
		})
	}
}

// A call's code is counted as the client gets it, and the client's API
// version as it sent it (etcd_server_client_requests_total).
func TestHandledCodesAndClientVersions(t *testing.T) {
	eachServer(t, testHandledCodesAndClientVersions)
}

func testHandledCodesAndClientVersions(t *testing.T, kind string) {
	reg := prometheus.NewRegistry()
	m := startMemberOn(t, kind, func(cfg *server.Config) { cfg.Registry = reg })
	kv := pb.NewKVClient(m.conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), rpctypes.MetadataClientAPIVersionKey, "3.5")
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: 100}); err == nil {
		t.Fatal("a range at a future revision succeeded")
	}
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	handled := family(t, reg, "grpc_server_handled_total")
	for code, want := range map[string]float64{"OK": 1, "OutOfRange": 1, "Unavailable": 0} {
		s := labelled(handled, map[string]string{"grpc_method": "Range", "grpc_code": code})
		if s == nil || s.GetCounter().GetValue() != want {
			t.Errorf("Range handled with %s: %v, want %v", code, s, want)
		}
	}
	clients := family(t, reg, "etcd_server_client_requests_total")
	if s := labelled(clients, map[string]string{"type": "unary", "client_api_version": "3.5"}); s == nil || s.GetCounter().GetValue() != 2 {
		t.Errorf("unary requests of version 3.5: %v, want 2", s)
	}
}

// BenchmarkUnaryInterceptor is what the client API's interceptor (gRPC
// metrics, client version, leader guard) costs a unary call from a
// clientv3 client, which sends its API version.
func BenchmarkUnaryInterceptor(b *testing.B) {
	m := startMemberWith(b, nil)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(rpctypes.MetadataClientAPIVersionKey, "3.6"))
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		m.svc.unary(ctx, nil, info, handler)
	}
}

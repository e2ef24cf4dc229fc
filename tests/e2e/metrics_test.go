package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/version"
)

// etcdMetricNames reads testdata/etcd-3.7.3-metrics.txt: etcd 3.7.3's own
// list of the series a member exports, by section.
func etcdMetricNames(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("testdata/etcd-3.7.3-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			names[section] = append(names[section], line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names["basic"]) < 100 || len(names["multi-member"]) == 0 || len(names["extensive"]) == 0 {
		t.Fatalf("testdata list looks truncated: %d basic, %d multi-member, %d extensive",
			len(names["basic"]), len(names["multi-member"]), len(names["extensive"]))
	}
	return names
}

// scrape is one parse of a member's /metrics.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, m *member) scrape {
	t.Helper()
	code, body, _ := httpGet(t, m.clientURL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics of %s: %d %q", m.name, code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics of %s does not parse: %v", m.name, err)
	}
	return mfs
}

// value is the value of the series of name whose labels include labels
// (name=value pairs), and whether there is one; a histogram's is its
// count. With several matching series, their sum.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	mf, ok := s[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
series:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			match := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					match = true
				}
			}
			if !match {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

// atLeast checks that the series (see value) exists and is at least min.
func (s scrape) atLeast(t *testing.T, min float64, name string, labels ...string) {
	t.Helper()
	v, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
	} else if v < min {
		t.Errorf("%s%v = %v, want at least %v", name, labels, v, min)
	}
}

// equal checks that the series (see value) exists and is want.
func (s scrape) equal(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	v, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
	} else if v != want {
		t.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
}

// A member exports every series etcd 3.7.3's own test expects of an etcd
// member (so that dashboards and alerts written for etcd find them), and
// the counters count what the member did: puts, ranges, txns, deletes,
// watch events, leases, bytes in and out, per gRPC method and code.
func TestMetricsAsEtcd(t *testing.T) {
	names := etcdMetricNames(t)
	for _, tc := range []struct {
		name      string
		members   int
		extensive bool
	}{
		{"one member", 1, false},
		{"three members", 3, false},
		{"one member extensive", 1, true},
		{"three members extensive", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Snapshots every 5 entries, so that their series move too.
			extra := []string{"--snapshot-count", "5"}
			if tc.extensive {
				extra = append(extra, "--metrics=extensive")
			}
			c := newCluster(t, tc.members, extra...)
			m := c.members[0]
			cli := m.client()
			counts := runMetricsWorkload(t, cli)

			want := names["basic"]
			if tc.members > 1 {
				want = append(want, names["multi-member"]...)
			}
			if tc.extensive {
				want = append(want, names["extensive"]...)
			}
			s := scrapeMetrics(t, m)
			var missing []string
			for _, n := range want {
				if _, ok := s[n]; !ok {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				t.Errorf("missing %d of etcd 3.7.3's series: %v", len(missing), missing)
			}
			checkWorkloadCounted(t, s, counts)
			if tc.members == 1 {
				// The keep-alive reached the leader: this member.
				s.atLeast(t, 1, "etcd_debugging_lease_renewed_total")
			}
			if tc.extensive {
				s.atLeast(t, float64(counts.puts-counts.txns), "grpc_server_handling_seconds", "grpc_method", "Put")
			} else if _, ok := s["grpc_server_handling_seconds"]; ok {
				t.Error("grpc_server_handling_seconds without --metrics=extensive (etcd exports it only then)")
			}
			if tc.members > 1 {
				checkPeerMetrics(t, c, s)
			}
		})
	}
}

// workloadCounts are what runMetricsWorkload did through one member.
type workloadCounts struct {
	puts, gets, txns, deletes, watchEvents int
	liveKeys                               int
	// compacted is the revision compacted at the end.
	compacted int64
}

// runMetricsWorkload makes puts, ranges, a txn, a delete, a watch, a
// lease's life and a compaction through cli.
func runMetricsWorkload(t *testing.T, cli *clientv3.Client) workloadCounts {
	t.Helper()
	ctx := ctxT(t)
	var n workloadCounts
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("key_%d", i), fmt.Sprintf("value_%d", i)); err != nil {
			t.Fatal(err)
		}
		n.puts++
	}
	for range 3 {
		if _, err := cli.Get(ctx, "key_0"); err != nil {
			t.Fatal(err)
		}
		n.gets++
	}
	// A compare (a range), a put and a get: a txn of three operations.
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("key_0"), "=", "value_0")).
		Then(clientv3.OpPut("key_txn", "v"), clientv3.OpGet("key_1")).Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("txn: %v %v", resp, err)
	}
	n.txns++
	n.puts++
	if _, err := cli.Delete(ctx, "key_4"); err != nil {
		t.Fatal(err)
	}
	n.deletes++
	n.liveKeys = 5 // key_0..3, key_txn

	// A watch from revision 1 sees every change so far; then the client
	// cancels it, which etcd counts as a Watch handled with Canceled.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, "key_", clientv3.WithPrefix(), clientv3.WithRev(1))
	want := n.puts + n.deletes // every key written is under key_
	deadline := time.After(waitDeadline)
	for n.watchEvents < want {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			n.watchEvents += len(wr.Events)
		case <-deadline:
			t.Fatalf("watch saw %d events of %d", n.watchEvents, want)
		}
	}
	cancel()

	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	get, err := cli.Get(ctx, "key_0")
	if err != nil {
		t.Fatal(err)
	}
	n.gets++
	n.compacted = get.Header.Revision
	// Physical: it returns once the compacted revisions are removed.
	if _, err := cli.Compact(ctx, n.compacted, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkWorkloadCounted checks that the member's counters moved with the
// workload (other requests, such as the client's own or health checks,
// may add to them).
func checkWorkloadCounted(t *testing.T, s scrape, n workloadCounts) {
	t.Helper()
	s.atLeast(t, float64(n.puts), "etcd_mvcc_put_total")
	// Each get, and the txn's compare and get.
	s.atLeast(t, float64(n.gets+2), "etcd_mvcc_range_total")
	s.atLeast(t, float64(n.deletes), "etcd_mvcc_delete_total")
	s.atLeast(t, float64(n.txns), "etcd_mvcc_txn_total")
	s.equal(t, float64(n.liveKeys), "etcd_debugging_mvcc_keys_total")
	s.atLeast(t, float64(n.watchEvents), "etcd_debugging_mvcc_events_total")
	s.atLeast(t, float64(5*len("key_0value_0")), "etcd_debugging_mvcc_total_put_size_in_bytes")
	// Revision 1 is the empty store's; each put, the txn, the delete add one.
	s.equal(t, float64(1+n.puts+n.deletes), "etcd_debugging_mvcc_current_revision")
	s.equal(t, float64(n.compacted), "etcd_debugging_mvcc_compact_revision")
	s.atLeast(t, 1, "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds")
	s.atLeast(t, 1, "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds")
	s.atLeast(t, 1, "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds")
	// At least key_4's put (its delete, at the compaction revision, stays).
	s.atLeast(t, 1, "etcd_debugging_mvcc_db_compaction_keys_total")
	s.atLeast(t, float64(time.Now().Add(-time.Hour).Unix()), "etcd_debugging_mvcc_db_compaction_last")
	s.atLeast(t, 1, "etcd_debugging_snap_save_total_duration_seconds")
	s.atLeast(t, 1, "etcd_debugging_snap_save_marshalling_duration_seconds")
	s.atLeast(t, 1, "etcd_snap_fsync_duration_seconds")

	s.atLeast(t, float64(n.puts-1), "grpc_server_handled_total", "grpc_method", "Put", "grpc_code", "OK")
	s.atLeast(t, float64(n.gets), "grpc_server_handled_total", "grpc_method", "Range", "grpc_code", "OK")
	s.atLeast(t, 1, "grpc_server_handled_total", "grpc_method", "Txn", "grpc_code", "OK")
	s.atLeast(t, float64(n.gets), "grpc_server_started_total", "grpc_method", "Range", "grpc_type", "unary")
	s.atLeast(t, 1, "grpc_server_msg_received_total", "grpc_method", "Watch", "grpc_type", "bidi_stream")
	s.atLeast(t, 2, "grpc_server_msg_sent_total", "grpc_method", "Watch", "grpc_type", "bidi_stream")
	// Every method's series exist before any call, as etcd's.
	s.equal(t, 0, "grpc_server_handled_total", "grpc_method", "Compact", "grpc_code", "DataLoss",
		"grpc_service", "etcdserverpb.KV", "grpc_type", "unary")
	s.atLeast(t, float64(n.puts), "etcd_server_client_requests_total", "type", "unary")
	s.atLeast(t, 1, "etcd_server_client_requests_total", "type", "stream")
	s.atLeast(t, 100, "etcd_network_client_grpc_received_bytes_total")
	s.atLeast(t, 100, "etcd_network_client_grpc_sent_bytes_total")

	// The txn's put is a Txn request.
	s.atLeast(t, float64(n.puts-n.txns), "etcd_server_request_duration_seconds", "type", "Put", "success", "true")
	s.atLeast(t, float64(n.txns), "etcd_server_request_duration_seconds", "type", "Txn", "success", "true")
	s.atLeast(t, float64(n.gets), "etcd_server_range_duration_seconds", "success", "true")
	s.atLeast(t, float64(n.puts-n.txns), "etcd_server_apply_duration_seconds", "op", "Put", "success", "true", "version", "v3")
	s.atLeast(t, float64(n.puts), "etcd_disk_backend_commit_duration_seconds")
	s.atLeast(t, 1, "etcd_disk_wal_fsync_duration_seconds")
	s.atLeast(t, float64(n.puts), "etcd_disk_wal_write_duration_seconds")
	s.atLeast(t, float64(n.puts*len("key_0value_0")), "etcd_disk_wal_write_bytes_total")
	s.atLeast(t, 1, "etcd_debugging_lease_granted_total")
	s.atLeast(t, 1, "etcd_debugging_lease_revoked_total")
	s.atLeast(t, 1, "etcd_debugging_lease_ttl_total")
	s.atLeast(t, float64(n.puts+n.deletes+n.txns), "etcd_server_proposals_committed_total")
	s.atLeast(t, float64(n.puts+n.deletes+n.txns), "etcd_server_proposals_applied_total")
	s.equal(t, 2<<30, "etcd_server_quota_backend_bytes")
	s.equal(t, 1, "etcd_server_version", "server_version", version.Etcd)
	s.equal(t, 1, "etcd_server_has_leader")
	used, _ := s.value("os_fd_used")
	limit, _ := s.value("os_fd_limit")
	if used < 5 || used > limit {
		t.Errorf("os_fd_used = %v, os_fd_limit = %v: a member has its WAL, database and listeners open", used, limit)
	}
}

// checkPeerMetrics checks the peer transport's series of the first member:
// every member known, each peer's stream active, bytes both ways with the
// leader (followers do not talk to each other).
func checkPeerMetrics(t *testing.T, c *cluster, s scrape) {
	t.Helper()
	ids := map[string]string{} // name -> hex member ID
	var lead string
	for _, m := range c.members {
		st, err := memberStatus(m)
		if err != nil {
			t.Fatal(err)
		}
		ids[m.name] = strconv.FormatUint(st.Header.MemberId, 16)
		lead = strconv.FormatUint(st.Leader, 16)
	}
	local := ids[c.members[0].name]
	s.equal(t, 1, "etcd_server_id", "server_id", local)
	for _, m := range c.members {
		s.equal(t, 1, "etcd_network_known_peers", "Local", local, "Remote", ids[m.name])
		if m == c.members[0] {
			continue
		}
		s.equal(t, 1, "etcd_network_active_peers", "Local", local, "Remote", ids[m.name])
		if ids[m.name] == lead || local == lead {
			s.atLeast(t, 1, "etcd_network_peer_sent_bytes_total", "To", ids[m.name])
			s.atLeast(t, 1, "etcd_network_peer_received_bytes_total", "From", ids[m.name])
		}
	}
}

// Series that count events later than the request that causes them: the
// end of a cancelled watch stream, a lease's expiry, the handler's own
// requests, health checks.
func TestMetricsCountLaterEvents(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	cli := m.client()
	ctx := ctxT(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// The shortest TTL: it expires within seconds.
	if _, err := cli.Grant(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, "k", clientv3.WithRev(1))
	if wr := <-wch; len(wr.Events) != 1 {
		t.Fatalf("watch: %+v", wr)
	}
	cancel()
	before := scrapeMetrics(t, m)
	if code, _, _ := httpGet(t, m.clientURL+"/health"); code != 200 {
		t.Fatalf("/health: %d", code)
	}
	deadline := time.Now().Add(waitDeadline)
	for {
		s := scrapeMetrics(t, m)
		canceled, _ := s.value("grpc_server_handled_total", "grpc_method", "Watch", "grpc_code", "Canceled")
		expired, _ := s.value("etcd_debugging_server_lease_expired_total")
		if canceled >= 1 && expired >= 1 {
			// One scrape gathers its collectors one after another,
			// so the revoke applied (counted by the lessor) may
			// land between them; it is counted before the expiry
			// is, so a later scrape sees it.
			scrapeMetrics(t, m).atLeast(t, 1, "etcd_debugging_lease_revoked_total")
			served0, _ := before.value("promhttp_metric_handler_requests_total", "code", "200")
			served1, _ := s.value("promhttp_metric_handler_requests_total", "code", "200")
			if served1 <= served0 {
				t.Errorf("promhttp_metric_handler_requests_total{code=200}: %v then %v", served0, served1)
			}
			h0, _ := before.value("etcd_server_health_success")
			h1, _ := s.value("etcd_server_health_success")
			if h1 < h0+1 {
				t.Errorf("etcd_server_health_success: %v then %v after a GET /health", h0, h1)
			}
			s.equal(t, 0, "etcd_debugging_mvcc_watch_stream_total")
			s.equal(t, 0, "etcd_debugging_mvcc_pending_events_total")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the client cancelled its watch and its lease's TTL: %v Watch handled with Canceled, %v leases expired",
				canceled, expired)
		}
		time.Sleep(50 * time.Millisecond) // polling a process's metrics
	}
}

// /debug/vars serves Go's expvar variables as etcd does: the command line,
// the memory statistics, the descriptor limit and raft's status.
func TestDebugVars(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	code, body, h := httpGet(t, m.clientURL+"/debug/vars")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("/debug/vars: %d %v %q", code, h, body)
	}
	var vars struct {
		Cmdline  []string       `json:"cmdline"`
		Memstats map[string]any `json:"memstats"`
		FDLimit  uint64         `json:"file_descriptor_limit"`
		Raft     struct {
			ID        string `json:"id"`
			Lead      string `json:"lead"`
			RaftState string `json:"raftState"`
			Commit    uint64 `json:"commit"`
		} `json:"raft.status"`
	}
	if err := json.Unmarshal([]byte(body), &vars); err != nil {
		t.Fatalf("/debug/vars is not JSON: %v\n%s", err, body)
	}
	if len(vars.Cmdline) < 2 || vars.Cmdline[0] != cairnBinary || !strings.Contains(strings.Join(vars.Cmdline, " "), "--name m0") {
		t.Errorf("cmdline: %q", vars.Cmdline)
	}
	if _, ok := vars.Memstats["HeapAlloc"]; !ok {
		t.Errorf("memstats: %v", vars.Memstats)
	}
	if vars.FDLimit == 0 {
		t.Error("file_descriptor_limit is 0")
	}
	st, err := memberStatus(m)
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(st.Header.MemberId, 16)
	if vars.Raft.ID != id || vars.Raft.Lead != id || vars.Raft.RaftState != "StateLeader" || vars.Raft.Commit == 0 {
		t.Errorf("raft.status: %+v, want the leader %s", vars.Raft, id)
	}
}

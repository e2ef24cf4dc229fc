package e2e

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpGet GETs url and returns the status, body and headers.
func httpGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	return httpGetWith(t, &http.Client{Timeout: waitDeadline}, url)
}

// httpGetWith is httpGet through cl (a TLS client, say).
func httpGetWith(t *testing.T, cl *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// The client URL's HTTP endpoints answer in etcd's formats, so probes and
// dashboards written for etcd work.
func TestHTTPEndpoints(t *testing.T) {
	c := newCluster(t, 1)
	u := c.members[0].clientURL
	if code, body, _ := httpGet(t, u+"/health"); code != 200 || body != `{"health":"true","reason":""}` {
		t.Errorf("/health: %d %q", code, body)
	}
	if code, body, _ := httpGet(t, u+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
	code, body, h := httpGet(t, u+"/readyz?verbose")
	if code != 200 || !strings.HasSuffix(body, "ok\n") || !strings.Contains(body, "[+]linearizable_read ok\n") ||
		h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("/readyz?verbose: %d %q %v", code, body, h)
	}
	// Exactly what a stock etcd 3.7.3 answers.
	if code, body, _ := httpGet(t, u+"/version"); code != 200 || body != `{"etcdserver":"3.7.3","etcdcluster":"3.7.0","storage":"3.7.0"}` {
		t.Errorf("/version: %d %q", code, body)
	}
	if _, err := c.members[0].client().Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	_, metrics, _ := httpGet(t, u+"/metrics")
	for _, series := range []string{
		"etcd_server_has_leader 1", "etcd_server_leader_changes_seen_total 1", "etcd_server_proposals_committed_total",
		"etcd_disk_wal_fsync_duration_seconds_bucket", "etcd_disk_backend_commit_duration_seconds_bucket",
		"etcd_mvcc_db_total_size_in_bytes",
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %q", series)
		}
	}
}

// /health on a member that lost its quorum says so, as etcd does.
func TestHealthWithoutLeader(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	survivor := c.members[(lead+1)%3]
	for i, m := range c.members {
		if i != (lead+1)%3 {
			m.kill()
		}
	}
	deadline := time.Now().Add(waitDeadline)
	for {
		code, body, _ := httpGet(t, survivor.clientURL+"/health")
		if code == 503 && body == "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health without a quorum: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond) // polling until the member notices
	}
	if code, body, _ := httpGet(t, survivor.clientURL+"/health?serializable=true"); code != 200 {
		t.Errorf("/health?serializable=true without a leader: %d %q (etcd serves it locally)", code, body)
	}
}

// A member of another cluster (same addresses, another token) is refused
// by its peers, with a log line naming both clusters, and never joins.
func TestForeignClusterRejected(t *testing.T) {
	c := newCluster(t, 3)
	lead := c.waitLeader()
	victim := c.members[(lead+1)%3]
	victim.kill()
	os.RemoveAll(victim.dataDir)
	for i, a := range victim.args {
		if a == "--initial-cluster-token" {
			victim.args[i+1] = "another-cluster"
		}
	}
	victim.start()
	other := c.members[lead]
	deadline := time.Now().Add(waitDeadline)
	for {
		data, _ := os.ReadFile(other.logPath)
		if strings.Contains(string(data), "rejected peer stream from another cluster") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rejection logged by %s", other.name)
		}
		time.Sleep(100 * time.Millisecond) // polling a log file
	}
	// The cluster goes on with its two members.
	if _, err := other.client().Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	st, err := memberStatus(victim)
	if err == nil && st.Leader != 0 {
		t.Fatalf("the foreign member found a leader: %+v", st)
	}
}

// A member over its quota is unhealthy (/health names the NOSPACE alarm)
// but alive and ready: /readyz's data_corruption check fails on a CORRUPT
// alarm only, as etcd's (its TestHTTPLivezReadyzHandler checks this), so a
// load balancer keeps sending it the deletes and compactions that free
// space.
func TestHTTPEndpointsOverQuota(t *testing.T) {
	c := newCluster(t, 1, "--quota-backend-bytes", "1048576")
	u := c.members[0].clientURL
	cli := c.members[0].client()
	value := strings.Repeat("v", 64<<10)
	deadline := time.Now().Add(waitDeadline)
	for i := 0; ; i++ {
		_, err := cli.Put(ctxT(t), "fill"+strconv.Itoa(i), value)
		if err != nil {
			if !strings.Contains(err.Error(), "database space exceeded") {
				t.Fatalf("put %d: %v, want database space exceeded", i, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still under a 1 MiB quota after %d puts of 64 KiB", i)
		}
	}
	if code, body, _ := httpGet(t, u+"/health"); code != 503 || body != `{"health":"false","reason":"ALARM NOSPACE"}`+"\n" {
		t.Errorf("/health over quota: %d %q", code, body)
	}
	if code, body, _ := httpGet(t, u+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez over quota: %d %q", code, body)
	}
	if code, body, _ := httpGet(t, u+"/readyz?verbose"); code != 200 || !strings.Contains(body, "[+]data_corruption ok\n") {
		t.Errorf("/readyz?verbose over quota: %d %q", code, body)
	}
}

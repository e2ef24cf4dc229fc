package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// dashboardRow is one member as the dashboard's Cluster page shows it.
type dashboardRow struct {
	Member, Role, Health string
}

// dashboardRows reads the Cluster page's member table.
func dashboardRows(b *browser) []dashboardRow {
	var rows []dashboardRow
	b.script(`return [...document.querySelectorAll('#members tbody tr')].map(r =>
		({Member: r.dataset.member, Role: r.dataset.role, Health: r.dataset.health}))`, &rows)
	return rows
}

// waitDashboard waits until the page's member table satisfies ok.
func waitDashboard(t *testing.T, b *browser, what string, ok func([]dashboardRow) bool) []dashboardRow {
	t.Helper()
	deadline := time.Now().Add(failoverDeadline)
	for {
		rows := dashboardRows(b)
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard did not show %s within %v: %+v", what, failoverDeadline, rows)
		}
		time.Sleep(100 * time.Millisecond) // polling a page that refreshes every second
	}
}

// The dashboard in a real browser (headless Chromium): served at /ui/ on a
// loopback client URL, its Cluster page lists the three members with the
// leader everyone agrees on; once the leader is SIGKILLed, the page (served
// by a follower) shows it unreachable and the new leader.
// CAIRN_DASHBOARD_SCREENSHOTS=dir saves the pages as PNGs
// (scripts/dashboard-screenshots.sh).
func TestDashboard(t *testing.T) {
	b := startBrowser(t)
	shots := os.Getenv("CAIRN_DASHBOARD_SCREENSHOTS")
	c := newCluster(t, 3)
	lead := c.waitLeader()
	page := c.members[(lead+1)%3]
	b.open(page.clientURL + "/ui/")

	leaderIs := func(name string) func([]dashboardRow) bool {
		return func(rows []dashboardRow) bool {
			leaders := 0
			for _, r := range rows {
				if r.Role == "leader" {
					leaders++
				}
				if r.Role == "leader" && r.Member != name {
					return false
				}
			}
			return len(rows) == 3 && leaders == 1
		}
	}
	rows := waitDashboard(t, b, "three healthy members led by "+c.members[lead].name, func(rows []dashboardRow) bool {
		for _, r := range rows {
			if r.Health != "healthy" {
				return false
			}
		}
		return leaderIs(c.members[lead].name)(rows)
	})
	names := []string{rows[0].Member, rows[1].Member, rows[2].Member}
	slices.Sort(names)
	if !slices.Equal(names, []string{"m0", "m1", "m2"}) {
		t.Fatalf("the dashboard lists %v", names)
	}
	var title string
	b.script(`return document.title`, &title)
	if title != "Cairn" {
		t.Fatalf("page title %q", title)
	}
	b.screenshot(shots, "cluster.png")

	old := c.members[lead]
	old.kill()
	newLead := c.waitLeader()
	waitDashboard(t, b, fmt.Sprintf("%s unreachable and %s leading", old.name, c.members[newLead].name), func(rows []dashboardRow) bool {
		for _, r := range rows {
			if r.Member == old.name && r.Health != "unreachable" {
				return false
			}
		}
		return leaderIs(c.members[newLead].name)(rows)
	})
	b.screenshot(shots, "cluster-leader-killed.png")
}

// --dashboard: served by default on loopback client URLs, with the
// page's files and headers; off when asked.
func TestDashboardFlag(t *testing.T) {
	get := func(url string) (int, string, http.Header) {
		t.Helper()
		resp, err := (&http.Client{Timeout: commandDeadline}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	on := newCluster(t, 1).members[0]
	code, body, h := get(on.clientURL + "/ui/")
	if code != 200 || !strings.Contains(body, `<script src="app.js" defer></script>`) ||
		!strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("/ui/: %d %q %v", code, body, h)
	}
	if code, body, _ := get(on.clientURL + "/ui/app.js"); code != 200 || !strings.Contains(body, "/v3/cluster/member/list") {
		t.Fatalf("/ui/app.js: %d, %d bytes", code, len(body))
	}
	off := newCluster(t, 1, "--dashboard", "off").members[0]
	if code, _, _ := get(off.clientURL + "/ui/"); code != 404 {
		t.Fatalf("/ui/ with --dashboard off: %d", code)
	}
}

// With auth enabled, the page asks for a user and password, shows the
// error of a wrong password, and with root's shows the cluster.
func TestDashboardSignIn(t *testing.T) {
	b := startBrowser(t)
	c := newCluster(t, 1)
	m := c.members[0]
	authSetup(t, m.client())
	c.signIn()
	b.open(m.clientURL + "/ui/")
	b.waitTrue("the sign-in form", `return !document.getElementById('login').hidden && document.getElementById('cluster').hidden`)
	signIn := func(password string) {
		var done bool
		b.script(`const f = document.getElementById('login-form'); f.name.value = 'root'; f.password.value = '`+password+`';
			f.requestSubmit(); return true`, &done)
	}
	signIn("wrong")
	b.waitTrue("the sign-in error", `return document.getElementById('login-error').textContent.includes('authentication failed')`)
	signIn("pw")
	rows := waitDashboard(t, b, "the member, signed in", func(rows []dashboardRow) bool {
		return len(rows) == 1 && rows[0].Role == "leader" && rows[0].Health == "healthy"
	})
	if rows[0].Member != "m0" {
		t.Fatalf("rows %+v", rows)
	}
}

// The Keys, Leases and Load pages, against 3 members (the page served by
// m0, whatever its role): a key put through the page (after its
// confirmation) shows in the page's watch and in the store; the browser
// lists it, shows its value as JSON and its history (cut short, and saying
// so, once compacted); the page deletes it;
// a lease with a key shows with its key count and the page revokes it; the
// load charts fill from the member's metrics.
func TestDashboardKeysLeasesLoad(t *testing.T) {
	b := startBrowser(t)
	shots := os.Getenv("CAIRN_DASHBOARD_SCREENSHOTS")
	c := newCluster(t, 3)
	m := c.members[0]
	cli := c.client()
	b.open(m.clientURL + "/ui/#keys")

	b.script(`const f = document.getElementById('watch-form'); f.prefix.value = 'dash/'; f.requestSubmit(); return true`, nil)
	b.waitTrue("the watch started", `return document.getElementById('watch-state').textContent.startsWith('watching from revision')`)
	b.script(`const f = document.getElementById('put-form'); f.key.value = 'dash/config'; f.value.value = '{"replicas":3,"image":"app:v1"}';
		setTimeout(() => f.requestSubmit(), 0); return true`, nil)
	b.acceptConfirm()
	b.waitTrue("the put in the watch", `return [...document.querySelectorAll('#watch-events tbody tr')].some(r =>
		r.dataset.event === 'PUT' && r.children[2].textContent === 'dash/config')`)
	if resp, err := cli.Get(ctxT(t), "dash/config"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"replicas":3,"image":"app:v1"}` {
		t.Fatalf("the key put through the page: %v %v", resp, err)
	}
	if _, err := cli.Put(ctxT(t), "dash/config", `{"replicas":5,"image":"app:v2"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctxT(t), "other", "x"); err != nil {
		t.Fatal(err)
	}

	b.script(`const f = document.getElementById('browse-form'); f.prefix.value = 'dash/'; f.requestSubmit(); return true`, nil)
	b.waitTrue("the key list", `const rows = [...document.querySelectorAll('#key-list tbody tr')];
		return rows.length === 1 && rows[0].dataset.key === 'dash/config' && document.getElementById('key-count').textContent.startsWith('1 keys')`)
	b.script(`document.querySelector('#key-list tbody tr a').click(); return true`, nil)
	b.waitTrue("the key's history", `return document.querySelectorAll('#key-history tbody tr').length === 3`)
	b.script(`[...document.querySelectorAll('#key-detail button')].find(x => x.textContent === 'JSON').click(); return true`, nil)
	var view string
	b.script(`return document.getElementById('value-view').textContent`, &view)
	if view != "{\n  \"replicas\": 5,\n  \"image\": \"app:v2\"\n}" {
		t.Fatalf("the JSON view: %q", view)
	}
	var history []string
	b.script(`return [...document.querySelectorAll('#key-history tbody tr')].map(r => r.textContent)`, &history)
	if !strings.Contains(history[0], `"replicas":5`) || !strings.Contains(history[1], `"replicas":3`) || !strings.Contains(history[2], "created at revision") {
		t.Fatalf("the history: %q", history)
	}
	b.screenshot(shots, "keys.png")
	// Compacted at the key's last change: the history stops there, and says so.
	cur, err := cli.Get(ctxT(t), "dash/config")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctxT(t), cur.Kvs[0].ModRevision); err != nil {
		t.Fatal(err)
	}
	b.script(`document.querySelector('#key-list tbody tr a').click(); return true`, nil)
	b.waitTrue("the history cut by the compaction", `const rows = [...document.querySelectorAll('#key-history tbody tr')];
		return rows.length === 2 && rows[1].textContent === 'older revisions are compacted'`)
	b.script(`setTimeout(() => [...document.querySelectorAll('#key-detail button')].find(x => x.textContent === 'Delete').click(), 0); return true`, nil)
	b.acceptConfirm()
	b.waitTrue("the delete", `return document.getElementById('key-detail').textContent.includes('deleted at revision')`)
	if resp, err := cli.Get(ctxT(t), "dash/config"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the key the page deleted: %v %v", resp, err)
	}

	lease, err := cli.Grant(ctxT(t), 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctxT(t), "dash/leased", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	b.open(m.clientURL + "/ui/#leases")
	id := fmt.Sprintf("%x", lease.ID)
	b.waitTrue("the lease", `const r = document.querySelector('#lease-list tbody tr[data-lease="`+id+`"]');
		return r !== null && r.children[3].textContent === '1' && Number(r.children[1].textContent) > 500`)
	b.screenshot(shots, "leases.png")
	b.script(`setTimeout(() => document.querySelector('#lease-list tbody tr[data-lease="`+id+`"] button').click(), 0); return true`, nil)
	b.acceptConfirm()
	b.waitTrue("the lease gone", `return document.querySelector('#lease-list tbody tr[data-lease="`+id+`"]') === null`)
	if resp, err := cli.Get(ctxT(t), "dash/leased"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the revoked lease's key: %v %v", resp, err)
	}

	b.open(m.clientURL + "/ui/#load")
	// Requests for the charts to count, until a sample shows them, with
	// their latency.
	loaded := `const v = (name) => { const f = document.querySelector('figure[data-chart="' + name + '"] .current');
		return f === null ? NaN : Number(f.textContent); };
		return v('requests/s') > 0 && v('p99 latency, ms (bucket bound)') > 0 && v('watchers') >= 0 && v('leases') === 0 &&
			document.querySelector('figure[data-chart="requests/s"]').dataset.points >= 3`
	deadline := time.Now().Add(waitDeadline)
	for i := 0; ; i++ {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("load/%d", i%100), "v"); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if i%20 == 0 {
			b.script(loaded, &ok)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the load charts show no requests after %d puts in %v", i+1, waitDeadline)
		}
	}
	b.screenshot(shots, "load.png")
}

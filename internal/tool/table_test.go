package tool

import (
	"strings"
	"testing"
)

// TestRenderTable holds Render to tables etcdctl 3.7.3 printed
// (against a cairn): a member list, and an endpoint hashkv whose every
// request failed (no rows: no rule under the header). It runs without a
// stock etcdctl, which tests/diff needs.
func TestRenderTable(t *testing.T) {
	for _, tc := range []struct {
		header []string
		rows   [][]string
		want   string
	}{{
		header: []string{"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"},
		rows:   [][]string{{"4e95e8bf5c055843", "started", "d", "http://127.0.0.1:43380", "http://127.0.0.1:43379", "false"}},
		want: `┌──────────────────┬─────────┬──────┬────────────────────────┬────────────────────────┬────────────┐
│        ID        │ STATUS  │ NAME │       PEER ADDRS       │      CLIENT ADDRS      │ IS LEARNER │
├──────────────────┼─────────┼──────┼────────────────────────┼────────────────────────┼────────────┤
│ 4e95e8bf5c055843 │ started │    d │ http://127.0.0.1:43380 │ http://127.0.0.1:43379 │      false │
└──────────────────┴─────────┴──────┴────────────────────────┴────────────────────────┴────────────┘
`,
	}, {
		header: []string{"endpoint", "hash", "hash revision"},
		want: `┌──────────┬──────┬───────────────┐
│ ENDPOINT │ HASH │ HASH REVISION │
└──────────┴──────┴───────────────┘
`,
	}} {
		var b strings.Builder
		Render(&b, tc.header, tc.rows)
		if b.String() != tc.want {
			t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
		}
	}
}

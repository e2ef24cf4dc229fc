package diff

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// gwStep is one HTTP request of TestGatewayDifferential, made as user (a
// name whose token the table got from /v3/auth/authenticate, "" for no
// Authorization header, "bogus" for a made-up token).
type gwStep struct {
	desc   string
	user   string
	method string // POST unless set
	path   string
	body   string
	// watch, if set, replaces the request: a streaming exchange.
	watch func(ctx context.Context, t *gwTarget) string
}

// gwTarget is one server under TestGatewayDifferential.
type gwTarget struct {
	base   string
	tokens map[string]string
}

// gwIgnored are the fields whose values legitimately differ between two
// clusters (identity, raft's counters, sizes of different storage
// engines); they are replaced by a placeholder, so that the field must
// still be there, or left out, on both. A member's ID is masked too
// (leases get theirs from the requests).
var gwIgnored = []string{"cluster_id", "member_id", "raft_term", "peerURLs", "clientURLs", "leader",
	"raftIndex", "raftTerm", "raftAppliedIndex", "dbSize", "dbSizeInUse", "dbSizeQuota", "token"}

// gwHeaders are the response headers compared: the body's type, the
// gRPC metadata the gateway forwards, and the Unauthenticated challenge.
func gwHeaders(h http.Header) string {
	var out []string
	for k, vs := range h {
		if k == "Content-Type" || k == "Www-Authenticate" || strings.HasPrefix(k, "Grpc-Metadata-") {
			out = append(out, k+": "+strings.Join(vs, ","))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// gwNormalize is a response body for comparison: JSON decoded and
// written again with sorted keys (protojson varies its whitespace on
// purpose), gwIgnored fields masked, a lease's remaining TTL reduced to
// "positive"; a body that is not JSON is compared as it is.
func gwNormalize(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return fmt.Sprintf("%q", body)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			_, member := v["peerURLs"]
			for k, x := range v {
				switch {
				case slices.Contains(gwIgnored, k) || member && k == "ID":
					v[k] = "<" + k + ">"
				case k == "TTL" && x != "-1":
					v[k] = "<positive>"
				default:
					v[k] = walk(x)
				}
			}
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		}
		return v
	}
	var out strings.Builder
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.Encode(walk(v))
	// protojson's error messages put a space or a no-break space after
	// "proto:", chosen per binary, so that nobody matches them exactly.
	return strings.ReplaceAll(strings.TrimSuffix(out.String(), "\n"), "\u00a0", " ")
}

func (t *gwTarget) request(ctx context.Context, method, path, body, user string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	switch user {
	case "":
	case "bogus":
		req.Header.Set("Authorization", "bogus.1")
	default:
		req.Header.Set("Authorization", t.tokens[user])
	}
	return req, nil
}

// do makes one request and returns its status, compared headers and
// normalised body; a token in the body is kept for its user.
func (t *gwTarget) do(ctx context.Context, s gwStep) string {
	method := s.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := t.request(ctx, method, s.path, s.body, s.user)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	if s.path == "/v3/auth/authenticate" {
		var a struct{ Token string }
		var who struct{ Name string }
		if json.Unmarshal(body, &a) == nil && json.Unmarshal([]byte(s.body), &who) == nil && a.Token != "" {
			t.tokens[who.Name] = a.Token
		}
	}
	return fmt.Sprintf("%d [%s] %s", resp.StatusCode, gwHeaders(resp.Header), gwNormalize(body))
}

// gwStream opens a streaming call (/v3/watch, /v3/lease/keepalive) with
// the requests of body, then reads one line per action: it runs the
// action (nil: none) and reads the next line of the stream. The stream
// is closed by the client, as a curl user closes it.
func gwStream(path, body string, actions ...func(ctx context.Context, t *gwTarget) error) func(ctx context.Context, t *gwTarget) string {
	return func(ctx context.Context, t *gwTarget) string {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, err := t.request(ctx, http.MethodPost, path, body, "")
		if err != nil {
			return err.Error()
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		out := []string{fmt.Sprintf("%d [%s]", resp.StatusCode, gwHeaders(resp.Header))}
		lines := bufio.NewReader(resp.Body)
		for _, act := range actions {
			if act != nil {
				if err := act(ctx, t); err != nil {
					return err.Error()
				}
			}
			line, err := lines.ReadBytes('\n')
			if err != nil {
				return strings.Join(append(out, "read: "+err.Error()), "\n")
			}
			out = append(out, gwNormalize(line))
		}
		return strings.Join(out, "\n")
	}
}

// gwWebSocket opens a WebSocket on path (as a browser does, with a GET
// asking for the upgrade), sends each of requests as a message, then
// reads one message per action after running it, as gwStream.
func gwWebSocket(path string, requests []string, actions ...func(ctx context.Context, t *gwTarget) error) func(ctx context.Context, t *gwTarget) string {
	return func(ctx context.Context, t *gwTarget) string {
		conn, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(t.base, "http")+path, nil)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer conn.Close()
		out := []string{fmt.Sprintf("%d", resp.StatusCode)}
		for _, r := range requests {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(r)); err != nil {
				return "write: " + err.Error()
			}
		}
		if deadline, ok := ctx.Deadline(); ok {
			conn.SetReadDeadline(deadline)
		}
		for _, act := range actions {
			if act != nil {
				if err := act(ctx, t); err != nil {
					return err.Error()
				}
			}
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return strings.Join(append(out, "read: "+err.Error()), "\n")
			}
			out = append(out, gwNormalize(msg))
		}
		return strings.Join(out, "\n")
	}
}

// gwPut is a stream action: a put through the gateway.
func gwPut(key, value string) func(ctx context.Context, t *gwTarget) error {
	return func(ctx context.Context, t *gwTarget) error {
		got := t.do(ctx, gwStep{path: "/v3/kv/put", body: fmt.Sprintf(`{"key":%q,"value":%q}`, b64(key), b64(value))})
		if !strings.HasPrefix(got, "200 ") {
			return fmt.Errorf("put %s: %s", key, got)
		}
		return nil
	}
}

func b64(s string) string {
	out, _ := json.Marshal([]byte(s))
	return strings.Trim(string(out), `"`)
}

func gwSteps() []gwStep {
	kv := func(k, v string) string { return fmt.Sprintf(`{"key":%q,"value":%q}`, b64(k), b64(v)) }
	steps := []gwStep{
		{desc: "put", path: "/v3/kv/put", body: kv("foo", "bar")},
		{desc: "put prev_kv", path: "/v3/kv/put", body: fmt.Sprintf(`{"key":%q,"value":%q,"prev_kv":true}`, b64("foo"), b64("bar2"))},
		{desc: "put foo1", path: "/v3/kv/put", body: kv("foo1", "v1")},
		{desc: "put foo2", path: "/v3/kv/put", body: kv("foo2", "v2")},
		{desc: "put zoo", path: "/v3/kv/put", body: kv("zoo", "z")},
		{desc: "put unknown field ignored", path: "/v3/kv/put", body: `{"key":"` + b64("unk") + `","bogus_field":1}`},
		{desc: "put no key", path: "/v3/kv/put", body: `{"value":"eA=="}`},
		{desc: "range one", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("foo"))},
		{desc: "range missing", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("nope"))},
		{desc: "range prefix", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"range_end":%q}`, b64("foo"), b64("fop"))},
		{desc: "range all limit", path: "/v3/kv/range", body: `{"key":"AA==","range_end":"AA==","limit":2}`},
		{desc: "range keys_only", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"range_end":%q,"keys_only":true}`, b64("foo"), b64("fop"))},
		{desc: "range count_only", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"range_end":%q,"count_only":true}`, b64("foo"), b64("fop"))},
		{desc: "range sorted descending by value, enum by name", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"range_end":%q,"sort_order":"DESCEND","sort_target":"VALUE"}`, b64("foo"), b64("fop"))},
		{desc: "range enum by number", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"range_end":%q,"sort_order":2,"sort_target":1}`, b64("foo"), b64("fop"))},
		{desc: "range at revision 2", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"revision":"2"}`, b64("foo"))},
		{desc: "range future revision", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"revision":100}`, b64("foo"))},
		{desc: "deleterange prev_kv", path: "/v3/kv/deleterange", body: fmt.Sprintf(`{"key":%q,"prev_kv":true}`, b64("foo2"))},
		{desc: "deleterange nothing", path: "/v3/kv/deleterange", body: fmt.Sprintf(`{"key":%q}`, b64("nope"))},
		{desc: "txn success", path: "/v3/kv/txn", body: fmt.Sprintf(`{"compare":[{"target":"VERSION","key":%q,"version":"2"}],`+
			`"success":[{"request_put":{"key":%q,"value":%q}},{"request_range":{"key":%q}}],"failure":[{"request_range":{"key":%q}}]}`,
			b64("foo"), b64("foo"), b64("baz"), b64("foo"), b64("foo"))},
		{desc: "txn failure", path: "/v3/kv/txn", body: fmt.Sprintf(`{"compare":[{"target":"VALUE","key":%q,"result":"NOT_EQUAL","value":%q}],`+
			`"success":[{"request_delete_range":{"key":%q}}],"failure":[{"request_range":{"key":%q,"range_end":%q}}]}`,
			b64("foo"), b64("baz"), b64("foo"), b64("foo"), b64("fop"))},
		{desc: "txn duplicate put", path: "/v3/kv/txn", body: fmt.Sprintf(`{"success":[{"request_put":{"key":%q}},{"request_put":{"key":%q}}]}`, b64("d"), b64("d"))},
		{desc: "compaction future", path: "/v3/kv/compaction", body: `{"revision":"1000"}`},
		{desc: "compaction", path: "/v3/kv/compaction", body: `{"revision":"4","physical":true}`},
		{desc: "range compacted", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q,"revision":"3"}`, b64("foo"))},
		{desc: "compaction again", path: "/v3/kv/compaction", body: `{"revision":"4"}`},
		{desc: "malformed JSON", path: "/v3/kv/put", body: `{"key":`},
		{desc: "wrong JSON type", path: "/v3/kv/range", body: `{"key":12}`},
		{desc: "not base64", path: "/v3/kv/range", body: `{"key":"!!"}`},
		{desc: "empty body", path: "/v3/kv/range", body: ``},
		{desc: "unknown gateway path", path: "/v3/kv/nope", body: `{}`},
		{desc: "unknown path", path: "/v3/nope", body: `{}`},
		{desc: "GET of a POST route", method: http.MethodGet, path: "/v3/kv/range"},
		{desc: "v3beta alias", path: "/v3beta/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("foo"))},
		{desc: "lease grant", path: "/v3/lease/grant", body: `{"TTL":"60","ID":"1234"}`},
		{desc: "lease grant duplicate", path: "/v3/lease/grant", body: `{"TTL":60,"ID":1234}`},
		{desc: "put with lease", path: "/v3/kv/put", body: fmt.Sprintf(`{"key":%q,"value":%q,"lease":"1234"}`, b64("leased"), b64("x"))},
		{desc: "put with missing lease", path: "/v3/kv/put", body: fmt.Sprintf(`{"key":%q,"lease":"999"}`, b64("leased"))},
		{desc: "lease timetolive keys", path: "/v3/lease/timetolive", body: `{"ID":"1234","keys":true}`},
		{desc: "lease timetolive old path", path: "/v3/kv/lease/timetolive", body: `{"ID":"1234"}`},
		{desc: "lease leases", path: "/v3/lease/leases", body: `{}`},
		{desc: "lease keepalive stream", watch: gwStream("/v3/lease/keepalive", `{"ID":"1234"}`, nil)},
		{desc: "lease revoke", path: "/v3/lease/revoke", body: `{"ID":"1234"}`},
		{desc: "lease timetolive revoked", path: "/v3/lease/timetolive", body: `{"ID":"1234"}`},
		{desc: "lease revoke again", path: "/v3/kv/lease/revoke", body: `{"ID":"1234"}`},
		{desc: "lease leases none", path: "/v3/kv/lease/leases", body: `{}`},
		{desc: "range leased key gone", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("leased"))},
		{desc: "watch: created, then a put, a put and a delete", watch: gwStream("/v3/watch",
			fmt.Sprintf(`{"create_request":{"key":%q,"range_end":%q,"prev_kv":true}}`, b64("w"), b64("x")),
			nil, gwPut("w1", "a"), gwPut("w1", "b"),
			func(ctx context.Context, t *gwTarget) error {
				got := t.do(ctx, gwStep{path: "/v3/kv/deleterange", body: fmt.Sprintf(`{"key":%q}`, b64("w1"))})
				if !strings.HasPrefix(got, "200 ") {
					return fmt.Errorf("delete: %s", got)
				}
				return nil
			})},
		{desc: "watch from a revision: the history first", watch: gwStream("/v3/watch",
			fmt.Sprintf(`{"create_request":{"key":%q,"start_revision":"5"}}`, b64("foo")), nil, nil)},
		{desc: "watch from a compacted revision", watch: gwStream("/v3/watch",
			fmt.Sprintf(`{"create_request":{"key":%q,"start_revision":"2"}}`, b64("foo")), nil, nil)},
		// Two keys, one put each: the order in which a stream sends two
		// watchers' events for one put is not defined (etcd's varies).
		{desc: "watch over a WebSocket: two watchers on one stream, a put to each key", watch: gwWebSocket("/v3/watch",
			[]string{fmt.Sprintf(`{"create_request":{"key":%q}}`, b64("ws")), fmt.Sprintf(`{"create_request":{"key":%q,"watch_id":"7"}}`, b64("ws2"))},
			nil, nil, gwPut("ws", "1"), gwPut("ws2", "1"))},
		{desc: "lease keep-alive over a WebSocket, no such lease", watch: gwWebSocket("/v3/lease/keepalive", []string{`{"ID":"99"}`}, nil)},
		{desc: "WebSocket on an unknown path", watch: gwWebSocket("/v3/nope", nil, nil)},
		{desc: "member list", path: "/v3/cluster/member/list", body: `{}`},
		{desc: "member add bad URL", path: "/v3/cluster/member/add", body: `{"peerURLs":["::"]}`},
		{desc: "member remove unknown", path: "/v3/cluster/member/remove", body: `{"ID":"1"}`},
		{desc: "maintenance status", path: "/v3/maintenance/status", body: `{}`},
		{desc: "maintenance alarm get", path: "/v3/maintenance/alarm", body: `{"action":"GET"}`},
		{desc: "maintenance hashkv", path: "/v3/maintenance/hashkv", body: `{"revision":"0"}`},
		{desc: "maintenance transfer-leadership to nobody", path: "/v3/maintenance/transfer-leadership", body: `{"targetID":"12"}`},
		{desc: "auth status", path: "/v3/auth/status", body: `{}`},
		{desc: "auth enable without root", path: "/v3/auth/enable", body: `{}`},
		{desc: "user add root", path: "/v3/auth/user/add", body: `{"name":"root","password":"rootpw"}`},
		{desc: "user grant root", path: "/v3/auth/user/grant", body: `{"user":"root","role":"root"}`},
		{desc: "role add", path: "/v3/auth/role/add", body: `{"name":"rfoo"}`},
		{desc: "role grant read foo", path: "/v3/auth/role/grant", body: fmt.Sprintf(`{"name":"rfoo","perm":{"permType":"READ","key":%q}}`, b64("foo"))},
		{desc: "user add u", path: "/v3/auth/user/add", body: `{"name":"u","password":"upw"}`},
		{desc: "user grant u", path: "/v3/auth/user/grant", body: `{"user":"u","role":"rfoo"}`},
		{desc: "user get u", path: "/v3/auth/user/get", body: `{"name":"u"}`},
		{desc: "role get", path: "/v3/auth/role/get", body: `{"role":"rfoo"}`},
		{desc: "auth enable", path: "/v3/auth/enable", body: `{}`},
		{desc: "range without token", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("foo"))},
		{desc: "authenticate bad password", path: "/v3/auth/authenticate", body: `{"name":"u","password":"nope"}`},
		{desc: "authenticate root", path: "/v3/auth/authenticate", body: `{"name":"root","password":"rootpw"}`},
		{desc: "authenticate u", path: "/v3/auth/authenticate", body: `{"name":"u","password":"upw"}`},
		{desc: "range as root", user: "root", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("foo"))},
		{desc: "range as u", user: "u", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("foo"))},
		{desc: "put as u: permission denied", user: "u", path: "/v3/kv/put", body: kv("foo", "no")},
		{desc: "range zoo as u: permission denied", user: "u", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("zoo"))},
		{desc: "member list as u", user: "u", path: "/v3/cluster/member/list", body: `{}`},
		{desc: "user list as u", user: "u", path: "/v3/auth/user/list", body: `{}`},
		{desc: "range with a bogus token", user: "bogus", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("foo"))},
		{desc: "auth status as root", user: "root", path: "/v3/auth/status", body: `{}`},
		{desc: "user list as root", user: "root", path: "/v3/auth/user/list", body: `{}`},
		{desc: "auth disable as u", user: "u", path: "/v3/auth/disable", body: `{}`},
		{desc: "auth disable as root", user: "root", path: "/v3/auth/disable", body: `{}`},
		{desc: "range without token, auth off", path: "/v3/kv/range", body: fmt.Sprintf(`{"key":%q}`, b64("zoo"))},
	}
	return steps
}

// TestGatewayDifferential makes the same HTTP/JSON requests to cairn's
// gateway and to stock etcd's (as curl would: POST with a JSON body) and
// requires the same status, headers and JSON, less what gwIgnored masks:
// KV, Txn, compaction and its errors, leases, watch and keep-alive
// streams, members, maintenance, auth with tokens in the Authorization
// header, malformed requests and unknown paths.
func TestGatewayDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	targets := []*gwTarget{
		{base: "http://" + startServer(t, cairn, "--bcrypt-cost", "4").Target(), tokens: map[string]string{}},
		{base: "http://" + startServer(t, etcd, "--bcrypt-cost", "4").Target(), tokens: map[string]string{}},
	}
	start := time.Now()
	steps := gwSteps()
	for i, s := range steps {
		var got [2]string
		for j, target := range targets {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if s.watch != nil {
				got[j] = s.watch(ctx, target)
			} else {
				got[j] = target.do(ctx, s)
			}
			cancel()
		}
		if testing.Verbose() {
			t.Logf("step %d: %s\n=> %s", i, s.desc, got[1])
		}
		if got[0] != got[1] {
			t.Errorf("step %d: %s\ncairn: %s\netcd:  %s", i, s.desc, got[0], got[1])
		}
	}
	t.Logf("%d requests compared in %v", len(steps), time.Since(start))
}

package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// --endpoints are taken as etcd's gateway takes them: URLs' schemes
// dropped, IPv6 in brackets; an endpoint that does not parse, or that is
// the gateway's own listen address, is refused.
func TestGatewayEndpoints(t *testing.T) {
	for _, tc := range []struct {
		endpoints []string
		listen    string
		want      []string
		err       string
	}{
		{[]string{"127.0.0.1:2379", "http://127.0.0.1:22379", "https://localhost:32379", "[::1]:2379"}, "127.0.0.1:23790",
			[]string{"127.0.0.1:2379", "127.0.0.1:22379", "localhost:32379", "[::1]:2379"}, ""},
		{[]string{"127.0.0.1"}, "127.0.0.1:23790", nil, `error parsing endpoint "127.0.0.1"`},
		{[]string{"127.0.0.1:port"}, "127.0.0.1:23790", nil, `error parsing endpoint "127.0.0.1:port"`},
		{[]string{"http://localhost:23790"}, "127.0.0.1:23790", nil, "should not resolve to the gateway listen addr"},
		{[]string{"127.0.0.1:2379"}, "127.0.0.1", nil, "failed to validate listen address: 127.0.0.1"},
		{nil, "127.0.0.1:23790", nil, "no endpoints found"},
	} {
		got, err := gatewayEndpoints(tc.endpoints, tc.listen)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v on %s: %v, %v; want the error %q", tc.endpoints, tc.listen, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v on %s: %v, %v; want %v", tc.endpoints, tc.listen, got, err, tc.want)
		}
	}
}

// `gateway` alone and `gateway start --help` print help (exit 0); a bad
// flag exits 1 with cobra's error, as etcd's; a refused configuration
// exits 1 naming the cause before anything listens.
func TestGatewayCommand(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"gateway"}, 0, "start       start the gateway", ""},
		{[]string{"gateway", "start", "--help"}, 0, "--retry-delay duration", ""},
		{[]string{"gateway", "start", "--bogus"}, 1, "", "unknown flag: --bogus"},
		{[]string{"gateway", "start", "--endpoints=http://127.0.0.1:23790"}, 1, "should not resolve to the gateway listen addr", ""},
		{[]string{"gateway", "start", "--discovery-srv=example.com"}, 1, "", "DNS SRV discovery is not built yet"},
	} {
		var stdout, stderr bytes.Buffer
		code := run("etcd", tc.args, nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
		}
	}
}

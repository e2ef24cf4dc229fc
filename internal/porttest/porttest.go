// Package porttest picks free loopback ports for tests that start servers
// in processes of their own, which must be told their ports before they
// listen (tests/e2e, tests/diff).
package porttest

import (
	"net"
	"testing"
)

// Free returns n distinct free loopback TCP ports. Their listeners are
// held until all n are chosen, then closed: one closed and the next
// opened may get the same port back (two servers were once handed one
// port for their client and peer URLs, and the test waited a minute for
// a cluster that could not start), while a port just closed is not
// handed out again at once.
func Free(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

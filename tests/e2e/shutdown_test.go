package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/cairn-db/cairn/api/v3lockpb"
)

// A member told to stop (SIGTERM) answers the calls it is serving before
// it closes its clients' connections, as etcd's does: a Lock waiting on
// it, for a lock held through another member, gets the lock when the
// holder unlocks after the SIGTERM, and the member then exits 0. (Before,
// the connection closed at the SIGTERM and the Lock failed Unavailable,
// its client left not knowing whether it held the lock.)
func TestSIGTERMAnswersCallsInFlight(t *testing.T) {
	c := newCluster(t, 3)
	stopping, other := c.members[0], c.members[1]
	cliS, cliO := stopping.client(), other.client()
	lcS, lcO := v3lockpb.NewLockClient(cliS.ActiveConnection()), v3lockpb.NewLockClient(cliO.ActiveConnection())
	held, waiting := grant(t, cliO, 60), grant(t, cliS, 60)
	first := await(t, lockAsync(t, lcO, "l", held), "first Lock")
	second := lockAsync(t, lcS, "l", waiting)
	waitKey(t, cliO, fmt.Sprintf("l/%x", waiting))
	requirePending(t, second, "second Lock")

	stopping.proc.cmd.Process.Signal(syscall.SIGTERM)
	// The client leaves Ready when the member's GOAWAY reaches it: the
	// member is stopping, the Lock still in flight.
	if !cliS.ActiveConnection().WaitForStateChange(ctxT(t), connectivity.Ready) {
		t.Fatalf("no GOAWAY from %s within %v of SIGTERM", stopping.name, commandDeadline)
	}
	requirePending(t, second, "second Lock")
	if _, err := lcO.Unlock(ctxT(t), &v3lockpb.UnlockRequest{Key: first.Key}); err != nil {
		t.Fatal(err)
	}
	if got := await(t, second, "a Lock in flight on a member told to stop"); string(got.Key) != fmt.Sprintf("l/%x", waiting) {
		t.Fatalf("the Lock's key %q", got.Key)
	}
	waitExit(t, stopping, exitDeadline, "SIGTERM")
	stopping.proc = nil
}

// waitExit waits up to deadline for m's process to exit by itself after
// what it was told (why), and requires it to exit 0.
func waitExit(t *testing.T, m *member, deadline time.Duration, why string) {
	t.Helper()
	select {
	case <-m.proc.exited:
	case <-time.After(deadline):
		t.Fatalf("%s still runs %v after %s", m.name, deadline, why)
	}
	if code := m.proc.exitCode(t); code != 0 {
		t.Fatalf("%s exited %d after %s, want 0", m.name, code, why)
	}
}

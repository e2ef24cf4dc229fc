package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// acquireAsync starts acquire(n) and returns the channel its result
// arrives on.
func acquireAsync(ctx context.Context, a *admission, stop chan struct{}, n int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- a.acquire(ctx, stop, n) }()
	return done
}

// waitWaiters waits until n requests wait to be admitted.
func waitWaiters(t *testing.T, a *admission, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for a.waiters() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", a.waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func admitted(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("not admitted in a minute")
	}
}

func notAdmitted(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("admitted (%v) while the bytes in flight leave no room", err)
	default:
	}
}

// Requests are admitted while their bytes fit, in arrival order: a small
// one waits behind a large one that does not fit yet. One larger than the
// limit takes all of it.
func TestAdmissionInArrivalOrder(t *testing.T) {
	a := newAdmission(10)
	ctx, stop := context.Background(), make(chan struct{})
	if err := a.acquire(ctx, stop, 6); err != nil {
		t.Fatal(err)
	}
	large := acquireAsync(ctx, a, stop, 6)
	waitWaiters(t, a, 1)
	small := acquireAsync(ctx, a, stop, 1)
	waitWaiters(t, a, 2)
	notAdmitted(t, large)
	notAdmitted(t, small)

	a.release(6)
	admitted(t, large)
	admitted(t, small)
	if a.used != 7 {
		t.Fatalf("%d bytes used, want 7", a.used)
	}

	huge := acquireAsync(ctx, a, stop, 100)
	waitWaiters(t, a, 1)
	a.release(6)
	notAdmitted(t, huge)
	a.release(1)
	admitted(t, huge)
	if a.used != 10 {
		t.Fatalf("%d bytes used by a request over the limit, want the limit, 10", a.used)
	}
	a.release(100)
	if a.used != 0 || a.waiters() != 0 {
		t.Fatalf("%d bytes used, %d waiting after every release", a.used, a.waiters())
	}
}

// A request whose context ends while it waits counts nothing and lets the
// ones behind it go if they fit; the member's stop ends every wait.
func TestAdmissionGivesUp(t *testing.T) {
	a := newAdmission(10)
	stop := make(chan struct{})
	if err := a.acquire(context.Background(), stop, 8); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	large := acquireAsync(ctx, a, stop, 5)
	waitWaiters(t, a, 1)
	small := acquireAsync(context.Background(), a, stop, 2)
	waitWaiters(t, a, 2)
	notAdmitted(t, small)

	cancel()
	select {
	case err := <-large:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a cancelled wait did not end")
	}
	admitted(t, small)
	if a.used != 10 {
		t.Fatalf("%d bytes used, want 10 (the cancelled request counted nothing)", a.used)
	}

	last := acquireAsync(context.Background(), a, stop, 1)
	waitWaiters(t, a, 1)
	close(stop)
	select {
	case err := <-last:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("wait at stop: %v, want ErrStopped", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("stop did not end a wait")
	}
	if a.used != 10 || a.waiters() != 0 {
		t.Fatalf("%d bytes used, %d waiting, want 10 and none", a.used, a.waiters())
	}
}

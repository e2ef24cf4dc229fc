package main

import (
	"fmt"
	"strings"
	"testing"
)

// traceLine writes one goroutine transition as `go tool trace -d=parsed`
// prints it: g changes target's state at t nanoseconds, with a stack.
func traceLine(b *strings.Builder, t int64, g, target int, what string, stack ...string) {
	fmt.Fprintf(b, "M=1 P=0 G=%d StateTransition Time=%d GoID=%d %s Reason=\"\"\nStack=\n", g, t, target, what)
	for i, fn := range stack {
		fmt.Fprintf(b, "\t%s @ 0x%x\n\t\t/src/file.go:%d\n", fn, i+1, i+1)
	}
	b.WriteString("\n")
}

// One put's path on a leader, as the stacks of Cairn and gRPC show it,
// then the next put's request: each step's time since the one before.
func TestLeaderPath(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "M=-1 P=-1 G=-1 Sync Time=0 N=1\n")
	const (
		reader, worker, raftLoop, peer, peerWriter, transportG, applier, clientWriter = 1, 2, 3, 4, 5, 6, 7, 8
	)
	us := int64(1000)
	traceLine(&b, 10*us, reader, worker, "Waiting->Runnable", "google.golang.org/grpc.(*Server).serveStreams.func2", "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders")
	traceLine(&b, 30*us, worker, raftLoop, "Waiting->Runnable", "raftnode.call", "github.com/cairn-db/cairn/internal/raftnode.(*Node).propose")
	traceLine(&b, 35*us, raftLoop, peer, "Waiting->Runnable", "github.com/cairn-db/cairn/internal/transport.(*Transport).Send", "github.com/cairn-db/cairn/internal/raftnode.(*Driver).handleReady")
	traceLine(&b, 135*us, -1, peer, "Runnable->Running")
	traceLine(&b, 137*us, peer, peerWriter, "Waiting->Runnable", "google.golang.org/grpc/internal/transport.(*controlBuffer).executeAndPut", "google.golang.org/grpc/internal/transport.(*controlBuffer).put")
	traceLine(&b, 140*us, peerWriter, peerWriter, "Running->Syscall", "syscall.write", "internal/poll.(*FD).Write")
	traceLine(&b, 640*us, transportG, raftLoop, "Waiting->Runnable", "github.com/cairn-db/cairn/internal/raftnode.(*Node).Process", "github.com/cairn-db/cairn/internal/server.(*raftAdapter).Process")
	traceLine(&b, 655*us, raftLoop, applier, "Waiting->Runnable", "github.com/cairn-db/cairn/internal/raftnode.(*Node).sendApply", "github.com/cairn-db/cairn/internal/raftnode.(*nodeApplier).Apply")
	traceLine(&b, 675*us, applier, worker, "Waiting->Runnable", "github.com/cairn-db/cairn/internal/server.(*waitRegistry).trigger", "github.com/cairn-db/cairn/internal/server.(*Server).entryApplied")
	traceLine(&b, 685*us, worker, clientWriter, "Waiting->Runnable", "google.golang.org/grpc/internal/transport.(*controlBuffer).executeAndPut", "google.golang.org/grpc/internal/transport.(*http2Server).writeHeaderLocked")
	traceLine(&b, 700*us, clientWriter, clientWriter, "Running->Syscall", "syscall.write", "internal/poll.(*FD).Write")
	traceLine(&b, 1000*us, reader, worker, "Waiting->Runnable", "google.golang.org/grpc.(*Server).serveStreams.func2", "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders")

	evs, err := parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	puts, partial := leaderPath(evs).puts()
	if len(puts) != 1 || partial != 1 {
		t.Fatalf("%d puts complete, %d partial; want 1 and 1 (the second put's request only)", len(puts), partial)
	}
	want := []float64{20, 5, 100, 5, 500, 15, 20, 10, 15, 300}
	for i, w := range want {
		if got := puts[0][i+1] - puts[0][i]; got != w {
			t.Errorf("step %d: %v us, want %v", i+1, got, w)
		}
	}
}

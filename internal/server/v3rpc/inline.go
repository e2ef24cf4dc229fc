package v3rpc

import (
	"context"
	"time"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/server"
)

// rangeMethod is the method inlineCall lets the reader answer.
const rangeMethod = "/etcdserverpb.KV/Range"

// inlineCall is h2grpc's Options.Inline: a serializable Range of one key
// (no range_end) answers from the store at once, waiting for nothing, so
// the connection's reader may answer it itself (no worker woken). A
// linearizable one waits for the read index, and a range of many keys
// may take long enough to hold up the connection's other calls: those
// go to a worker. msg is scanned, not decoded (apply.ScanClientRange): a
// request the hand decoder would refuse goes to a worker.
func inlineCall(fullMethod string, msg []byte) bool {
	if fullMethod != rangeMethod {
		return false
	}
	oneKey, serializable, ok := apply.ScanClientRange(msg)
	return ok && oneKey && serializable
}

// deferCall is h2grpc's Options.Defer: a linearizable Range of one key
// waits for its ReadIndex round (the same the handler would wait for:
// the round starts after the request arrived), then is answered by the
// goroutine that runs the round's calls, with a context that tells the
// handler its wait is done. A round that failed hands its calls to
// workers, whose handlers wait again and answer with the error.
func (v *Service) deferCall(ctx context.Context, fullMethod string, msg []byte, answer func(context.Context), dispatch func()) bool {
	if fullMethod != rangeMethod {
		return false
	}
	if oneKey, serializable, ok := apply.ScanClientRange(msg); !ok || !oneKey || serializable {
		return false
	}
	// The call's time, in the metrics and the slow-request log, starts
	// now, as it would have in a worker.
	ctx = context.WithValue(ctx, arrivedKey{}, time.Now())
	v.s.AfterLinearizableRead(func(err error) {
		if err != nil {
			dispatch()
			return
		}
		answer(server.ReadAwaited(ctx))
	})
	return true
}

// arrivedKey holds, in a deferred call's context, the time it arrived.
type arrivedKey struct{}

// callStart is when the call in ctx began: now, or, for a call that
// waited before its interceptor ran (deferCall), when it arrived.
func callStart(ctx context.Context) time.Time {
	if t, ok := ctx.Value(arrivedKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

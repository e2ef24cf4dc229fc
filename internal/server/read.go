package server

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/membership"
)

// readBatcher batches linearizable reads: readers wait on the current
// notifier; the read loop swaps in a fresh one, runs one ReadIndex round
// for everyone that was waiting, and notifies them all.
type readBatcher struct {
	// wake tells the read loop a reader is waiting (size one: one
	// pending wake-up is enough).
	wake chan struct{}
	mu   sync.Mutex
	// current is the notifier the next round will notify.
	current *readNotifier
}

type readNotifier struct {
	done chan struct{}
	err  error
	// after are the calls AfterLinearizableRead queued for this round.
	after []func(error)
}

func (b *readBatcher) init() {
	b.wake = make(chan struct{}, 1)
	b.current = &readNotifier{done: make(chan struct{})}
}

// linearizableReadWait returns once this member has applied everything
// committed before it was called (ReadIndex, §6.4 of the Raft thesis).
func (s *Server) linearizableReadWait(ctx context.Context) error {
	s.reads.mu.Lock()
	n := s.reads.current
	s.reads.mu.Unlock()
	select {
	case s.reads.wake <- struct{}{}:
	default:
	}
	select {
	case <-n.done:
		return n.err
	case <-ctx.Done():
		return ctxError(ctx.Err())
	case <-s.stopping:
		return ErrStopped
	}
}

// readLoop runs ReadIndex rounds, one at a time, for waiting readers.
func (s *Server) readLoop() {
	var seq uint64
	for {
		select {
		case <-s.reads.wake:
		case <-s.stopping:
			return
		}
		s.reads.mu.Lock()
		n := s.reads.current
		s.reads.current = &readNotifier{done: make(chan struct{})}
		s.reads.mu.Unlock()
		seq++
		index, err := s.readIndex(seq)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
			err = s.waitApplied(ctx, index)
			cancel()
			if err != nil {
				err = ctxError(err)
			}
		}
		n.err = err
		close(n.done)
		if len(n.after) > 0 {
			// One goroutine for the round's queued calls, so that the
			// next round need not wait for them.
			s.goAttached(func() {
				for _, f := range n.after {
					f(err)
				}
			})
		}
	}
}

// AfterLinearizableRead queues f to run once this member has applied
// everything committed before the call (the same ReadIndex round
// linearizableReadWait waits for), with the round's error: one goroutine
// runs a round's queued calls in turn, none woken per read. f must not
// block. A call made in f with ReadAwaited's context skips its own wait.
// If the member is stopping, f may never run.
func (s *Server) AfterLinearizableRead(f func(error)) {
	if brokenStaleReads {
		f(nil) // as Range skips its wait in that build
		return
	}
	s.reads.mu.Lock()
	s.reads.current.after = append(s.reads.current.after, f)
	s.reads.mu.Unlock()
	select {
	case s.reads.wake <- struct{}{}:
	default:
	}
}

// readAwaitedKey marks a context whose request's ReadIndex round has
// been waited for (ReadAwaited).
type readAwaitedKey struct{}

// ReadAwaited returns ctx marked as a request whose linearizable read
// has been waited for: AfterLinearizableRead's f runs the request with
// it, and Range then reads at once.
func ReadAwaited(ctx context.Context) context.Context {
	return context.WithValue(ctx, readAwaitedKey{}, true)
}

func readAwaited(ctx context.Context) bool {
	v, _ := ctx.Value(readAwaitedKey{}).(bool)
	return v
}

// readIndex runs one ReadIndex round and returns the index to wait for.
// Rounds lost to a leader change are retried until the request timeout.
func (s *Server) readIndex(seq uint64) (uint64, error) {
	rctx := binary.BigEndian.AppendUint64(nil, seq)
	deadline := time.NewTimer(s.cfg.RequestTimeout)
	defer deadline.Stop()
	// A round can be dropped silently (a leader change); ask again
	// after this long, as etcd does.
	retry := time.NewTicker(500 * time.Millisecond)
	defer retry.Stop()
	send := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		defer cancel()
		return s.proposalError(s.rn.ReadIndex(ctx, rctx))
	}
	if err := send(); err != nil {
		s.metrics.readIndexFails.Inc()
		return 0, err
	}
	for {
		select {
		case rs := <-s.rn.ReadStates():
			if len(rs.RequestCtx) == 8 && binary.BigEndian.Uint64(rs.RequestCtx) == seq {
				return rs.Index, nil
			}
			// An answer to an earlier round that timed out: ignore
			// (etcd counts it as a slow read index).
			s.metrics.slowReadIndex.Inc()
		case <-retry.C:
			s.logger.Debug("ReadIndex round unanswered; asking again", zap.Uint64("round", seq))
			if err := send(); err != nil && err != ErrNoLeader {
				s.metrics.readIndexFails.Inc()
				return 0, err
			}
		case <-deadline.C:
			s.metrics.slowReadIndex.Inc()
			if s.rn.Lead() == 0 {
				return 0, ErrNoLeader
			}
			// etcd's words; one line per round, however many reads wait.
			s.logger.Warn("timed out waiting for read index response (local node might have slow network)",
				zap.Duration("timeout", s.cfg.RequestTimeout), zap.String("leader", membership.IDString(s.rn.Lead())))
			return 0, ErrTimeout
		case <-s.stopping:
			return 0, ErrStopped
		}
	}
}

func ctxError(err error) error {
	switch err {
	case context.Canceled:
		return ErrCanceled
	case context.DeadlineExceeded:
		return ErrTimeout
	}
	return err
}

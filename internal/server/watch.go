package server

import "github.com/cairn-db/cairn/internal/mvcc"

// NewWatchStream opens a stream of watchers on the member's store. The
// caller closes it.
func (s *Server) NewWatchStream() *mvcc.WatchStream {
	return s.applier.Watchable().NewWatchStream()
}

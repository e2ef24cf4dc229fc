package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/mvcc"
)

// autoCompactor compacts history as etcd's auto-compaction does, on the
// leader only (followers apply the compactions it proposes):
//
//   - periodic, retention R: every R/10 (every R if R < 1h... see
//     interval), compact to the revision that was current R ago, so at
//     least R of history is kept.
//   - revision, retention N: every 5 minutes, compact to current - N.
type autoCompactor struct {
	s        *Server
	periodic bool
	// retention is the periodic mode's window; keepRevs the revision mode's.
	retention time.Duration
	keepRevs  int64
	interval  time.Duration
}

func newAutoCompactor(s *Server) *autoCompactor {
	c := &autoCompactor{s: s}
	switch s.cfg.AutoCompactionMode {
	case "periodic", "":
		if s.cfg.AutoCompactionRetention <= 0 {
			return nil
		}
		c.periodic, c.retention = true, s.cfg.AutoCompactionRetention
		// etcd: a retention of an hour or more is checked every hour...
		// it samples the revision every retention/10 and compacts to the
		// sample taken one retention ago.
		c.interval = c.retention / 10
	case "revision":
		if s.cfg.AutoCompactionRetentionRevs <= 0 {
			return nil
		}
		c.keepRevs = s.cfg.AutoCompactionRetentionRevs
		c.interval = 5 * time.Minute
	}
	if s.cfg.AutoCompactionIntervalOverride > 0 {
		c.interval = s.cfg.AutoCompactionIntervalOverride
	}
	return c
}

// run samples the revision each interval and compacts when due.
func (c *autoCompactor) run() {
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	// samples[i] is the revision seen i intervals ago (periodic mode).
	keep := int(c.retention/c.interval) + 1
	var samples []int64
	var last int64
	for {
		select {
		case <-c.s.stopping:
			return
		case <-ticker.C:
		}
		rev := c.s.Rev()
		var target int64
		if c.periodic {
			samples = append(samples, rev)
			if len(samples) > keep {
				samples = samples[1:]
			}
			if len(samples) < keep {
				continue
			}
			target = samples[0]
		} else {
			target = rev - c.keepRevs
		}
		if c.s.rn.Lead() != c.s.ID() || target <= last || target <= 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.s.requestTimeout)
		_, err := c.s.Compact(ctx, &pb.CompactionRequest{Revision: target})
		cancel()
		switch {
		case err == nil:
			last = target
			c.s.logger.Info("auto-compacted", zap.Int64("revision", target), zap.String("mode", c.s.cfg.AutoCompactionMode))
		case errors.Is(err, mvcc.ErrCompacted):
			last = target
		default:
			c.s.logger.Warn("auto-compaction failed", zap.Int64("revision", target), zap.Error(err))
		}
	}
}

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
//   - periodic, retention R: sample the revision every min(R, 1h)/10,
//     keeping the samples of the last R; from R after start, every
//     min(R, 1h), compact to the oldest sample (the revision of about R
//     ago), so at least R of history stays readable.
//   - revision, retention N: every 5 minutes, compact to current - N.
type autoCompactor struct {
	s        *Server
	periodic bool
	// retention is the periodic mode's window; keepRevs the revision mode's.
	retention time.Duration
	keepRevs  int64
	// interval is the sampling (periodic) or compaction (revision) period.
	interval time.Duration
}

func newAutoCompactor(s *Server) *autoCompactor {
	c := &autoCompactor{s: s}
	switch s.cfg.AutoCompactionMode {
	case "periodic", "":
		if s.cfg.AutoCompactionRetention <= 0 {
			return nil
		}
		c.periodic, c.retention = true, s.cfg.AutoCompactionRetention
		c.interval = min(c.retention, time.Hour) / 10
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
	// samples[0] is the revision of about one retention ago (periodic).
	keep := int(c.retention/c.interval) + 1
	var samples []int64
	var last int64
	ticks := 0
	for {
		select {
		case <-c.s.stopping:
			return
		case <-ticker.C:
		}
		ticks++
		rev := c.s.Rev()
		var target int64
		if c.periodic {
			samples = append(samples, rev)
			if len(samples) > keep {
				samples = samples[1:]
			}
			// Due first once the samples span a retention (tick keep),
			// then every min(R, 1h), which is 10 samples.
			if ticks < keep || (ticks-keep)%10 != 0 {
				continue
			}
			target = samples[0]
		} else {
			target = rev - c.keepRevs
		}
		if c.s.rn.Lead() != c.s.ID() || target <= last || target <= 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
		_, err := c.s.Compact(ctx, &pb.CompactionRequest{Revision: target})
		cancel()
		switch {
		case err == nil:
			last = target
			c.s.logger.Info("completed auto compaction", zap.Int64("revision", target), zap.String("mode", c.s.cfg.AutoCompactionMode))
		case errors.Is(err, mvcc.ErrCompacted):
			last = target
		default:
			c.s.logger.Warn("auto compaction failed", zap.Int64("revision", target), zap.Error(err))
		}
	}
}

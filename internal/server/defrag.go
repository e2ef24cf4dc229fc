package server

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/backend"
)

// Defragment gives back the space deleted and overwritten data holds (see
// backend.Defragment), one defragmentation at a time. Unlike etcd's, it
// blocks neither reads nor writes.
func (s *Server) Defragment() error {
	s.defragMu.Lock()
	defer s.defragMu.Unlock()
	s.metrics.defragInflight.Set(1)
	defer s.metrics.defragInflight.Set(0)
	before := s.applier.Sizes()
	start := time.Now()
	s.logger.Info("defragmenting", zap.String("path", s.cfg.memberDir()),
		zap.Int64("current-db-size-bytes", before.Total), zap.Int64("current-db-size-in-use-bytes", before.InUse))
	err := s.applier.Defragment()
	took := time.Since(start)
	if errors.Is(err, backend.ErrClosed) {
		// A restore swapped the backend, or the member stops.
		return ErrStopped
	}
	if err != nil {
		return err
	}
	s.metrics.defragSeconds.Observe(took.Seconds())
	after := s.applier.Sizes()
	s.logger.Info("finished defragmenting directory", zap.String("path", s.cfg.memberDir()),
		zap.Int64("current-db-size-bytes-diff", after.Total-before.Total),
		zap.Int64("current-db-size-bytes", after.Total),
		zap.Int64("current-db-size-in-use-bytes-diff", after.InUse-before.InUse),
		zap.Int64("current-db-size-in-use-bytes", after.InUse),
		zap.Duration("took", took))
	return nil
}

// maybeDefragment is --bootstrap-defrag-threshold-megabytes: at start,
// defragment if that gives back at least the threshold.
func (s *Server) maybeDefragment() error {
	sizes := s.applier.Sizes()
	threshold := int64(s.cfg.BootstrapDefragThresholdMegabytes) << 20
	if sizes.Total-sizes.InUse < threshold {
		s.logger.Info("Skipping defragmentation",
			zap.Int64("current-db-size-bytes", sizes.Total),
			zap.Int64("current-db-size-in-use-bytes", sizes.InUse),
			zap.Int64("bootstrap-defrag-threshold-bytes", threshold))
		return nil
	}
	return s.Defragment()
}

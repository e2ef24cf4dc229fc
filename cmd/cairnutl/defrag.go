package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/tool"
)

func newDefragCommand(g *globals) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Defragments the storage of the etcd",
		RunE: func(*cobra.Command, []string) error {
			if dataDir == "" {
				return tool.BadArgs(`required flag(s) "data-dir" not set`)
			}
			if err := defrag(g, dataDir); err != nil {
				//lint:ignore ST1005 etcdutl's message, word for word
				return fmt.Errorf("Failed to defragment etcd data[%s] (%w)", dataDir, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "Required. Defragments a data directory not in use by etcd.")
	return cmd
}

// defrag compacts a stopped member's backend as the server's
// Maintenance.Defragment does (a manual compaction of every key).
func defrag(g *globals, dataDir string) error {
	dir, err := findDB(dataDir)
	if err != nil {
		return err
	}
	be, err := openBackend(g, dir)
	if err != nil {
		return err
	}
	before := be.Sizes()
	start := time.Now()
	err = be.Defragment()
	if err == nil {
		// etcdutl's line (its backend's); etcd's e2e tests wait for it.
		after := be.Sizes()
		g.logger().Info("finished defragmenting directory", zap.String("path", dir),
			zap.Int64("current-db-size-bytes-diff", after.Total-before.Total), zap.Int64("current-db-size-bytes", after.Total),
			zap.Int64("current-db-size-in-use-bytes-diff", after.InUse-before.InUse), zap.Int64("current-db-size-in-use-bytes", after.InUse),
			zap.Duration("took", time.Since(start)))
	}
	if cerr := be.Close(); err == nil {
		err = cerr
	}
	return err
}

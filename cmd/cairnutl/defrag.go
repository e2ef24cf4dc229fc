package main

import (
	"fmt"

	"github.com/spf13/cobra"

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
	err = be.Defragment()
	if cerr := be.Close(); err == nil {
		err = cerr
	}
	return err
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/etcdsnap"
	"github.com/cairn-db/cairn/internal/mvcc"
	"github.com/cairn-db/cairn/internal/tool"
)

func newHashKVCommand(g *globals) *cobra.Command {
	var rev int64
	cmd := &cobra.Command{
		Use:   "hashkv <filename>",
		Short: "Prints the KV history hash of a given file",
		Long: `Prints the KV history hash (the value Maintenance.HashKV answers) of a stopped member's
data directory (the data dir, its member/ or its member/db/) or of a snapshot file.`,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("hashkv requires exactly one argument")
			}
			hash, hashRev, compactRev, err := hashKV(g, args[0], rev)
			if err != nil {
				return err
			}
			v := struct {
				Hash            uint32 `json:"hash"`
				HashRevision    int64  `json:"hashRevision"`
				CompactRevision int64  `json:"compactRevision"`
			}{hash, hashRev, compactRev}
			return g.print(v, []string{"hash", "hash revision", "compact revision"},
				[]string{fmt.Sprint(hash), fmt.Sprint(hashRev), fmt.Sprint(compactRev)},
				[][2]string{{"Hash", fmt.Sprint(hash)}, {"Hash revision", fmt.Sprint(hashRev)}, {"Compact revision", fmt.Sprint(compactRev)}})
		},
	}
	cmd.Flags().Int64Var(&rev, "rev", 0, "maximum revision to hash (default: latest revision)")
	return cmd
}

func hashKV(g *globals, path string, rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, 0, 0, err
	}
	dbDir := path
	if !info.IsDir() {
		// A snapshot file: imported into a scratch backend first.
		tmp, err := os.MkdirTemp(filepath.Dir(path), ".cairnutl-hashkv-")
		if err != nil {
			return 0, 0, 0, err
		}
		defer os.RemoveAll(tmp)
		r, err := etcdsnap.Open(path, false)
		if err != nil {
			return 0, 0, 0, err
		}
		dbDir = filepath.Join(tmp, "db")
		_, err = apply.Import(dbDir, backend.Options{}, &snapshotSource{r: r, lg: zap.NewNop()})
		r.Close()
		if err != nil {
			return 0, 0, 0, err
		}
	} else if dbDir, err = findDB(path); err != nil {
		return 0, 0, 0, err
	}
	be, err := openBackend(g, dbDir)
	if err != nil {
		return 0, 0, 0, err
	}
	defer be.Close()
	store, err := mvcc.Open(be, nil, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer store.Close()
	// etcdutl's: a freshly opened store remembers no compaction's hash.
	h, _, err := store.HashByRev(rev)
	return h.Hash, h.Revision, h.CompactRevision, err
}

// findDB finds the backend of a data directory given as itself, its
// member/ or member/db/.
func findDB(dir string) (string, error) {
	for _, c := range []string{filepath.Join(dir, "member", "db"), filepath.Join(dir, "db"), dir} {
		// Every pebble database has a manifest.
		if m, _ := filepath.Glob(filepath.Join(c, "MANIFEST-*")); len(m) > 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s holds no Cairn database (looked for member/db/, db/ and the directory itself)", dir)
}

// openBackend opens a stopped member's backend, waiting up to --timeout
// (0: forever) for a running one to let go of it.
func openBackend(g *globals, dir string) (*backend.Backend, error) {
	deadline := time.Now().Add(g.timeout)
	for {
		be, err := backend.Open(dir, backend.Options{})
		// Pebble's lock is an fcntl lock: another process holds it.
		if err == nil || !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			return be, err
		}
		if g.timeout > 0 && time.Now().After(deadline) {
			return nil, fmt.Errorf("timeout: %s is in use (is a member running on it?): %w", dir, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

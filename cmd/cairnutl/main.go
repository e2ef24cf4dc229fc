package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cairn-db/cairn/internal/tool"
	"github.com/cairn-db/cairn/internal/version"
)

func main() {
	os.Exit(run(filepath.Base(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr))
}

// globals are the root's flags and the streams.
type globals struct {
	name           string
	writeOut       string
	timeout        time.Duration
	stdout, stderr io.Writer
}

// run runs one command line and returns the exit code. name is how the
// tool was invoked: as etcdutl it prints what etcdutl prints.
func run(name string, args []string, stdout, stderr io.Writer) int {
	if name != "etcdutl" {
		name = "cairnutl"
	}
	g := &globals{name: name, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           name,
		Short:         "An administrative command line tool for etcd3.",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	if name != "etcdutl" {
		root.Short = "An administrative command line tool for Cairn (and etcd3) data."
	}
	root.PersistentFlags().StringVarP(&g.writeOut, "write-out", "w", "simple", "set the output format (fields, json, protobuf, simple, table)")
	root.PersistentFlags().DurationVar(&g.timeout, "timeout", 10*time.Second, "time to wait to obtain a file lock on db file, 0 to block indefinitely")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return tool.BadArgs("%v", err) })
	root.AddCommand(newSnapshotCommand(g), newDefragCommand(g), newHashKVCommand(g), newMigrateCommand(g), newVersionCommand(g),
		newCompletionCommand(g))
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return tool.ExitSuccess
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	var ee tool.ExitErr
	if errors.As(err, &ee) {
		return ee.Code
	}
	return tool.ExitError
}

// logger is etcdutl's: console lines on stderr, at info, with the
// caller.
func (g *globals) logger() *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(g.stderr), zap.InfoLevel), zap.AddCaller())
}

// print shows one result in the chosen format: header and row for simple
// and table, fields as "Name" : value, v as JSON.
func (g *globals) print(v any, header, row []string, fields [][2]string) error {
	switch g.writeOut {
	case "simple":
		for i, cell := range row {
			if i > 0 {
				fmt.Fprint(g.stdout, ", ")
			}
			fmt.Fprint(g.stdout, cell)
		}
		fmt.Fprintln(g.stdout)
	case "table":
		tool.Render(g.stdout, header, [][]string{row})
	case "fields":
		for _, f := range fields {
			fmt.Fprintf(g.stdout, "%q : %s\n", f[0], f[1])
		}
	case "json":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintln(g.stdout, string(b))
	case "protobuf":
		return tool.ExitErr{Code: tool.ExitBadFeature, Err: errors.New("protobuf is not supported for this command")}
	default:
		return tool.ExitErr{Code: tool.ExitBadFeature, Err: errors.New("unsupported output format")}
	}
	return nil
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Prints the version of " + g.name,
		Run: func(*cobra.Command, []string) {
			if g.name == "etcdutl" {
				fmt.Fprintln(g.stdout, "etcdutl version:", version.Etcd)
			} else {
				fmt.Fprintf(g.stdout, "cairnutl version: %s (etcdutl %s)\n", version.Cairn, version.Etcd)
			}
			fmt.Fprintln(g.stdout, "API version:", version.API)
		},
	}
}

func newCompletionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:       "completion [bash|zsh|fish|powershell]",
		Short:     "Generate completion script",
		ValidArgs: tool.Shells,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tool.WriteCompletion(cmd.Root(), g.stdout, args[0])
		},
	}
}

// newMigrateCommand answers etcdutl's migrate with why it does not apply.
func newMigrateCommand(g *globals) *cobra.Command {
	var dataDir, target string
	var force bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Migrates schema of etcd data dir files to make them compatible with different etcd version",
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("%s migrate: a Cairn data directory has no etcd storage schema to migrate; "+
				"to move to another etcd version, save a snapshot (etcdctl snapshot save) and restore it with that version's etcdutl", g.name)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "Path to the etcd data dir")
	cmd.Flags().StringVar(&target, "target-version", "", `Target etcd version to migrate contents of data dir. Minimal value 3.5. Format "X.Y" for example 3.6.`)
	cmd.Flags().BoolVar(&force, "force", false, "Ignore migration failure and forcefully override storage version. Not recommended.")
	return cmd
}

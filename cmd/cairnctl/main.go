package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/internal/tool"
)

func main() {
	os.Exit(run(filepath.Base(os.Args[0]), os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// run runs one command line and returns the exit code. name is what the
// tool calls itself in messages: how it was invoked, so that installed as
// etcdctl it prints exactly what etcdctl prints.
func run(name string, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if name != "etcdctl" {
		name = "cairnctl"
	}
	g := &globals{name: name, stdin: stdin, stdout: stdout, stderr: stderr, env: map[string]string{}}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			g.env[k] = v
		}
	}
	root := newRoot(g)
	root.SetArgs(args)
	// cobra's own output (an unknown help topic, shell completions) is
	// left on the process's streams, as etcdctl leaves it: cobra writes
	// the unknown topic to its "out" stream, stderr unless one is set.
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return tool.ExitSuccess
	}
	if !errors.Is(err, errLogged) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}
	var fe flagError
	if errors.As(err, &fe) {
		// etcdctl (cobra) follows a flag or argument error with the
		// command's usage and an empty line, on stderr.
		fmt.Fprintln(stderr, fe.cmd.UsageString())
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
	}
	var ee tool.ExitErr
	if errors.As(err, &ee) {
		return ee.Code
	}
	return tool.ExitError
}

// flagError is a command line cobra could not parse: a bad flag or flag
// value.
type flagError struct {
	cmd *cobra.Command
	err error
}

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

func init() {
	// etcdctl resolves a command from any unique prefix of its name:
	// "compact" is "compaction", "ver" is "version".
	cobra.EnablePrefixMatching = true
}

func newRoot(g *globals) *cobra.Command {
	short := "A simple command line client for etcd3."
	if g.name != "etcdctl" {
		short = "A simple command line client for Cairn (and etcd3)."
	}
	root := &cobra.Command{
		Use:           g.name,
		Short:         short,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.fromEnvironment(cmd)
		},
	}
	g.register(root.PersistentFlags())
	completeWith(root, "write-out", formatFields, formatJSON, formatProtobuf, formatSimple, formatTable)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError{cmd, err} })
	root.AddCommand(newPutCommand(g), newGetCommand(g), newDelCommand(g), newCompactCommand(g),
		newLeaseCommand(g), newWatchCommand(g), newTxnCommand(g), newMemberCommand(g), newEndpointCommand(g), newLockCommand(g), newElectCommand(g), newAlarmCommand(g), newDefragCommand(g),
		newMoveLeaderCommand(g), newSnapshotCommand(g), newAuthCommand(g), newUserCommand(g), newRoleCommand(g),
		newVersionCommand(g), newCompletionCommand(g), newDowngradeCommand(g), newMakeMirrorCommand(g), newCheckCommand(g))
	g.installHelp(root)
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}

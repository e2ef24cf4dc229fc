package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Help and usage text: etcdctl 3.7's, which is cobra's own layout
// (cairnctl is built on the same cobra release as etcdctl 3.7.3, so the
// text is byte for byte etcdctl's), with three changes etcdctl makes:
//
//   - the root command lists its commands in groups (key-value, cluster
//     maintenance, concurrency, authentication, utility);
//   - the global flags are hidden from every command's help: the options
//     command lists them, and every help text ends with a line saying so;
//   - the root command's -h/--help flag is hidden too.
//
// Help goes to stdout; a flag or argument error is followed by the
// command's usage on stderr (see run).

// The command groups of the root command's help, etcdctl's.
const (
	groupKV          = "kv"
	groupMaintenance = "cluster maintenance"
	groupConcurrency = "concurrency"
	groupAuth        = "authentication"
	groupUtility     = "utility"
)

// commandGroups places each top-level command in its group.
var commandGroups = map[string]string{
	"compaction": groupKV,
	"del":        groupKV,
	"get":        groupKV,
	"lease":      groupKV,
	"put":        groupKV,
	"txn":        groupKV,
	"watch":      groupKV,

	"alarm":       groupMaintenance,
	"defrag":      groupMaintenance,
	"downgrade":   groupMaintenance,
	"endpoint":    groupMaintenance,
	"member":      groupMaintenance,
	"move-leader": groupMaintenance,
	"snapshot":    groupMaintenance,

	"elect": groupConcurrency,
	"lock":  groupConcurrency,

	"auth": groupAuth,
	"role": groupAuth,
	"user": groupAuth,

	"check":       groupUtility,
	"completion":  groupUtility,
	"make-mirror": groupUtility,
	"options":     groupUtility,
	"version":     groupUtility,
}

// installHelp sets up root's help once its commands are added: groups,
// the options command, hidden global flags and the closing line.
func (g *globals) installHelp(root *cobra.Command) {
	root.AddGroup(
		&cobra.Group{ID: groupKV, Title: "Key-value commands"},
		&cobra.Group{ID: groupMaintenance, Title: "Cluster maintenance commands"},
		&cobra.Group{ID: groupConcurrency, Title: "Concurrency commands"},
		&cobra.Group{ID: groupAuth, Title: "Authentication commands"},
		&cobra.Group{ID: groupUtility, Title: "Utility commands"},
	)
	root.AddCommand(g.newOptionsCommand(root))
	for _, cmd := range root.Commands() {
		group, ok := commandGroups[cmd.Name()]
		if !ok {
			panic("cairnctl: command " + cmd.Name() + " has no help group")
		}
		cmd.GroupID = group
	}
	root.SetHelpCommandGroupID(groupUtility)

	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
	if root.Flags().Lookup("help") == nil {
		root.Flags().BoolP("help", "h", false, "help for "+root.Name())
	}
	root.Flags().Lookup("help").Hidden = true

	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		defaultHelp(cmd, args)
		fmt.Fprintf(cmd.OutOrStdout(), "Use \"%s options\" for a list of global command-line options (applies to all commands).\n", g.name)
	})
}

// newOptionsCommand is etcdctl's options: the global flags, which every
// other help text leaves out. Cairn's own global flags are listed only
// under the name cairnctl, as elsewhere in the help.
func (g *globals) newOptionsCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "options",
		Short: "Show the global command-line flags",
		Run: func(cmd *cobra.Command, _ []string) {
			fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
			root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
				if g.name == "etcdctl" && isExtension(f) {
					return
				}
				shown := *f
				shown.Hidden = false
				fs.AddFlag(&shown)
			})
			fmt.Fprint(g.stdout, "The following options can be passed to any command:\n\n")
			fmt.Fprint(g.stdout, fs.FlagUsages())
		},
	}
}

// parentCommand is a command that only holds subcommands: as in etcdctl,
// its one-line description in the root's list says how to list them, and
// its own help opens with the description alone.
func (g *globals) parentCommand(use, description string) *cobra.Command {
	name, _, _ := strings.Cut(use, " ")
	return &cobra.Command{
		Use:   use,
		Short: fmt.Sprintf("%s. Use `%s %s --help` to see subcommands", description, g.name, name),
		Long:  description,
	}
}

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Help and usage text: etcdctl's layout (NAME, USAGE, VERSION, API
// VERSION, Examples, COMMANDS, DESCRIPTION, OPTIONS, GLOBAL OPTIONS),
// written to stdout through a tab writer, so that `-h`, `help <command>`
// and the usage printed after a flag error are byte for byte etcdctl's.
//
// cobra renders help through the usage function (the help template is
// "{{.UsageString}}"), as etcdctl does; the usage function writes the text
// itself and returns nothing, which is why a flag error is followed by an
// empty line on stderr, in etcdctl as here.

// helpVersion and helpAPIVersion are the versions etcdctl v3.6 reports.
const (
	helpVersion    = "3.6.6"
	helpAPIVersion = "3.6"
)

func (g *globals) installHelp(root *cobra.Command) {
	root.SetHelpTemplate("{{.UsageString}}")
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		g.writeUsage(cmd)
		return nil
	})
}

// writeUsage writes cmd's help text to stdout.
func (g *globals) writeUsage(cmd *cobra.Command) {
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 1, '\t', 0)
	defer tw.Flush()
	w := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	w("NAME:\n")
	if cmd.HasParent() {
		w("  %s - %s\n", commandPath(cmd, cmd.Root()), cmd.Short)
	} else {
		w("  %s - %s\n", cmd.Name(), cmd.Short)
	}
	w("\nUSAGE:\n  %s\n", cmd.UseLine())
	if !cmd.HasParent() {
		w("\nVERSION:\n  %s\n", helpVersion)
	}
	if cmd.HasSubCommands() {
		w("\nAPI VERSION:\n  %s\n", helpAPIVersion)
	}
	if cmd.HasExample() {
		w("\nExamples:\n%s\n", cmd.Example)
	}
	if cmd.HasSubCommands() {
		w("\nCOMMANDS:\n")
		writeCommands(tw, cmd, cmd)
	}
	if cmd.Long != "" {
		w("\nDESCRIPTION:\n")
		for _, line := range strings.Split(strings.Trim(cmd.Long, "\n\t "), "\n") {
			w("  %s\n", line)
		}
	}
	if cmd.HasLocalFlags() {
		w("\nOPTIONS:\n")
		writeFlags(tw, cmd.LocalFlags())
	}
	if cmd.HasInheritedFlags() {
		w("\nGLOBAL OPTIONS:\n")
		writeFlags(tw, cmd.InheritedFlags())
	}
	w("\n")
}

// writeCommands lists every runnable command below cmd, depth first in
// name order, named by its path from start.
func writeCommands(out io.Writer, start, cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		if sub.Hidden {
			continue
		}
		if sub.Runnable() {
			fmt.Fprintf(out, "  %s\t%s\n", commandPath(sub, start), sub.Short)
		}
		writeCommands(out, start, sub)
	}
}

// commandPath names cmd by its path below start ("lease grant").
func commandPath(cmd, start *cobra.Command) string {
	parts := []string{cmd.Name()}
	for cmd.HasParent() && cmd.Parent() != start {
		cmd = cmd.Parent()
		parts = append([]string{cmd.Name()}, parts...)
	}
	return strings.Join(parts, " ")
}

// writeFlags writes one line per flag: "  -w, --write-out="simple"\tusage",
// a boolean's default in brackets ("--hex[=false]"), strings quoted.
func writeFlags(out io.Writer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		if f.Shorthand != "" {
			fmt.Fprintf(out, "  -%s, --%s", f.Shorthand, f.Name)
		} else {
			fmt.Fprintf(out, "      --%s", f.Name)
		}
		value := f.DefValue
		if f.Value.Type() == "string" {
			value = fmt.Sprintf("%q", value)
		}
		if f.NoOptDefVal != "" {
			fmt.Fprintf(out, "[=%s]", value)
		} else {
			fmt.Fprintf(out, "=%s", value)
		}
		fmt.Fprintf(out, "\t%s\n", f.Usage)
	})
}

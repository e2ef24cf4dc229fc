package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/internal/tool"
)

// newCompletionCommand is etcdctl's completion command: cobra's shell
// completion scripts for the whole command tree.
func newCompletionCommand(g *globals) *cobra.Command {
	long := strings.ReplaceAll(`To load completions:

Bash:

  $ source <(etcdctl completion bash)

  # To load completions for each session, execute once:
  # Linux:
  $ etcdctl completion bash > /etc/bash_completion.d/etcdctl
  # macOS:
  $ etcdctl completion bash > /usr/local/etc/bash_completion.d/etcdctl

Zsh:

  # If shell completion is not already enabled in your environment,
  # you will need to enable it.  You can execute the following once:

  $ echo "autoload -U compinit; compinit" >> ~/.zshrc

  # To load completions for each session, execute once:
  $ etcdctl completion zsh > "${fpath[1]}/_etcdctl"

  # You will need to start a new shell for this setup to take effect.

fish:

  $ etcdctl completion fish | source

  # To load completions for each session, execute once:
  $ etcdctl completion fish > ~/.config/fish/completions/etcdctl.fish

PowerShell:

  PS> etcdctl completion powershell | Out-String | Invoke-Expression

  # To load completions for every new session, run:
  PS> etcdctl completion powershell > etcdctl.ps1
  # and source this file from your PowerShell profile.
`, "etcdctl", g.name)
	return &cobra.Command{
		Use:                   "completion [bash|zsh|fish|powershell]",
		Short:                 "Generate completion script",
		Long:                  long,
		DisableFlagsInUseLine: true,
		ValidArgs:             tool.Shells,
		Args:                  usageArgs(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tool.WriteCompletion(cmd.Root(), g.stdout, args[0])
		},
	}
}

// usageArgs makes an argument check's error a flagError, which is
// followed by the command's usage, as cobra does for etcdctl.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return flagError{cmd, err}
		}
		return nil
	}
}

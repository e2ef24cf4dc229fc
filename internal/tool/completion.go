package tool

import (
	"io"

	"github.com/spf13/cobra"
)

// Shells are the shells the completion command writes scripts for.
var Shells = []string{"bash", "zsh", "fish", "powershell"}

// WriteCompletion writes root's completion script for shell (one of
// Shells) to w, as etcdctl's and etcdutl's completion commands do.
func WriteCompletion(root *cobra.Command, w io.Writer, shell string) error {
	switch shell {
	case "bash":
		return root.GenBashCompletion(w)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	default:
		return root.GenPowerShellCompletionWithDesc(w)
	}
}

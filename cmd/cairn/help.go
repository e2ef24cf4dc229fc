package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/cairn-db/cairn/internal/version"
)

// programName is what cairn calls itself: "etcd" when installed under
// that name (so that its help reads as etcd's), else "cairn".
func programName(argv0 string) string {
	if argv0 == "etcd" {
		return "etcd"
	}
	return "cairn"
}

// usageText is the head of --help (etcd prints it to stderr, and alone
// after a bad flag). Under the name etcd it is etcd 3.7.3's.
func usageText(prog string) string {
	start, about := "Start an etcd server.", "Show the version of etcd."
	help := "Show the help information about etcd."
	if prog != "etcd" {
		start = "Start a Cairn member (etcd " + version.Etcd + "'s flags, defaults and API)."
		about = "Show the version of Cairn and of the etcd release it follows."
		help = "Show the help information about cairn."
	}
	return fmt.Sprintf(`Usage:

  %[1]s [flags]
    %[2]s

  %[1]s --version
    %[3]s

  %[1]s -h | --help
    %[4]s

  %[1]s --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
    Duration-typed fields (for example --heartbeat-interval, --election-timeout,
    --watch-progress-notify-interval) must be specified as integer nanoseconds
    in the JSON/YAML file (e.g. 600000000000 for 10m); human-readable strings
    such as "10m" are only accepted on the command line.

  %[1]s gateway
    Run the stateless pass-through etcd TCP connection forwarding proxy.

  %[1]s grpc-proxy
    Run the stateless etcd v3 gRPC L7 reverse proxy.

`, prog, start, about, help)
}

// flagsText is the body of --help (etcd prints it to stdout): the flags
// by section, each with its default, as etcd 3.7.3 lays them out.
func flagsText(defs []flagDef) string {
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "\n%s:\n", g)
		for _, d := range defs {
			if d.group != g {
				continue
			}
			b.WriteString("  --" + d.name)
			if d.shown != "" {
				b.WriteString(" " + d.shown)
			}
			b.WriteString("\n")
			for line := range strings.SplitSeq(d.usage, "\n") {
				b.WriteString("    " + line + "\n")
			}
		}
	}
	b.WriteString("\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n\n")
	return b.String()
}

// versionText is what --version prints: etcd's four lines, the first
// naming the etcd release Cairn follows, then Cairn's own version.
// versionText is --version: etcd's four lines first, naming the etcd
// release whose flags, defaults and behaviour Cairn follows, so that tools
// which read etcd's "etcd Version:" line work unchanged; then Cairn's own.
func versionText() string {
	sha := "Not provided (use ./build instead of go build)"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				sha = s.Value
			}
		}
	}
	return fmt.Sprintf("etcd Version: %s\nGit SHA: %s\nGo Version: %s\nGo OS/Arch: %s/%s\ncairn Version: %s\n",
		version.Etcd, sha, runtime.Version(), runtime.GOOS, runtime.GOARCH, version.Cairn)
}

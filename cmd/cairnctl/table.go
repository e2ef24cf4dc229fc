package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/dustin/go-humanize"
)

// renderTable draws rows as etcdctl's tables: a border, the header in
// capitals centred, the cells right-aligned.
func renderTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	var border strings.Builder
	border.WriteString("+")
	for _, wd := range widths {
		border.WriteString(strings.Repeat("-", wd+2) + "+")
	}
	line := func(cells []string, centre bool) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := widths[i] - len(c)
			left := pad
			if centre {
				left = pad / 2
			}
			b.WriteString(" " + strings.Repeat(" ", left) + c + strings.Repeat(" ", pad-left) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintln(w, border.String())
	upper := make([]string, len(header))
	for i, h := range header {
		upper[i] = strings.ToUpper(h)
	}
	line(upper, true)
	fmt.Fprintln(w, border.String())
	for _, r := range rows {
		line(r, false)
	}
	fmt.Fprintln(w, border.String())
}

// humanBytes is how etcdctl prints sizes (go-humanize's SI bytes).
func humanBytes(n int64) string { return humanize.Bytes(uint64(n)) }

package tool

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
)

// Render draws rows as etcdctl 3.7's tables (tablewriter 1.x's
// default look): box-drawing borders, the header in capitals centred, the
// cells right-aligned, a rule between the header and the rows only when
// there are rows. Widths count runes, not bytes ("µs").
func Render(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	rule := func(left, mid, right string) {
		var b strings.Builder
		b.WriteString(left)
		for i, wd := range widths {
			if i > 0 {
				b.WriteString(mid)
			}
			b.WriteString(strings.Repeat("─", wd+2))
		}
		b.WriteString(right)
		fmt.Fprintln(w, b.String())
	}
	line := func(cells []string, centre bool) {
		var b strings.Builder
		b.WriteString("│")
		for i, c := range cells {
			pad := widths[i] - utf8.RuneCountInString(c)
			left := pad
			if centre {
				left = pad / 2
			}
			b.WriteString(" " + strings.Repeat(" ", left) + c + strings.Repeat(" ", pad-left) + " │")
		}
		fmt.Fprintln(w, b.String())
	}
	rule("┌", "┬", "┐")
	upper := make([]string, len(header))
	for i, h := range header {
		upper[i] = strings.ToUpper(h)
	}
	line(upper, true)
	if len(rows) > 0 {
		rule("├", "┼", "┤")
	}
	for _, r := range rows {
		line(r, false)
	}
	rule("└", "┴", "┘")
}

// HumanBytes is how etcdctl prints sizes (go-humanize's SI bytes).
func HumanBytes(n int64) string { return humanize.Bytes(uint64(n)) }

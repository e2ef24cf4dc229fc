package main

import (
	"fmt"
	"io"
	"strings"
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

// humanBytes is go-humanize's Bytes (etcdctl's): SI units, one decimal
// below 10.
func humanBytes(n int64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	// go-humanize rounds to one decimal first, then drops it from 10 up.
	v = float64(int64(v*10+0.5)) / 10
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

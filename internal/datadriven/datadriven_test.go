package datadriven

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	const file = `# What the first scenario proves.
cmd 1 2 key=v list=(a,b) empty=()
----
line one
line two

# Second.
other
----
ok
`
	blocks, err := parse("f.txt", file)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("%d blocks, want 2", len(blocks))
	}
	d := blocks[0].data
	if d.Cmd != "cmd" || d.Pos != "f.txt:2" || d.Expected != "line one\nline two" {
		t.Fatalf("first block: %+v", d)
	}
	if got := d.Positional(t); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("positional %v", got)
	}
	if d.Str(t, "key", "") != "v" || d.Str(t, "missing", "def") != "def" {
		t.Fatal("Str")
	}
	if a, _ := d.arg("list"); !slices.Equal(a.Vals, []string{"a", "b"}) {
		t.Fatalf("list %v", a.Vals)
	}
	if a, ok := d.arg("empty"); !ok || len(a.Vals) != 0 {
		t.Fatalf("empty list %v %v", a, ok)
	}
	if blocks[1].preamble != "\n# Second.\n" || blocks[1].data.Expected != "ok" {
		t.Fatalf("second block: %q %+v", blocks[1].preamble, blocks[1].data)
	}
	if _, err := parse("f.txt", "cmd\nnot a separator\n"); err == nil {
		t.Fatal("a command without ---- parsed")
	}
	if _, err := parse("f.txt", "cmd list=(a,b\n----\nok\n"); err == nil {
		t.Fatal("an unterminated list parsed")
	}
}

// TestRunTestRoundTrip: running a script whose expectations hold leaves the
// file exactly as it was when rewritten (comments and spacing survive).
func TestRunTestRoundTrip(t *testing.T) {
	const file = "# Doubles.\ndouble 2\n----\n4\n\n# Trailing comment.\n"
	path := filepath.Join(t.TempDir(), "s.txt")
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	handler := func(t *testing.T, d *TestData) string {
		return "4"
	}
	RunTest(t, path, handler)
	old := *rewrite
	*rewrite = true
	defer func() { *rewrite = old }()
	RunTest(t, path, handler)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != file {
		t.Fatalf("rewrite changed the file:\n%q\nwant\n%q", got, file)
	}
}

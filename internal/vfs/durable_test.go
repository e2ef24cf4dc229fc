package vfs

import "testing"

// MkdirAllDurable leaves a path that survives a crash, also when an earlier
// attempt created it and died before syncing.
func TestMkdirAllDurable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		earlier func(fs *MemFS)
	}{
		{"fresh", func(*MemFS) {}},
		{"created by a killed attempt", func(fs *MemFS) { fs.MkdirAll("/data/member/snap", 0o700) }},
		{"partly created", func(fs *MemFS) { fs.MkdirAll("/data", 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := NewMem()
			tc.earlier(fs)
			if err := MkdirAllDurable(fs, "/data/member/snap"); err != nil {
				t.Fatal(err)
			}
			fs.Crash()
			if !Exists(fs, "/data/member/snap") {
				t.Fatalf("the directory is gone after a crash:\n%s", fs)
			}
		})
	}
	// A failed sync is reported, and a retry makes the path durable.
	mem := NewMem()
	efs := NewErrorFS(mem)
	efs.FailNth(OpSync, 1, nil)
	if err := MkdirAllDurable(efs, "/data/member/snap"); err == nil {
		t.Fatal("a failed sync was not reported")
	}
	if err := MkdirAllDurable(efs, "/data/member/snap"); err != nil {
		t.Fatal(err)
	}
	mem.Crash()
	if !Exists(mem, "/data/member/snap") {
		t.Fatal("the directory is gone after a crash")
	}
}

package lograte

import (
	"testing"
	"time"
)

// The first call logs; calls within the period are counted into the next
// line, which stands for them and itself.
func TestLimit(t *testing.T) {
	var l Limit
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at     time.Duration
		n      int
		logged bool
	}{
		{0, 1, true},
		{100 * time.Millisecond, 0, false},
		{900 * time.Millisecond, 0, false},
		{time.Second, 3, true},
		{1500 * time.Millisecond, 0, false},
		{5 * time.Second, 2, true},
		{7 * time.Second, 1, true},
	}
	for _, s := range steps {
		if n, ok := l.Take(t0.Add(s.at)); n != s.n || ok != s.logged {
			t.Fatalf("at %v: Take = %d, %v; want %d, %v", s.at, n, ok, s.n, s.logged)
		}
	}
	l2 := Limit{Every: 10 * time.Second}
	l2.Take(t0)
	if _, ok := l2.Take(t0.Add(9 * time.Second)); ok {
		t.Fatal("a 10 s limit let a line through after 9 s")
	}
}

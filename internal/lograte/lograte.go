package lograte

import (
	"sync"
	"time"
)

// Limit lets a line through at most once every Every (default: a second).
// It is safe for concurrent use; the zero value is ready.
type Limit struct {
	Every time.Duration

	mu sync.Mutex
	// last is when the last line went through; since counts the calls
	// since then that did not.
	last  time.Time
	since int
}

// Take reports whether a line may be logged now and, if so, how many
// calls it stands for (this one included).
func (l *Limit) Take(now time.Time) (n int, ok bool) {
	every := l.Every
	if every <= 0 {
		every = time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.since++
	if !l.last.IsZero() && now.Sub(l.last) < every {
		return 0, false
	}
	n, l.last, l.since = l.since, now, 0
	return n, true
}

// Package lograte limits how often a log line repeats: a line that can
// fire thousands of times a second (a request timing out under overload,
// pebble failing the same flush again and again on a full disk) is
// written at most once a period, and says how many it stands for, so the
// log stays readable and a full disk does not fill with it.
//
//	var l lograte.Limit // zero value: one line a second
//	if n, ok := l.Take(time.Now()); ok {
//		logger.Warn("request timed out", zap.Int("timeouts", n))
//	}
//
// The first call always logs (n == 1); later calls within the period are
// counted, and the first call after it logs with n = the calls since the
// last line, itself included.
package lograte

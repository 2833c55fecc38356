// Package tick lines periodic work up on a grid of the wall clock, so that
// the like timers of hundreds of goroutines (one set per site) wake the
// process together, once per period, instead of each at its own moment:
// an idle process's cost is mostly its wake-ups, not the work they do.
package tick

import "time"

// UntilNext returns how long from now until the next multiple of every
// since the Unix epoch: at most every, never zero. every must be positive.
func UntilNext(now time.Time, every time.Duration) time.Duration {
	return every - time.Duration(now.UnixNano()%int64(every))
}

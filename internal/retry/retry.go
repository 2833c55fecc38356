// Package retry is how erpsync waits before trying again something that
// failed, and how it reports a failure that lasts: once when it starts and
// once when it ends, not on every try.
package retry

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff returns how long to wait before try n+1 after n failures:
// exponential with full jitter, a random wait in [0, min(limit, 1s·2^n)],
// and at least 100ms.
func Backoff(n int, limit time.Duration) time.Duration {
	ceil := time.Second << min(n, 30)
	if ceil <= 0 || ceil > limit {
		ceil = limit
	}
	return max(time.Duration(rand.Int64N(int64(ceil)+1)), 100*time.Millisecond)
}

// Sleep waits for d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Outage is a run of failures of one thing: Failed logs the first at ERROR
// and the others at DEBUG; Recovered logs the end once, with how long it
// lasted. The zero Outage is ready to use.
type Outage struct {
	since time.Time
	count int
}

// Failed records a failure of what.
func (o *Outage) Failed(log *slog.Logger, what string, err error) {
	o.count++
	if o.count == 1 {
		o.since = time.Now()
		log.Error(what+" failed; retrying with backoff until it recovers", "err", err)
		return
	}
	log.Debug(what+" still failing", "err", err, "failures", o.count)
}

// Recovered ends the outage, if there is one, and logs its end.
func (o *Outage) Recovered(log *slog.Logger, what string) {
	if o.count > 0 {
		log.Info(what+" recovered", "failures", o.count, "outage", time.Since(o.since).Round(time.Millisecond).String())
	}
	o.count = 0
}

// Failures is how many failures the outage has had so far (0: none).
func (o *Outage) Failures() int { return o.count }

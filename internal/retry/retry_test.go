package retry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestBackoffIsFullJitterCapped: exponential with full jitter, capped by
// limit and at least 100ms, with no overflow past 2^30.
func TestBackoffIsFullJitterCapped(t *testing.T) {
	const limit = 10 * time.Minute
	for n := 1; n <= 40; n++ {
		ceil := min(limit, time.Second<<min(n, 30))
		var low, high int
		for i := 0; i < 200; i++ {
			d := Backoff(n, limit)
			if d < 100*time.Millisecond || d > ceil {
				t.Fatalf("Backoff(%d) = %s, want within [100ms, %s]", n, d, ceil)
			}
			if d < ceil/2 {
				low++
			} else {
				high++
			}
		}
		if low == 0 || high == 0 {
			t.Errorf("Backoff(%d): 200 draws, %d below half the ceiling and %d above: not full jitter", n, low, high)
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep of 1ms reported a cancelled context")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) || time.Since(start) > time.Second {
		t.Error("Sleep did not end with its context")
	}
}

func TestOutageLogsOnceEachWay(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var o Outage
	o.Recovered(log, "database") // no outage: nothing
	for i := 0; i < 5; i++ {
		o.Failed(log, "database", errors.New("refused"))
	}
	if o.Failures() != 5 {
		t.Errorf("Failures = %d, want 5", o.Failures())
	}
	o.Recovered(log, "database")
	o.Recovered(log, "database")
	out := buf.String()
	if strings.Count(out, "database failed") != 1 || strings.Count(out, "database recovered") != 1 || !strings.Contains(out, "failures=5") {
		t.Errorf("log:\n%s\nwant one failure line and one recovery line with failures=5", out)
	}
}

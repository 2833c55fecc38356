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

func TestBackoffStaysWithinItsCurve(t *testing.T) {
	tests := []struct {
		n      int
		limit  time.Duration
		wantHi time.Duration
	}{
		{0, time.Minute, time.Second},
		{1, time.Minute, 2 * time.Second},
		{3, 5 * time.Second, 5 * time.Second},
		{40, 10 * time.Minute, 10 * time.Minute}, // no overflow past 2^30
	}
	for _, tc := range tests {
		var top time.Duration
		for i := 0; i < 2000; i++ {
			d := Backoff(tc.n, tc.limit)
			if d < 100*time.Millisecond || d > tc.wantHi {
				t.Fatalf("Backoff(%d, %s) = %s, want within [100ms, %s]", tc.n, tc.limit, d, tc.wantHi)
			}
			top = max(top, d)
		}
		if top < tc.wantHi/2 {
			t.Errorf("Backoff(%d, %s) never above %s in 2000 draws: not full jitter up to %s", tc.n, tc.limit, top, tc.wantHi)
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

package tick

import (
	"testing"
	"time"
)

func TestUntilNext(t *testing.T) {
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) // a multiple of every period below
	for _, tc := range []struct {
		name  string
		now   time.Time
		every time.Duration
		want  time.Duration
	}{
		{"on the grid: a whole period", base, 5 * time.Second, 5 * time.Second},
		{"just after", base.Add(time.Nanosecond), 5 * time.Second, 5*time.Second - time.Nanosecond},
		{"mid-period", base.Add(2 * time.Second), 5 * time.Second, 3 * time.Second},
		{"just before", base.Add(59*time.Second + 999*time.Millisecond), time.Minute, time.Millisecond},
		{"a period that does not divide a day", base.Add(100 * time.Millisecond), 7 * time.Second, 7*time.Second - 100*time.Millisecond - time.Duration(base.UnixNano()%int64(7*time.Second))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := UntilNext(tc.now, tc.every)
			if got != tc.want {
				t.Errorf("UntilNext(%v, %v) = %v, want %v", tc.now, tc.every, got, tc.want)
			}
			if got <= 0 || got > tc.every {
				t.Errorf("UntilNext = %v, outside (0, %v]", got, tc.every)
			}
			if at := tc.now.Add(got); at.UnixNano()%int64(tc.every) != 0 {
				t.Errorf("now + %v = %v is not on the grid of %v", got, at, tc.every)
			}
		})
	}
}

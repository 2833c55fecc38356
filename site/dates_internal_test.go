package site

import (
	"testing"
	"time"
)

func TestNextDate(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC) // this host's clock when now was read
	for _, tc := range []struct {
		name string
		now  string
		loc  *time.Location
		want time.Duration // after at; 0: the zero time
	}{
		{"midday", "2026-12-02 12:00:00.000000", kolkata, 12 * time.Hour},
		{"a second before midnight", "2026-12-02 23:59:59.000000", kolkata, time.Second},
		{"at midnight", "2026-12-03 00:00:00.000000", kolkata, 24 * time.Hour},
		{"fractions", "2026-12-02 23:59:59.250000", kolkata, 750 * time.Millisecond},
		{"a day of 23 hours (clocks go forward)", "2026-03-29 00:00:00.000000", berlin, 23 * time.Hour},
		{"a day of 25 hours (clocks go back)", "2026-10-25 00:00:00.000000", berlin, 25 * time.Hour},
		{"not a time", "yesterday", kolkata, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextDate(tc.now, tc.loc, at)
			if tc.want == 0 {
				if !got.IsZero() {
					t.Fatalf("nextDate(%q) = %v, want the zero time", tc.now, got)
				}
				return
			}
			if d := got.Sub(at); d != tc.want {
				t.Errorf("nextDate(%q, %s): in %v, want %v", tc.now, tc.loc, d, tc.want)
			}
		})
	}
}

package site

import (
	"testing"
	"time"
)

func TestResyncParseSince(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	must(t, err)
	const now = "2026-03-10 12:00:00.000000"
	tests := []struct {
		in, want string
	}{
		{"2026-01-31", "2026-01-31 00:00:00.000000"},
		{"2026-01-31 14:05", "2026-01-31 14:05:00.000000"},
		{"2026-01-31 14:05:06", "2026-01-31 14:05:06.000000"},
		{"2026-01-31T14:05:06.25", "2026-01-31 14:05:06.250000"},
		{"2026-01-31T08:35:06Z", "2026-01-31 14:05:06.000000"}, // UTC, converted to +05:30
		{"2026-01-31T14:05:06+05:30", "2026-01-31 14:05:06.000000"},
		{"6h", "2026-03-10 06:00:00.000000"},
		{"90m", "2026-03-10 10:30:00.000000"},
		{"3d", "2026-03-07 12:00:00.000000"},
		{"yesterday", ""},
		{"-1h", ""},
		{"31/01/2026", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSince(tt.in, kolkata, now)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

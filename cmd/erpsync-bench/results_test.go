package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestBulkBound(t *testing.T) {
	tests := []struct {
		name string
		b    Bulk
		want float64
	}{
		{"no ceiling", Bulk{CPU: CPU{MariaDB: 1, Bench: 1}, CeilingCPU: CPU{Bench: 2}}, 0},
		{"no CPU measured", Bulk{CeilingItemsPerSec: 1, CeilingCPU: CPU{Bench: 2}}, 0},
		// The 100k bulk at batch 100 of the full run at 959d2e7.
		{"receiver and mariadbd only", Bulk{CeilingItemsPerSec: 1, CPU: CPU{Erpsync: 5.93, MariaDB: 4.40, Bench: 12.82}, CeilingCPU: CPU{Bench: 8.51}}, 8.51 / 17.22},
		{"erpsync's own CPU does not count", Bulk{CeilingItemsPerSec: 1, CPU: CPU{Erpsync: 100, MariaDB: 1, Bench: 1}, CeilingCPU: CPU{Bench: 3}}, 1.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Bound(); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Bound() = %v, want %v", got, tt.want)
			}
		})
	}
}

// Row 5 judges flatness on the same change and the 64 MB limit on any run.
func TestPrintTableRSSRows(t *testing.T) {
	tests := []struct {
		name         string
		small, large RSS
		flat, limit  string
	}{
		{"flat, under the limit",
			RSS{Catalogue: 10000, PeakMB: 47.6, SameChangePeakMB: 47.6}, RSS{Catalogue: 100000, PeakMB: 60.2, SameChangePeakMB: 55.7},
			"(×1.17) | — | flat (≤ ×1.25) | **met** |", "47.6 MB vs 60.2 MB | — | < 64 MB | **met** |"},
		{"a larger change does not make it grow",
			RSS{Catalogue: 10000, PeakMB: 40, SameChangePeakMB: 40}, RSS{Catalogue: 100000, PeakMB: 60, SameChangePeakMB: 50},
			"(×1.25) | — | flat (≤ ×1.25) | **met** |", "| < 64 MB | **met** |"},
		{"grows with the catalogue",
			RSS{Catalogue: 10000, PeakMB: 40, SameChangePeakMB: 40}, RSS{Catalogue: 100000, PeakMB: 52, SameChangePeakMB: 52},
			"(×1.30) | — | flat (≤ ×1.25) | **MISSED** |", "| < 64 MB | **met** |"},
		{"over the limit",
			RSS{Catalogue: 10000, PeakMB: 40, SameChangePeakMB: 40}, RSS{Catalogue: 100000, PeakMB: 64.5, SameChangePeakMB: 45},
			"| flat (≤ ×1.25) | **met** |", "| < 64 MB | **MISSED** |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Results{RSS: []RSS{tt.small, tt.large}, Bulk: []Bulk{{Catalogue: 10000, Items: 9566, Batch: 1}}}
			var buf bytes.Buffer
			printTable(&buf, r)
			var rows []string
			for _, line := range strings.Split(buf.String(), "\n") {
				if strings.HasPrefix(line, "| 5 |") {
					rows = append(rows, line)
				}
			}
			if len(rows) != 2 {
				t.Fatalf("%d rows 5, want 2:\n%s", len(rows), buf.String())
			}
			if !strings.Contains(rows[0], "same change") || !strings.Contains(rows[0], "bulk of 9,566 prices") || !strings.HasSuffix(rows[0], tt.flat) {
				t.Errorf("same-change row:\n%s\nwant it to end with %q", rows[0], tt.flat)
			}
			if !strings.Contains(rows[1], "any run") || !strings.HasSuffix(rows[1], tt.limit) {
				t.Errorf("any-run row:\n%s\nwant it to end with %q", rows[1], tt.limit)
			}
		})
	}
}

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

// A cost row: CPU per 1,000 items of each binary, new/baseline, the bound
// 1.25 and its verdict, the other processes' load beside.
func TestCostRow(t *testing.T) {
	run := func(items int, cpu, other float64) costRun {
		return costRun{items: items, cpu: CPU{Erpsync: cpu, MariaDB: 9, Bench: 9, OtherPercent: other}, complete: true}
	}
	tests := []struct {
		name        string
		measurement string
		catalogue   int
		items       int
		batch       int
		base, cur   costRun
		ratio       float64
		verdict     string
		row         string // the whole row
	}{
		{"within", "initial sync", 20000, 20000, 100, run(20000, 2.4, 12), run(20000, 2.6, 30), 2.6 / 2.4, "within",
			"| initial sync, batch 100, 20k catalogue | 20,000 | 0.120 | 0.130 | ×1.08 | ≤ ×1.25 | **within** | 12% / 30% |"},
		{"cheaper than before", "bulk change", 20000, 19130, 100, run(19130, 1.2, 0), run(19130, 0.9, 0), 0.75, "within",
			"| bulk change, batch 100, 20k catalogue | 19,130 | 0.063 | 0.047 | ×0.75 | ≤ ×1.25 | **within** | 0% / 0% |"},
		{"at the bound", "bulk change", 8500, 8000, 1, run(8000, 1.6, 5), run(8000, 2.0, 7), 1.25, "within",
			"| bulk change, batch 1, 8,500 catalogue | 8,000 | 0.200 | 0.250 | ×1.25 | ≤ ×1.25 | **within** | 5% / 7% |"},
		{"over", "bulk change", 20000, 19130, 1, run(19130, 3.8, 40), run(19130, 5.0, 41), 5.0 / 3.8, "over",
			"| bulk change, batch 1, 20k catalogue | 19,130 | 0.199 | 0.261 | ×1.32 | ≤ ×1.25 | **over** | 40% / 41% |"},
		{"per item delivered when incomplete", "bulk change", 20000, 20000, 100,
			costRun{items: 10000, cpu: CPU{Erpsync: 1}}, run(20000, 2, 0), 1, "within",
			"| bulk change, batch 100, 20k catalogue | 20,000 | 0.100 | 0.100 | ×1.00 | ≤ ×1.25 | **within** (incomplete: per item delivered) | 0% / 0% |"},
		{"the baseline delivered nothing", "bulk change", 20000, 20000, 100,
			costRun{cpu: CPU{Erpsync: 1}}, run(20000, 2, 0), 0, "",
			"| bulk change, batch 100, 20k catalogue | 20,000 | 0.000 | 0.100 | — | ≤ ×1.25 | — (incomplete: per item delivered) | 0% / 0% |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCost(tt.measurement, tt.catalogue, tt.items, tt.batch, tt.base, tt.cur)
			if math.Abs(c.Ratio-tt.ratio) > 1e-9 || c.Verdict != tt.verdict || c.Bound != 1.25 {
				t.Errorf("ratio %v, verdict %q, bound %v; want %v, %q, 1.25", c.Ratio, c.Verdict, c.Bound, tt.ratio, tt.verdict)
			}
			r := &Results{Cost: []Cost{c}, Baseline: &Baseline{Path: "/tmp/erpsync-base.bin", Version: "erpsync bfb88b5"}}
			var buf bytes.Buffer
			printTable(&buf, r)
			var rows []string
			for _, line := range strings.Split(buf.String(), "\n") {
				if strings.HasPrefix(line, "| "+tt.measurement+",") {
					rows = append(rows, line)
				}
			}
			if len(rows) != 1 || rows[0] != tt.row {
				t.Errorf("cost rows:\n%s\nwant\n%s", strings.Join(rows, "\n"), tt.row)
			}
			if !strings.Contains(buf.String(), "`erpsync bfb88b5` (/tmp/erpsync-base.bin)") {
				t.Errorf("the table does not name the baseline:\n%s", buf.String())
			}
			if strings.Contains(buf.String(), "| # | measure |") {
				t.Errorf("an --only cost run printed the main table's header:\n%s", buf.String())
			}
		})
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Results is everything one run measured; it is also the JSON output.
type Results struct {
	Command        string            `json:"command"`
	Started        string            `json:"started"`
	Seconds        float64           `json:"seconds"`
	Machine        Machine           `json:"machine"`
	Settings       map[string]string `json:"settings"`
	Latency        []Latency         `json:"latency"`
	LatencyCeiling *Latency          `json:"latency_ceiling,omitempty"`
	Bulk           []Bulk            `json:"bulk"`
	Initial        []Initial         `json:"initial_sync"`
	Idle           []Idle            `json:"idle"`
	RSS            []RSS             `json:"rss"`
	Baseline       *Baseline         `json:"baseline,omitempty"`
	Cost           []Cost            `json:"cost,omitempty"`
	Sites          []SitesRow        `json:"sites,omitempty"`
	Receiver       string            `json:"receiver"`
	Notes          []string          `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs     int    `json:"cpus"`
	Model    string `json:"cpu_model"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	MariaDB  string `json:"mariadb"`
}

// Latency is COMMIT → accepted at the receiver, in milliseconds.
type Latency struct {
	Mode      string  `json:"mode"` // "poll", "watch" or "ceiling"
	Catalogue int     `json:"catalogue_items"`
	Changes   int     `json:"changes"`
	Missed    int     `json:"missed"` // not accepted within 5s
	P50       float64 `json:"p50_ms"`
	P95       float64 `json:"p95_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	CPU       CPU     `json:"cpu_seconds"`
}

// Bulk is one transaction changing Items prices → all new versions accepted.
type Bulk struct {
	Catalogue          int     `json:"catalogue_items"`
	Items              int     `json:"items"`
	Batch              int     `json:"batch_size"`
	Verified           int     `json:"verified"`
	Complete           bool    `json:"complete"`
	Seconds            float64 `json:"seconds"`
	ItemsPerSec        float64 `json:"items_per_sec"`
	CeilingSeconds     float64 `json:"ceiling_seconds"`
	CeilingItemsPerSec float64 `json:"ceiling_items_per_sec"`
	Ratio              float64 `json:"ratio_to_ceiling"`
	PeakRSSMB          float64 `json:"peak_rss_mb"`
	CPU                CPU     `json:"cpu_seconds"`         // used during the erpsync run
	CeilingCPU         CPU     `json:"ceiling_cpu_seconds"` // receiver + client (bench) during the ceiling run
	Connections        int64   `json:"connections"`         // TCP connections erpsync opened to the receiver during the run
	Requests           int64   `json:"requests"`            // requests the receiver accepted during the run
	CeilingRequests    int64   `json:"ceiling_requests"`    // the same for the ceiling
}

// Bound is the ratio to the ceiling erpsync would reach if it used no CPU at
// all: with every core busy in both runs, the time of a run is its CPU over
// the cores, so the ceiling's CPU (receiver and client) over what the
// receiver and mariadbd alone used in erpsync's run. 0 without a ceiling.
func (b Bulk) Bound() float64 {
	others := b.CPU.MariaDB + b.CPU.Bench
	if b.CeilingItemsPerSec == 0 || others == 0 {
		return 0
	}
	return b.CeilingCPU.Bench / others
}

// smallBulk is how many prices the small catalogue's bulk changed.
func smallBulk(r *Results) int {
	for _, b := range r.Bulk {
		if len(r.RSS) > 0 && b.Catalogue == r.RSS[0].Catalogue {
			return b.Items
		}
	}
	return 0
}

// CPU is CPU time in seconds, per process.
type CPU struct {
	Erpsync float64 `json:"erpsync"`
	MariaDB float64 `json:"mariadbd"`
	Bench   float64 `json:"bench_receiver"` // the bench process: the verifying receiver (and the ceiling client)
	// Load from outside the bench meanwhile, in % of one core: other
	// processes on the machine, and time the hypervisor stole. Figures
	// measured under such load are slower than the machine can do.
	OtherPercent float64 `json:"other_processes_percent"`
	StealPercent float64 `json:"steal_percent"`
	// Share of the time some task on the machine waited for the disk
	// (/proc/pressure/io): erpsync's and mariadbd's own writes count too.
	IOStallPercent float64 `json:"io_stall_percent"`
}

// Initial is the first start on a catalogue: every item sent once.
type Initial struct {
	Items              int     `json:"items"`
	Batch              int     `json:"batch_size"`
	Complete           bool    `json:"complete"`
	Seconds            float64 `json:"seconds"`
	ItemsPerSec        float64 `json:"items_per_sec"`
	CeilingItemsPerSec float64 `json:"ceiling_items_per_sec"`
	PeakRSSMB          float64 `json:"peak_rss_mb"`
	CPU                CPU     `json:"cpu_seconds"`
}

// Idle is the daemon's cost with nothing changing.
type Idle struct {
	Catalogue         int     `json:"catalogue_items"`
	After             string  `json:"after,omitempty"` // "" idle from a settled state; else what came just before
	Seconds           float64 `json:"seconds"`
	CPUPercent        float64 `json:"cpu_percent_of_one_core"`
	RSSMB             float64 `json:"rss_mb"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	HighWaterMB       float64 `json:"rss_high_water_mb,omitempty"` // VmHWM at the end: the peak since the process started
	MariaDBCPUPercent float64 `json:"mariadb_cpu_percent_of_one_core"`
	CPU               CPU     `json:"cpu_seconds"`
}

// RSS is the largest VmHWM of any daemon run on a catalogue.
type RSS struct {
	Catalogue int     `json:"catalogue_items"`
	PeakMB    float64 `json:"peak_rss_mb"` // of any run on the catalogue
	// SameChangePeakMB is the peak of the runs that changed no more prices
	// than the small catalogue's bulk: initial sync, idle, and on the large
	// catalogue a bulk change of that many prices. Memory may grow with the
	// size of a change, not with the catalogue's.
	SameChangePeakMB float64 `json:"same_change_peak_rss_mb"`
}

// Baseline is the erpsync binary the cost rows compare with (--baseline).
type Baseline struct {
	Path    string `json:"path"`
	Version string `json:"version"` // what its `erpsync version` printed
}

// Cost compares the CPU the erpsync daemon process itself used per item with
// the baseline binary's, both measured on the same catalogue in the same run,
// one after the other (--baseline).
type Cost struct {
	Measurement string `json:"measurement"` // "initial sync" or "bulk change"
	Catalogue   int    `json:"catalogue_items"`
	Items       int    `json:"items"` // per run: the catalogue's, or the prices the bulk changed
	Batch       int    `json:"batch_size"`
	// CPU seconds of one core per 1,000 items delivered.
	BaselinePer1000 float64 `json:"baseline_cpu_seconds_per_1000_items"`
	NewPer1000      float64 `json:"new_cpu_seconds_per_1000_items"`
	Ratio           float64 `json:"ratio"`    // new / baseline; 0 when either delivered nothing
	Bound           float64 `json:"bound"`    // the largest ratio within the target
	Verdict         string  `json:"verdict"`  // "within" or "over"; "" without a ratio
	Complete        bool    `json:"complete"` // both runs delivered every item
	// Load from other processes meanwhile, in % of one core (CPU.OtherPercent).
	BaselineOtherPercent float64 `json:"baseline_other_processes_percent"`
	NewOtherPercent      float64 `json:"new_other_processes_percent"`
	BaselineCPU          CPU     `json:"baseline_cpu_seconds"`
	NewCPU               CPU     `json:"new_cpu_seconds"`
}

// costRun is one binary's side of a Cost: items delivered and the CPU used.
type costRun struct {
	items    int
	cpu      CPU
	complete bool
}

// per1000 is the daemon's CPU seconds per 1,000 items delivered.
func (r costRun) per1000() float64 {
	if r.items <= 0 {
		return 0
	}
	return r.cpu.Erpsync / (float64(r.items) / 1000)
}

// newCost compares base (the baseline) with cur (the binary under test).
func newCost(measurement string, catalogue, items, batch int, base, cur costRun) Cost {
	c := Cost{Measurement: measurement, Catalogue: catalogue, Items: items, Batch: batch,
		BaselinePer1000: base.per1000(), NewPer1000: cur.per1000(), Bound: costBound,
		Complete:             base.complete && cur.complete,
		BaselineOtherPercent: base.cpu.OtherPercent, NewOtherPercent: cur.cpu.OtherPercent,
		BaselineCPU: base.cpu, NewCPU: cur.cpu}
	if c.BaselinePer1000 > 0 && cur.items > 0 {
		c.Ratio = c.NewPer1000 / c.BaselinePer1000
		c.Verdict = costVerdict(c.Ratio)
	}
	return c
}

const (
	verdictWithin = "within"
	verdictOver   = "over"
)

func costVerdict(ratio float64) string {
	if ratio <= costBound {
		return verdictWithin
	}
	return verdictOver
}

// Targets of the issue.
const (
	targetWatchP99   = 50.0 // ms
	targetBulkRatio  = 0.5
	targetRSSMB      = 64.0
	targetIdleCPU    = 1.0  // % of one core
	targetRSSGrowth  = 1.25 // large/small peak RSS counted as flat
	latencyCeilingNm = "pre-signed 1-item POST, sequential"
	costBound        = 1.25 // new/baseline erpsync CPU per item
)

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				m.MemoryMB = kb / 1024
			}
		}
	}
	return m
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**MISSED**"
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func catName(n int) string {
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return thousands(n)
}

// printTable writes the results as a markdown table with the machine.
func printTable(w io.Writer, r *Results) {
	m := r.Machine
	fmt.Fprintf(w, "`%s` on %d × %s, %d MB RAM, Linux %s, %s, MariaDB %s; %.0f s in all.\n\n",
		r.Command, m.CPUs, m.Model, m.MemoryMB, m.Kernel, m.Go, m.MariaDB, r.Seconds)
	switch {
	case len(r.Latency)+len(r.Bulk)+len(r.Initial)+len(r.Idle)+len(r.RSS) > 0:
		printMain(w, r)
		printCost(w, r)
	case len(r.Cost) > 0:
		printCost(w, r) // --only cost
	}
	printSites(w, r.Sites)
	fmt.Fprintf(w, "\nSettings: %s. Receiver: %s.\n", settingsLine(r.Settings), r.Receiver)
	fmt.Fprintln(w, "\n⚠ other load: other processes on the machine (and hypervisor steal) used that much of a core meanwhile; "+
		"⚠ I/O stall: some task waited for the disk that share of the time (/proc/pressure/io, erpsync's and mariadbd's own writes included). "+
		"Such a figure understates what erpsync does on an otherwise idle machine.")
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

// printMain writes the table of rows 1-5 and the bulk runs' CPU per item.
func printMain(w io.Writer, r *Results) {
	fmt.Fprintln(w, "| # | measure | erpsync | ceiling, same run | target | |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	ceil := "—"
	if c := r.LatencyCeiling; c != nil {
		ceil = fmt.Sprintf("p50 %.2f · p95 %.2f · p99 %.2f ms (%s)", c.P50, c.P95, c.P99, latencyCeilingNm)
	}
	for _, l := range r.Latency {
		mode, target, v := "poll mode (1 s)", "—", ""
		if l.Mode == "watch" {
			mode, target = "watch mode", fmt.Sprintf("p99 < %.0f ms", targetWatchP99)
			v = verdict(l.P99 < targetWatchP99 && l.Missed == 0)
		}
		missed := ""
		if l.Missed > 0 {
			missed = fmt.Sprintf(", %d missed (>5 s)", l.Missed)
		}
		fmt.Fprintf(w, "| 1 | 1-item change → verified, %s, %d changes, %s items | p50 %.1f · p95 %.1f · p99 %.1f ms (max %.1f%s)%s | %s | %s | %s |\n",
			mode, l.Changes, catName(l.Catalogue), l.P50, l.P95, l.P99, l.Max, missed, loaded(l.CPU), ceil, target, v)
	}
	for _, b := range r.Bulk {
		got := fmt.Sprintf("%.0f items/s (%.2f s)", b.ItemsPerSec, b.Seconds)
		if !b.Complete {
			got = fmt.Sprintf("incomplete: %d of %d after %.0f s", b.Verified, b.Items, b.Seconds)
		}
		c, t, v := "—", "— (row 5)", ""
		if b.CeilingItemsPerSec > 0 {
			c = fmt.Sprintf("%.0f items/s (%.2f s)%s", b.CeilingItemsPerSec, b.CeilingSeconds, loaded(b.CeilingCPU))
			t = fmt.Sprintf("≥ %.0f%% of ceiling", 100*targetBulkRatio)
			v = fmt.Sprintf("%.0f%% %s", 100*b.Ratio, verdict(b.Complete && b.Ratio >= targetBulkRatio))
		}
		fmt.Fprintf(w, "| 2 | bulk: %s prices in 1 transaction → all verified, batch %d (%s-item catalogue) | %s, peak RSS %.1f MB%s | %s | %s | %s |\n",
			thousands(b.Items), b.Batch, catName(b.Catalogue), got, b.PeakRSSMB, loaded(b.CPU), c, t, v)
	}
	for _, s := range r.Initial {
		c := "—"
		if s.CeilingItemsPerSec > 0 {
			c = fmt.Sprintf("%.0f items/s (HTTP ceiling, batch %d)", s.CeilingItemsPerSec, s.Batch)
		}
		fmt.Fprintf(w, "| 3 | initial sync of %s items, batch %d | %.0f items/s (%.1f s), peak RSS %.1f MB%s | %s | RSS < %.0f MB | %s |\n",
			thousands(s.Items), s.Batch, s.ItemsPerSec, s.Seconds, s.PeakRSSMB, loaded(s.CPU), c, targetRSSMB, verdict(s.Complete && s.PeakRSSMB < targetRSSMB))
	}
	for _, i := range r.Idle {
		what := ""
		if i.After != "" {
			what = ", " + i.After
		}
		fmt.Fprintf(w, "| 4 | idle %.0f s, poll 1 s + watch, %s items%s | CPU %.2f%% of a core, RSS %.1f MB%s | mariadbd meanwhile: CPU %.2f%% | CPU < %.0f%% | %s |\n",
			i.Seconds, catName(i.Catalogue), what, i.CPUPercent, i.RSSMB, loaded(i.CPU), i.MariaDBCPUPercent, targetIdleCPU, verdict(i.CPUPercent < targetIdleCPU))
	}
	if len(r.RSS) == 2 {
		s, l := r.RSS[0], r.RSS[1]
		growth := l.SameChangePeakMB / s.SameChangePeakMB
		fmt.Fprintf(w, "| 5 | peak RSS (VmHWM), %s vs %s items, same change: initial sync, idle, bulk of %s prices at batch 1 | %.1f MB vs %.1f MB (×%.2f) | — | flat (≤ ×%.2f) | %s |\n",
			catName(s.Catalogue), catName(l.Catalogue), thousands(smallBulk(r)), s.SameChangePeakMB, l.SameChangePeakMB, growth, targetRSSGrowth,
			verdict(growth <= targetRSSGrowth))
		fmt.Fprintf(w, "| 5 | peak RSS (VmHWM), any run, %s vs %s items | %.1f MB vs %.1f MB | — | < %.0f MB | %s |\n",
			catName(s.Catalogue), catName(l.Catalogue), s.PeakMB, l.PeakMB, targetRSSMB,
			verdict(l.PeakMB < targetRSSMB && s.PeakMB < targetRSSMB))
	}
	if len(r.Bulk) > 0 {
		fmt.Fprintln(w, "\nCPU per 1,000 items in the bulk runs (seconds of one core; 2 cores are shared by all three processes). "+
			"The last column is the share of the ceiling erpsync would reach if it used no CPU at all, when both runs keep the cores busy: "+
			"the ceiling's CPU over the receiver's and mariadbd's in erpsync's run:")
		fmt.Fprintln(w, "\n| bulk | erpsync | mariadbd | receiver | ceiling: receiver + client | bound |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, b := range r.Bulk {
			k := float64(b.Verified) / 1000 // an incomplete run: per item delivered
			ceil, bound := "—", "—"
			if b.CeilingItemsPerSec > 0 {
				ceil = fmt.Sprintf("%.3f", b.CeilingCPU.Bench/k)
				bound = fmt.Sprintf("%.0f%%", 100*b.Bound())
			}
			fmt.Fprintf(w, "| %s items, batch %d, %s catalogue | %.3f | %.3f | %.3f | %s | %s |\n", thousands(b.Items), b.Batch, catName(b.Catalogue),
				b.CPU.Erpsync/k, b.CPU.MariaDB/k, b.CPU.Bench/k, ceil, bound)
		}
	}
}

// printCost writes the comparison with the baseline binary, if any: the
// first table of an --only cost run.
func printCost(w io.Writer, r *Results) {
	if len(r.Cost) == 0 {
		return
	}
	base := "the baseline"
	if b := r.Baseline; b != nil {
		base = fmt.Sprintf("the baseline `%s` (%s)", b.Version, b.Path)
	}
	fmt.Fprintf(w, "\nerpsync's CPU per 1,000 items against %s: seconds of one core that the daemon process itself used, "+
		"the two binaries measured one after the other in this run, on the same catalogue, each on its own outbox. "+
		"Bound: at most %.0f%% more than the baseline. Other processes: the load from outside the bench during each run, in %% of a core:\n",
		base, 100*(costBound-1))
	fmt.Fprintln(w, "\n| measurement | items | baseline CPU s / 1,000 items | new CPU s / 1,000 items | new / baseline | bound | verdict | other processes, baseline / new |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, c := range r.Cost {
		fmt.Fprintln(w, costRow(c))
	}
}

// costRow is one row of printCost's table.
func costRow(c Cost) string {
	ratio, v := "—", "—"
	if c.Verdict != "" {
		ratio, v = fmt.Sprintf("×%.2f", c.Ratio), "**"+c.Verdict+"**"
	}
	if !c.Complete {
		v += " (incomplete: per item delivered)"
	}
	return fmt.Sprintf("| %s, batch %d, %s catalogue | %s | %.3f | %.3f | %s | ≤ ×%.2f | %s | %.0f%% / %.0f%% |",
		c.Measurement, c.Batch, catName(c.Catalogue), thousands(c.Items), c.BaselinePer1000, c.NewPer1000, ratio, c.Bound, v,
		c.BaselineOtherPercent, c.NewOtherPercent)
}

// loaded flags a figure measured while other processes kept the machine busy.
func loaded(c ...CPU) string {
	cpu, io := 0.0, 0.0
	for _, x := range c {
		cpu = max(cpu, x.OtherPercent+x.StealPercent)
		io = max(io, x.IOStallPercent)
	}
	var s string
	if cpu >= 10 {
		s += fmt.Sprintf(" ⚠ other load %.0f%%", cpu)
	}
	if io >= 10 {
		s += fmt.Sprintf(" ⚠ I/O stall %.0f%%", io)
	}
	return s
}

func settingsLine(s map[string]string) string {
	keys := []string{"erp.poll_interval", "erp.watch_debounce", "erp.page_size", "erp.overlap", "ingest.concurrency", "log.level"}
	var parts []string
	for _, k := range keys {
		if v, ok := s[k]; ok {
			parts = append(parts, k+" = "+v)
		}
	}
	return strings.Join(parts, ", ")
}

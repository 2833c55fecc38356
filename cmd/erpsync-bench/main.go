// Command erpsync-bench measures erpsync end to end on this machine and prints
// a table (and JSON) of each figure beside the ceiling measured in the same run:
//
//	go run ./cmd/erpsync-bench [--quick] [--json FILE] [--bin PATH] [--baseline PATH [--only cost]]
//
// It starts its own MariaDB (internal/mariadb, binary log on), loads ERPNext
// sample catalogues (internal/erpnext), runs a verifying receiver on loopback
// (internal/receiver, every signature checked) and runs the daemon as a user
// does, `erpsync run --config FILE`, as a subprocess with a read-only database
// user, measuring its CPU and memory from /proc/<pid>/stat and /proc/<pid>/status.
//
// Measured, for a small and a large catalogue (10k and 100k items; --quick: 1k and 10k):
//
//  1. single-item price change → verified at the receiver: p50/p95/p99, in poll
//     mode (1s interval) and watch mode (erp.watch on the binary log); ceiling:
//     the round trip of a pre-signed single-item POST to the same receiver;
//  2. bulk: every Standard Selling price changed in one transaction → every new
//     version accepted: items/s and total time, at batch size 1 and 100; ceiling:
//     a plain net/http client posting pre-built signed bodies of the same items,
//     size and batch with the same concurrency (4) to the same receiver;
//  3. initial sync of the catalogue: items/s and peak RSS (VmHWM);
//  4. idle: CPU % of one core and RSS over 60s (poll 1s, watch on, nothing changing),
//     and over 20s just after a bulk change, while the changed rows are still in
//     erpsync's 5-minute overlap window;
//  5. peak RSS at the small vs the large catalogue.
//
// Each figure is printed with the CPU other processes on the machine used
// meanwhile when that is significant: on a shared machine the figures vary.
// The whole default run takes about 15 minutes on 2 cores; --quick about 3.
// --keep keeps the work directory: settings, each daemon's sync log, and a CSV
// per latency run (commit duration and latency of every change).
//
// --baseline PATH also compares erpsync's own CPU per item with that of an
// erpsync binary built from an earlier commit, for instance
//
//	git worktree add /tmp/erpsync-base <rev> && (cd /tmp/erpsync-base && go build -o /tmp/erpsync-base.bin ./cmd/erpsync)
//
// After each catalogue's own measurements, on that catalogue: the baseline's
// initial sync, then erpsync's; then a bulk change of every Standard Selling
// price by each at batch 100, and at batch 1 (new binary first). Each binary
// has its own fresh outbox and tenant, reads a settings file written the same
// way (only keys both know), and runs alone; the figure is the daemon
// process's CPU seconds per 1,000 items, with the ratio new/baseline against
// the bound 1.25 and the other processes' load during each run. --only cost
// runs the comparison alone (no latency, ceilings, idle or RSS rows): a few
// minutes at --large 20000.
//
// --sites 50,200,500 also measures many sites in one process (sites.go): at
// each number of sites, that many ERPNext site databases of 200 items and 800
// tables, one `erpsync run` with erp.bench_path and erp.sites = ["*"] read by
// one server-wide read-only user: idle CPU of erpsync and mariadbd at a 1 s
// poll, RSS, the most connections of erpsync's user, and single-item changes
// on random sites verified at the receiver in watch and poll mode. --only
// sites runs these rows alone (default 50,200,500).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	quick        bool
	jsonPath     string
	bin          string
	keep         bool
	dbDir        string // MariaDB's directory, kept and reused (--db-dir); "": a temporary one
	small        int
	large        int
	changes      int
	idle         time.Duration
	tz           string
	profile      string
	baseline     string        // erpsync binary to compare CPU per item with
	only         string        // "" everything; onlyCost: the comparison with the baseline alone; onlySites: the sites rows
	sites        []int         // numbers of sites of the sites rows (--sites)
	sitesIdle    time.Duration // idle measurement of a sites row
	sitesChanges int           // single-item changes per mode of a sites row
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "smoke run: catalogues of 1k and 10k items, 50 changes, 20s idle (under 3 minutes)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.bin, "bin", "", "erpsync binary to measure (default: build ./cmd/erpsync of this module)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (settings, sync logs, outboxes) and print its path")
	flag.StringVar(&o.dbDir, "db-dir", "", "keep the bench's MariaDB in this directory and reuse it and the sites it holds in the next run (--only sites: setting up 500 sites takes 15 minutes)")
	flag.IntVar(&o.small, "small", 0, "items in the small catalogue (default 10000; --quick 1000)")
	flag.IntVar(&o.large, "large", 0, "items in the large catalogue (default 100000; --quick 10000)")
	flag.IntVar(&o.changes, "changes", 0, "single-item changes per latency run (default 200; --quick 50)")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of each erpsync run into this directory (<run>.pprof)")
	flag.DurationVar(&o.idle, "idle", 0, "each idle measurement (default 60s; --quick 20s)")
	flag.StringVar(&o.baseline, "baseline", "", "also compare erpsync's CPU per item (initial sync, bulk change) with this erpsync binary's, built from an earlier commit")
	flag.StringVar(&o.only, "only", "", `"cost": only the comparison with --baseline, on each catalogue (no latency, ceilings, idle or RSS rows); `+
		`"sites": only the rows of many sites in one process (--sites)`)
	sites := flag.String("sites", "", "also measure many sites in one process (erp.sites), at each of these numbers of sites, such as 50,200,500 "+
		"(each site: 200 items, 800 tables); with --only sites, default 50,200,500")
	flag.DurationVar(&o.sitesIdle, "sites-idle", 30*time.Second, "each of a sites row's two idle measurements: from the settle after a restart, and the same time again right after")
	flag.IntVar(&o.sitesChanges, "sites-changes", 50, "single-item changes per mode of each sites row")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: erpsync-bench [--quick] [--json FILE] [--bin PATH] [--keep] [--profile DIR] [--baseline PATH [--only cost]] [--sites 50,200,500 [--only sites]]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *sites == "" && o.only == onlySites {
		*sites = "50,200,500"
	}
	if *sites != "" {
		var err error
		if o.sites, err = parseSites(*sites); err != nil {
			fmt.Fprintf(os.Stderr, "erpsync-bench: %v\n", err)
			os.Exit(2)
		}
	}
	if err := checkOnly(o); err != nil {
		fmt.Fprintf(os.Stderr, "erpsync-bench: %v\n", err)
		os.Exit(2)
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.small, 10000, 1000)
	def(&o.large, 100000, 10000)
	def(&o.changes, 200, 50)
	if o.idle == 0 {
		o.idle = 60 * time.Second
		if o.quick {
			o.idle = 20 * time.Second
		}
	}
	o.tz = "Asia/Kolkata"
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "erpsync-bench: --profile %s: %v\n", o.profile, err)
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if res != nil {
		printTable(os.Stdout, res)
		if o.jsonPath != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "erpsync-bench:", werr)
				os.Exit(1)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "erpsync-bench:", err)
		os.Exit(1)
	}
}

// checkOnly checks --only: "cost" compares with --baseline, so it needs one.
func checkOnly(o options) error {
	switch o.only {
	case "":
		return nil
	case onlyCost:
		if o.baseline == "" {
			return fmt.Errorf("--only %s needs --baseline PATH (an erpsync binary built from an earlier commit)", onlyCost)
		}
		return nil
	case onlySites:
		return nil
	}
	return fmt.Errorf("--only %q: the choices are %q and %q", o.only, onlyCost, onlySites)
}

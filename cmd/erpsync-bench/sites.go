package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/erpnext"
)

// The sites rows (--sites, --only sites): many ERPNext sites in one `erpsync
// run` (erp.bench_path, erp.sites = ["*"]), on one MariaDB, read by one
// server-wide read-only user. Each site's database holds siteItems items and,
// as a real ERPNext site, about siteTables tables (the ERPNext tables of
// internal/erpnext, the rest empty copies of them), so that information_schema
// costs what it costs in production. Per number of sites: idle CPU of erpsync
// and mariadbd at a 1 s poll and RSS, just after a restart and once the
// outboxes' connections have closed, the most connections of erpsync's user the
// server had, and single-item changes on random sites, verified at the
// receiver, in watch and poll mode.

const (
	onlySites  = "sites" // --only sites
	siteItems  = 200
	siteTables = 800
	sitesUser  = "erpsync_sites"
	sitesPass  = "bench-Sites-pass9"
	siteWorker = 4 // sites set up at once
)

// SitesRow is the figures of one number of sites.
type SitesRow struct {
	Sites          int     `json:"sites"`
	ItemsPerSite   int     `json:"items_per_site"`
	TablesPerSite  int     `json:"tables_per_site"`
	SetupSeconds   float64 `json:"setup_seconds"` // creating the sites this row added
	SetupSites     int     `json:"setup_sites"`
	InitialSeconds float64 `json:"initial_sync_seconds"`
	InitialItems   int     `json:"initial_sync_items"`
	Idle           Idle    `json:"idle"`            // from the settle after a restart
	Steady         Idle    `json:"idle_steady"`     // the same time again, right after: the outboxes' connections have closed
	MaxConns       int     `json:"max_connections"` // of erpsync's user, sampled every 500 ms through the row
	Watch          Latency `json:"watch"`
	Poll           Latency `json:"poll"`
}

// sitesBench holds the sites created so far (each row adds to them).
type sitesBench struct {
	made   int
	tables []string   // the ERPNext tables of a site
	prices []priceRow // Standard Selling prices of a site (the same in every site)
	site   *erpnext.Site
	secret string
}

// parseSites reads --sites: a comma-separated list of positive numbers.
func parseSites(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--sites %q: want numbers of sites such as 50,200,500", s)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return slices.Compact(out), nil
}

func siteDB(i int) string   { return fmt.Sprintf("bsite_%03d", i) }
func siteName(i int) string { return fmt.Sprintf("site%03d.bench.example.com", i) }

// sitesTenants are the receiver's tenants of the sites rows, all with key.
func sitesTenants(o options, tenants map[string][]byte, key []byte) {
	if len(o.sites) == 0 {
		return
	}
	for i := range o.sites[len(o.sites)-1] {
		tenants[siteDB(i)] = key
	}
}

// sites runs a row per number of sites.
func (b *bench) sites(ctx context.Context) error {
	secret, err := os.ReadFile(b.secret)
	if err != nil {
		return err
	}
	sb := &sitesBench{secret: strings.TrimSpace(string(secret))}
	for _, host := range []string{"%", "localhost"} {
		account := "'" + sitesUser + "'@'" + host + "'"
		for _, stmt := range []string{"CREATE USER IF NOT EXISTS " + account + " IDENTIFIED BY '" + sitesPass + "'",
			"GRANT SELECT ON *.* TO " + account} {
			if _, err := b.root.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("create the sites' read-only user: %w", err)
			}
		}
	}
	if err := b.existingSites(ctx, sb); err != nil {
		return err
	}
	for _, n := range b.o.sites {
		if err := b.sitesRow(ctx, sb, n); err != nil {
			return err
		}
	}
	return nil
}

// sitesRow sets up sites up to n and measures them.
func (b *bench) sitesRow(ctx context.Context, sb *sitesBench, n int) error {
	row := SitesRow{Sites: n, ItemsPerSite: siteItems, TablesPerSite: siteTables}
	if n > sb.made {
		progress("sites: setting up sites %d to %d (%d items, %d tables each)", sb.made, n-1, siteItems, siteTables)
		start := time.Now()
		row.SetupSites = n - sb.made
		if err := b.makeSites(ctx, sb, n); err != nil {
			return err
		}
		row.SetupSeconds = time.Since(start).Seconds()
		progress("  %d sites set up in %.0fs", row.SetupSites, row.SetupSeconds)
	}

	// As README asks of a server with this many sites (erpsync warns
	// otherwise): table caches that hold the probe's tables.
	caches := n*len(detector.PolledTables()) + 400
	for _, v := range []string{"table_definition_cache", "table_open_cache"} {
		if _, err := b.root.ExecContext(ctx, fmt.Sprintf("SET GLOBAL %s = GREATEST(@@%s, %d)", v, v, caches)); err != nil {
			return fmt.Errorf("raise %s: %w", v, err)
		}
	}
	progress("  table_definition_cache and table_open_cache at least %d (README: sites × 8 + 400)", caches)

	var most atomic.Int64
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.sampleConns(sctx, &most) })
	defer func() { stopSampling(); wg.Wait() }()

	dir := filepath.Join(b.dir, fmt.Sprintf("sites-%d", n))
	if err := writeBench(dir, n, sb.secret); err != nil {
		return err
	}
	// Initial sync and watch-mode latency.
	b.hook.expect(n * siteItems)
	start := time.Now()
	d, err := b.startSites(dir, n, true)
	if err != nil {
		return err
	}
	end, ok, err := b.waitCount(ctx, d, timeoutFor(n*siteItems)+time.Duration(n)*time.Second)
	if err != nil {
		return andStop(err, d.stop())
	}
	row.InitialSeconds, row.InitialItems = end.Sub(start).Seconds(), n*siteItems
	progress("  initial sync of %d sites × %d items: %.1fs (complete %v)", n, siteItems, row.InitialSeconds, ok)
	if !ok {
		return andStop(fmt.Errorf("initial sync of %d sites incomplete after %.0fs", n, row.InitialSeconds), d.stop())
	}
	if err := b.settle(ctx, d, fmt.Sprintf("the initial sync of %d sites", n)); err != nil {
		return andStop(err, d.stop())
	}
	if row.Watch, err = b.sitesLatency(ctx, sb, d, n, "watch"); err != nil {
		return andStop(err, d.stop())
	}
	if err := d.stop(); err != nil {
		return err
	}

	// Poll mode: idle, then latency.
	d, err = b.startSites(dir, n, false)
	if err != nil {
		return err
	}
	if err := d.waitLog(ctx, "database ready", time.Minute); err != nil {
		return andStop(err, d.stop())
	}
	if err := b.settle(ctx, d, fmt.Sprintf("a restart of %d sites", n)); err != nil {
		return andStop(err, d.stop())
	}
	if row.Idle, err = b.sitesIdle(ctx, d, n); err != nil {
		return andStop(err, d.stop())
	}
	if row.Steady, err = b.sitesIdle(ctx, d, n); err != nil {
		return andStop(err, d.stop())
	}
	if row.Poll, err = b.sitesLatency(ctx, sb, d, n, "poll"); err != nil {
		return andStop(err, d.stop())
	}
	if err := d.stop(); err != nil {
		return err
	}
	stopSampling()
	wg.Wait()
	row.MaxConns = int(most.Load())
	progress("  at most %d connections of %s", row.MaxConns, sitesUser)
	b.res.Sites = append(b.res.Sites, row)
	return nil
}

// andStop joins a measurement's error with the daemon's stop error.
func andStop(err, stopErr error) error {
	if stopErr == nil {
		return err
	}
	return fmt.Errorf("%w; and stopping erpsync: %v", err, stopErr)
}

// makeSites creates sites sb.made..n-1: the first one with the ERPNext schema
// and siteItems sample items stamped two hours ago, the others as copies of
// it; each padded with empty tables (CREATE TABLE ... LIKE an ERPNext table)
// to siteTables.
func (b *bench) makeSites(ctx context.Context, sb *sitesBench, n int) error {
	if sb.made == 0 {
		if err := b.firstSite(ctx, sb); err != nil {
			return err
		}
		if err := b.padSite(ctx, b.root, 0, sb.tables); err != nil {
			return err
		}
		sb.made = 1
	}
	next := make(chan int)
	errs := make(chan error, siteWorker)
	var wg sync.WaitGroup
	for range siteWorker {
		wg.Go(func() {
			for i := range next {
				if err := b.copySite(ctx, i, sb.tables); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := sb.made; i < n; i++ {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	if err != nil {
		return err
	}
	sb.made = n
	return nil
}

// existingSites finds the sites a kept database (--db-dir) holds already:
// sites 0 to k-1 whole (siteTables tables each) count as made; a site set
// up only in part (an interrupted run) and those after it are dropped.
func (b *bench) existingSites(ctx context.Context, sb *sitesBench) error {
	if b.o.dbDir == "" {
		return nil
	}
	tables := map[string]int{}
	rows, err := b.root.QueryContext(ctx, "SELECT TABLE_SCHEMA, COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'bsite\\_%' GROUP BY TABLE_SCHEMA")
	if err != nil {
		return fmt.Errorf("read the sites of --db-dir: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema string
		var n int
		if err := rows.Scan(&schema, &n); err != nil {
			return err
		}
		tables[schema] = n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for tables[siteDB(sb.made)] == siteTables {
		delete(tables, siteDB(sb.made))
		sb.made++
	}
	for schema := range tables {
		if _, err := b.root.ExecContext(ctx, "DROP DATABASE `"+schema+"`"); err != nil {
			return fmt.Errorf("drop site %s, set up in part: %w", schema, err)
		}
	}
	if sb.made == 0 {
		return nil
	}
	progress("sites: reusing %d sites of %s", sb.made, b.o.dbDir)
	db, err := sql.Open("mysql", b.srv.RootDSN(siteDB(0)))
	if err != nil {
		return err
	}
	site, err := erpnext.NewSite(db, b.o.tz)
	if err != nil {
		return err
	}
	sb.site = site
	var padded []string
	if padded, err = listColumn(ctx, db, "SHOW TABLES"); err != nil {
		return err
	}
	for _, t := range padded {
		if !strings.HasPrefix(t, "tabBench Doctype ") {
			sb.tables = append(sb.tables, t)
		}
	}
	return b.readPrices(ctx, sb, db)
}

// firstSite creates site 0 with the ERPNext schema and its items.
func (b *bench) firstSite(ctx context.Context, sb *sitesBench) error {
	name := siteDB(0)
	if _, err := b.root.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return err
	}
	db, err := sql.Open("mysql", b.srv.RootDSN(name))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(4)
	if err := erpnext.CreateSchema(ctx, db, b.o.tz); err != nil {
		return err
	}
	site, err := erpnext.NewSite(db, b.o.tz)
	if err != nil {
		return err
	}
	site.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if err := site.Seed(ctx, siteItems); err != nil {
		return err
	}
	site.Now = time.Now
	sb.site = site
	if sb.tables, err = listColumn(ctx, db, "SHOW TABLES"); err != nil {
		return err
	}
	return b.readPrices(ctx, sb, db)
}

// readPrices reads site 0's Standard Selling prices, which every site has.
func (b *bench) readPrices(ctx context.Context, sb *sitesBench, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT name, item_code FROM `tabItem Price` WHERE price_list = 'Standard Selling' ORDER BY item_code, name")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r priceRow
		if err := rows.Scan(&r.name, &r.code); err != nil {
			return err
		}
		sb.prices = append(sb.prices, r)
	}
	return rows.Err()
}

// copySite creates site i as a copy of site 0, padded.
func (b *bench) copySite(ctx context.Context, i int, tables []string) error {
	conn, err := b.root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	name := siteDB(i)
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return err
	}
	for _, t := range tables {
		for _, q := range []string{
			fmt.Sprintf("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`", name, t, siteDB(0), t),
			fmt.Sprintf("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`", name, t, siteDB(0), t),
		} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("copy %s into site %s: %w", t, name, err)
			}
		}
	}
	return b.padSite(ctx, conn, i, tables)
}

// execer is a pool or one connection.
type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// padSite adds empty tables to site i until it has siteTables.
func (b *bench) padSite(ctx context.Context, db execer, i int, tables []string) error {
	for j := range siteTables - len(tables) {
		q := fmt.Sprintf("CREATE TABLE `%s`.`tabBench Doctype %04d` LIKE `%s`.`%s`", siteDB(i), j, siteDB(0), tables[j%len(tables)])
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("pad site %s: %w", siteDB(i), err)
		}
	}
	return nil
}

func listColumn(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// writeBench writes a Frappe bench directory holding sites 0..n-1, each with
// the site_config.json keys that make it take part.
func writeBench(dir string, n int, secret string) error {
	for i := range n {
		keys := map[string]any{"db_name": siteDB(i), "db_type": "mariadb", "db_password": "unused-Pa55",
			"erpsync_tenant_id": siteDB(i), "erpsync_secret": secret}
		body, _ := json.MarshalIndent(keys, "", " ")
		d := filepath.Join(dir, "sites", siteName(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "site_config.json"), body, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// startSites starts one `erpsync run` for the bench at dir.
func (b *bench) startSites(dir string, n int, watch bool) (*daemonProc, error) {
	b.daemons++
	mode := map[bool]string{true: "watch", false: "poll"}[watch]
	watchDir := ""
	if watch {
		watchDir = filepath.Join(b.srv.Dir, "binlog")
	}
	settings := fmt.Sprintf(`# written by erpsync-bench (sites)
[ingest]
url = %q
batch_size = 100
concurrency = %d

[erp]
dsn = "%s:%s@tcp(127.0.0.1:%d)/"
bench_path = %q
sites = ["*"]
poll_interval = %q
site_url = "https://erp.example.com"
watch = %q
watch_debounce = %q

[outbox]
path = %q

[log]
file = "-"
level = "info"
`, b.url, concurrency, sitesUser, sitesPass, b.srv.Port, dir, pollInterval.String(), watchDir, watchDebounce.String(),
		filepath.Join(dir, "outbox.db"))
	tag := fmt.Sprintf("sites-%d-%d-%s", n, b.daemons, mode)
	cfg := filepath.Join(b.dir, tag+".toml")
	if err := os.WriteFile(cfg, []byte(settings), 0o600); err != nil {
		return nil, err
	}
	profile := ""
	if b.o.profile != "" {
		profile = filepath.Join(b.o.profile, tag+".pprof")
	}
	return startDaemon(b.bin, cfg, filepath.Join(b.dir, tag+".log"), profile)
}

// sampleConns keeps in most the most connections of erpsync's user the
// server had, sampled every 500 ms until ctx ends.
func (b *bench) sampleConns(ctx context.Context, most *atomic.Int64) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		var c int64
		if err := b.root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", sitesUser).Scan(&c); err == nil {
			if c > most.Load() {
				most.Store(c)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sitesIdle measures erpsync's and mariadbd's CPU and erpsync's RSS over
// the idle period (--sites-idle) with nothing changing.
func (b *bench) sitesIdle(ctx context.Context, d *daemonProc, n int) (Idle, error) {
	dur := b.o.sitesIdle
	progress("  idle for %v (%d sites, poll %v)", dur, n, pollInterval)
	dbPid := b.srv.Pid()
	all0 := b.cpuNow(d)
	c0, db0, start := d.cpu(), mustCPU(dbPid), time.Now()
	var peak, last int64
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Since(start) < dur {
		select {
		case <-ctx.Done():
			return Idle{}, ctx.Err()
		case <-d.done:
			return Idle{}, d.exitErr()
		case <-t.C:
		}
		last, _ = d.mem()
		peak = max(peak, last)
	}
	el := time.Since(start)
	_, hwm := d.mem()
	r := Idle{Catalogue: n * siteItems, Seconds: el.Seconds(), HighWaterMB: mb(hwm),
		CPUPercent:        100 * float64(d.cpu()-c0) / float64(el),
		MariaDBCPUPercent: 100 * float64(mustCPU(dbPid)-db0) / float64(el),
		RSSMB:             mb(last), PeakRSSMB: mb(peak), CPU: b.cpuNow(d).since(all0)}
	progress("  erpsync CPU %.2f%% of a core, RSS %.1f MB; mariadbd CPU %.2f%%; other processes %.0f%% of a core",
		r.CPUPercent, r.RSSMB, r.MariaDBCPUPercent, r.CPU.OtherPercent)
	return r, nil
}

// sitesLatency changes one price at a time on a random site and measures from
// just before COMMIT to the receiver's acceptance of that item.
func (b *bench) sitesLatency(ctx context.Context, sb *sitesBench, d *daemonProc, n int, mode string) (Latency, error) {
	k := b.o.sitesChanges
	progress("  latency, %s mode: %d single-item changes on random sites of %d", mode, k, n)
	// A seed of its own each run: with --db-dir the sites are kept, and the
	// same changes again would change nothing (erpsync sends no equal state).
	rng := rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))
	var lat []time.Duration
	missed := 0
	cpu0 := b.cpuNow(d)
	for i := range k {
		if err := ctx.Err(); err != nil {
			return Latency{}, err
		}
		r := sb.prices[rng.IntN(len(sb.prices))]
		db := siteDB(rng.IntN(n))
		rate := fmt.Sprintf("%d.%02d", 100+rng.IntN(900), i%100)
		arrived := b.hook.awaitItem(r.code)
		tx, err := b.root.BeginTx(ctx, nil)
		if err != nil {
			return Latency{}, err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE `"+db+"`.`tabItem Price` SET price_list_rate = ?, modified = ?, modified_by = 'Administrator' WHERE name = ?",
			rate, sb.site.Format(time.Now()), r.name); err != nil {
			tx.Rollback()
			return Latency{}, err
		}
		start := time.Now()
		if err := tx.Commit(); err != nil {
			return Latency{}, err
		}
		select {
		case at := <-arrived:
			lat = append(lat, at.Sub(start))
		case <-time.After(5 * time.Second):
			missed++
		case <-d.done:
			return Latency{}, d.exitErr()
		}
		b.hook.disarm()
		gap := 50*time.Millisecond + time.Duration(rng.IntN(50))*time.Millisecond
		if mode == "poll" {
			gap = 50*time.Millisecond + time.Duration(rng.Int64N(int64(pollInterval)))
		}
		time.Sleep(gap)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	l := Latency{Mode: mode, Catalogue: n * siteItems, Changes: k, Missed: missed,
		P50: pct(lat, 50), P95: pct(lat, 95), P99: pct(lat, 99), Max: pct(lat, 100), CPU: b.cpuNow(d).since(cpu0)}
	progress("  p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms, missed %d; other processes %.0f%% of a core",
		l.P50, l.P95, l.P99, l.Max, l.Missed, l.CPU.OtherPercent)
	return l, nil
}

// printSites writes the sites rows, one column per number of sites.
func printSites(w io.Writer, rows []SitesRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nMany sites in one process (%d items and %d tables per site; erp.sites = [\"*\"], one read-only user, poll %v):\n\n",
		rows[0].ItemsPerSite, rows[0].TablesPerSite, pollInterval)
	head, rule := "| measure |", "|---|"
	for _, r := range rows {
		head += fmt.Sprintf(" %d sites |", r.Sites)
		rule += "---|"
	}
	fmt.Fprintln(w, head+" target |")
	fmt.Fprintln(w, rule+"---|")
	line := func(name, target string, cell func(r SitesRow) string) {
		s := "| " + name + " |"
		for _, r := range rows {
			s += " " + cell(r) + " |"
		}
		fmt.Fprintln(w, s+" "+target+" |")
	}
	line("setup (sites added by the row)", "", func(r SitesRow) string {
		if r.SetupSites == 0 {
			return "none (kept by --db-dir)"
		}
		return fmt.Sprintf("%d sites in %.0f s", r.SetupSites, r.SetupSeconds)
	})
	line("initial sync, every site", "", func(r SitesRow) string {
		return fmt.Sprintf("%s items in %.1f s", thousands(r.InitialItems), r.InitialSeconds)
	})
	for _, idle := range []struct {
		when string
		of   func(r SitesRow) Idle
	}{
		{fmt.Sprintf("first %.0f s after a restart", rows[0].Idle.Seconds), func(r SitesRow) Idle { return r.Idle }},
		{fmt.Sprintf("the %.0f s after", rows[0].Steady.Seconds), func(r SitesRow) Idle { return r.Steady }},
	} {
		line("idle CPU, erpsync, "+idle.when, "< 2% of a core", func(r SitesRow) string {
			return fmt.Sprintf("%.2f%%%s", idle.of(r).CPUPercent, loaded(idle.of(r).CPU))
		})
		line("idle CPU, mariadbd, "+idle.when, "< 2% of a core", func(r SitesRow) string { return fmt.Sprintf("%.2f%%", idle.of(r).MariaDBCPUPercent) })
		line("erpsync RSS (peak), "+idle.when, "< 256 MB", func(r SitesRow) string {
			return fmt.Sprintf("%.0f MB (%.0f)", idle.of(r).RSSMB, idle.of(r).PeakRSSMB)
		})
	}
	line("erpsync RSS, highest since the restart (VmHWM)", "< 256 MB", func(r SitesRow) string { return fmt.Sprintf("%.0f MB", r.Idle.HighWaterMB) })
	line("connections of erpsync's user, most", "≤ 10", func(r SitesRow) string { return strconv.Itoa(r.MaxConns) })
	lat := func(l Latency) string {
		s := fmt.Sprintf("p50 %.0f · p99 %.0f ms", l.P50, l.P99)
		if l.Missed > 0 {
			s += fmt.Sprintf(", %d missed", l.Missed)
		}
		return s
	}
	line("one change → receiver, watch", "p99 < 100 ms", func(r SitesRow) string { return lat(r.Watch) })
	line("one change → receiver, poll", "p99 < 1.5 s", func(r SitesRow) string { return lat(r.Poll) })
}

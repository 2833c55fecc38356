package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/mariadb"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
)

// Settings of the daemon under test that the table depends on.
const (
	pollInterval  = time.Second
	concurrency   = 4
	watchDebounce = 5 * time.Millisecond
	pageSize      = 500 // erp.page_size default
)

type bench struct {
	o        options
	dir      string
	bin      string
	baseline string // --baseline, absolute; "" without
	srv      *mariadb.Server
	root     *sql.DB
	rcv      *receiver.Receiver
	hook     *hook
	url      string
	secret   string // file
	key      []byte
	res      *Results
	daemons  int        // counter for file names
	smallCat *catalogue // once measured
	largeCat *catalogue // once measured
}

// catalogue is one ERPNext site database with its own tenant at the receiver.
// A lane (see lane) is a copy that another erpsync binary runs on: the same
// database, its own tenant and outbox.
type catalogue struct {
	name   string // tenant id; also the database name, but in a lane
	lane   string // "" the catalogue itself; else the lane ("base", "new")
	bin    string // erpsync binary run on it; "" the one under test
	items  int
	db     *sql.DB // root, for edits
	site   *erpnext.Site
	dsn    string // the read-only user's DSN, as erpsync uses it
	outbox string
	prices []priceRow // Standard Selling prices, by item code
	codes  []string   // their item codes: what a bulk change touches
	peak   int64      // largest VmHWM of any daemon on this catalogue
	// samePeak is the largest VmHWM of the runs that changed no more
	// prices than the small catalogue's bulk (the initial sync aside).
	samePeak int64
}

type priceRow struct{ name, code string }

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) (*Results, error) {
	started := time.Now()
	res := &Results{
		Command: strings.TrimSpace("go run ./cmd/erpsync-bench " + strings.Join(os.Args[1:], " ")),
		Started: started.UTC().Format(time.RFC3339),
		Machine: machine(),
		Settings: map[string]string{
			"erp.poll_interval": pollInterval.String(), "erp.watch_debounce": watchDebounce.String(),
			"erp.page_size": fmt.Sprint(pageSize), "ingest.concurrency": fmt.Sprint(concurrency),
			"erp.overlap": "5m (default)", "log.level": "info",
		},
	}
	dir, err := os.MkdirTemp("", "erpsync-bench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		defer progress("work directory kept: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, dir: dir, res: res}
	if o.baseline != "" {
		if b.baseline, res.Baseline, err = baselineOf(ctx, o.baseline); err != nil {
			return nil, err
		}
	}

	if o.bin != "" {
		b.bin, err = filepath.Abs(o.bin)
	} else {
		progress("building ./cmd/erpsync")
		b.bin, err = buildErpsync(ctx, dir)
	}
	if err != nil {
		return nil, err
	}
	progress("starting MariaDB")
	b.srv, err = mariadb.Start(ctx, mariadb.Options{Dir: o.dbDir})
	if err != nil {
		return nil, err
	}
	defer b.srv.Stop()
	b.root, err = sql.Open("mysql", b.srv.RootDSN(""))
	if err != nil {
		return nil, err
	}
	defer b.root.Close()
	if err := b.root.QueryRowContext(ctx, "SELECT VERSION()").Scan(&res.Machine.MariaDB); err != nil {
		return nil, err
	}

	secret, err := signer.NewSecret()
	if err != nil {
		return nil, err
	}
	b.key, _ = signer.DecodeSecret(secret)
	b.secret = filepath.Join(dir, "secret")
	if err := os.WriteFile(b.secret, []byte(secret+"\n"), 0o600); err != nil {
		return nil, err
	}
	tenants := map[string][]byte{}
	for _, name := range []string{"bench_small", "bench_large"} {
		tenants[name] = b.key
		for _, lane := range costLanes {
			tenants[name+"_"+lane] = b.key
		}
	}
	sitesTenants(o, tenants, b.key)
	b.rcv = receiver.New(receiver.Options{Tenants: tenants})
	b.hook = &hook{rcv: b.rcv}
	rctx, cancelRcv := context.WithCancel(ctx)
	b.url, _, err = serve(rctx, b.hook)
	if err != nil {
		cancelRcv()
		return nil, err
	}
	defer cancelRcv()

	switch o.only {
	case onlyCost:
		err = b.costOnly(ctx)
	case onlySites:
		err = b.sites(ctx)
	default:
		err = b.all(ctx)
		if err == nil && len(o.sites) > 0 {
			err = b.sites(ctx)
		}
	}
	res.Seconds = time.Since(started).Seconds()
	st := b.rcv.Stats()
	if len(st.Rejected) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the receiver rejected requests: %v", st.Rejected))
	}
	res.Receiver = fmt.Sprintf("%d requests, %d accepted, %d item entries applied, %d duplicates, %d stale, rejected %v",
		st.Requests, st.Accepted, st.Items, st.Duplicates, st.Stale, st.Rejected)
	return res, err
}

// all is the default run; with --baseline, each catalogue's cost comparison
// follows its own measurements.
func (b *bench) all(ctx context.Context) error {
	if err := b.small(ctx); err != nil {
		return err
	}
	if b.baseline != "" {
		if err := b.cost(ctx, b.smallCat, 100, 1); err != nil {
			return err
		}
	}
	if b.o.large <= 0 {
		return nil
	}
	if err := b.large(ctx); err != nil {
		return err
	}
	if b.baseline != "" {
		return b.cost(ctx, b.largeCat, 100, 1)
	}
	return nil
}

// small: initial sync, latency in watch and poll mode, idle, bulk at batch 100 and 1.
func (b *bench) small(ctx context.Context) error {
	c, err := b.catalogue(ctx, "bench_small", b.o.small)
	if err != nil {
		return err
	}
	// Initial sync, then watch-mode latency, idle and bulk at batch 100.
	d, err := b.initialSync(ctx, c, 100)
	if err != nil {
		return err
	}
	if err := b.latency(ctx, c, d, "watch", b.o.changes); err != nil {
		return b.stopOn(c, d, err)
	}
	if err := b.idle(ctx, c, d, b.o.idle, ""); err != nil {
		return b.stopOn(c, d, err)
	}
	if err := b.bulk(ctx, c, d, 100); err != nil {
		return b.stopOn(c, d, err)
	}
	if err := b.stop(c, d); err != nil {
		return err
	}
	if err := b.ceiling(ctx, c, 100); err != nil {
		return err
	}

	// Poll-mode latency.
	d, err = b.restart(ctx, c, 1, false)
	if err != nil {
		return err
	}
	if err := b.latency(ctx, c, d, "poll", b.o.changes); err != nil {
		return b.stopOn(c, d, err)
	}
	if err := b.stop(c, d); err != nil {
		return err
	}
	if err := b.latencyCeiling(ctx, c); err != nil {
		return err
	}

	// Bulk at batch 1.
	d, err = b.restart(ctx, c, 1, true)
	if err != nil {
		return err
	}
	if err := b.bulk(ctx, c, d, 1); err != nil {
		return b.stopOn(c, d, err)
	}
	if err := b.stop(c, d); err != nil {
		return err
	}
	if err := b.ceiling(ctx, c, 1); err != nil {
		return err
	}
	// Every run here changes at most the catalogue's prices once.
	b.res.RSS = append(b.res.RSS, RSS{Catalogue: c.items, PeakMB: mb(c.peak), SameChangePeakMB: mb(c.peak)})
	b.smallCat = c
	return nil
}

// large: initial sync, idle, bulk at batch 100 and 1.
func (b *bench) large(ctx context.Context) error {
	c, err := b.catalogue(ctx, "bench_large", b.o.large)
	if err != nil {
		return err
	}
	d, err := b.initialSync(ctx, c, 100)
	if err != nil {
		return err
	}
	if err := b.idle(ctx, c, d, b.o.idle, ""); err != nil {
		return b.stopOn(c, d, err)
	}
	// The runs so far changed nothing but the whole catalogue once, as
	// the initial sync: they count for row 5, the bulk changes of ten
	// times the small catalogue's size that follow do not.
	_, hwm := d.mem()
	c.samePeak = max(c.samePeak, hwm)
	if err := b.bulk(ctx, c, d, 100); err != nil {
		return b.stopOn(c, d, err)
	}
	// Nothing changes now, but the changed rows are inside erpsync's overlap
	// window (erp.overlap, 5 minutes) and polls re-read them. (After an
	// incomplete bulk erpsync is still delivering: nothing to measure.)
	if last := b.res.Bulk[len(b.res.Bulk)-1]; last.Complete {
		if err := b.idle(ctx, c, d, b.o.idle/3, fmt.Sprintf("at once after the bulk change of %s prices", thousands(len(c.codes)))); err != nil {
			return b.stopOn(c, d, err)
		}
	}
	if err := b.stop(c, d); err != nil {
		return err
	}
	if err := b.ceiling(ctx, c, 100); err != nil {
		return err
	}
	d, err = b.restart(ctx, c, 1, true)
	if err != nil {
		return err
	}
	if err := b.bulk(ctx, c, d, 1); err != nil {
		return b.stopOn(c, d, err)
	}
	if err := b.stop(c, d); err != nil {
		return err
	}
	if err := b.ceiling(ctx, c, 1); err != nil {
		return err
	}

	// Row 5: the small catalogue's bulk change, as many prices, on this
	// catalogue: memory may grow with the change, not with the catalogue.
	if n := len(b.smallCat.codes); n < len(c.codes) {
		d, err = b.restart(ctx, c, 1, true)
		if err != nil {
			return err
		}
		if err := b.bulkOf(ctx, c, d, 1, c.codes[:n]); err != nil {
			return b.stopOn(c, d, err)
		}
		err := b.stop(c, d)
		c.samePeak = max(c.samePeak, d.peakRSS)
		if err != nil {
			return err
		}
	}
	b.res.RSS = append(b.res.RSS, RSS{Catalogue: c.items, PeakMB: mb(c.peak), SameChangePeakMB: mb(c.samePeak)})
	b.largeCat = c
	return nil
}

// catalogue creates a database with the ERPNext schema, n sample items
// stamped two hours ago (outside erpsync's 5-minute overlap window, as on a
// site whose catalogue is not being edited) and a read-only user.
func (b *bench) catalogue(ctx context.Context, name string, n int) (*catalogue, error) {
	progress("loading %d sample items into %s", n, name)
	start := time.Now()
	if _, err := b.root.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", b.srv.RootDSN(name))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	if err := erpnext.CreateSchema(ctx, db, b.o.tz); err != nil {
		return nil, err
	}
	site, err := erpnext.NewSite(db, b.o.tz)
	if err != nil {
		return nil, err
	}
	site.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if err := site.Seed(ctx, n); err != nil {
		return nil, err
	}
	site.Now = time.Now
	user := "erpsync_" + strings.TrimPrefix(name, "bench_")
	const password = "bench-Ro-pass9"
	if err := erpnext.CreateReadOnlyUser(ctx, db, name, user, password); err != nil {
		return nil, err
	}
	c := &catalogue{
		name: name, items: n, db: db, site: site,
		dsn:    fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s", user, password, b.srv.Port, name),
		outbox: filepath.Join(b.dir, name+".outbox.db"),
	}
	rows, err := db.QueryContext(ctx, "SELECT name, item_code FROM `tabItem Price` WHERE price_list = 'Standard Selling' ORDER BY item_code, name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r priceRow
		if err := rows.Scan(&r.name, &r.code); err != nil {
			return nil, err
		}
		if len(c.codes) == 0 || c.codes[len(c.codes)-1] != r.code {
			c.codes = append(c.codes, r.code)
			c.prices = append(c.prices, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	progress("  %d items, %d with a Standard Selling price, loaded in %v", n, len(c.codes), time.Since(start).Round(100*time.Millisecond))
	return c, nil
}

// startDaemon writes a settings file and starts `erpsync run` with it.
func (b *bench) startDaemon(c *catalogue, batch int, watch bool) (*daemonProc, error) {
	b.daemons++
	tag := fmt.Sprintf("%s-%d-b%d-%s", c.name, b.daemons, batch, map[bool]string{true: "watch", false: "poll"}[watch])
	watchDir := ""
	if watch {
		watchDir = filepath.Join(b.srv.Dir, "binlog")
	}
	settings := fmt.Sprintf(`# written by erpsync-bench
[tenant]
id = %q
secret_file = %q

[ingest]
url = %q
batch_size = %d
concurrency = %d

[erp]
dsn = %q
poll_interval = %q
site_url = "https://erp.example.com"
watch = %q
watch_debounce = %q

[outbox]
path = %q

[log]
file = "-"
level = "info"
`, c.name, b.secret, b.url, batch, concurrency, c.dsn, pollInterval.String(), watchDir, watchDebounce.String(), c.outbox)
	cfg := filepath.Join(b.dir, tag+".toml")
	if err := os.WriteFile(cfg, []byte(settings), 0o600); err != nil {
		return nil, err
	}
	profile := ""
	if b.o.profile != "" {
		profile = filepath.Join(b.o.profile, tag+".pprof")
	}
	bin := b.bin
	if c.bin != "" {
		bin = c.bin
	}
	return startDaemon(bin, cfg, filepath.Join(b.dir, tag+".log"), profile)
}

// restart starts a daemon on an already synced catalogue and waits until it
// has settled (its first polls re-read the overlap window).
func (b *bench) restart(ctx context.Context, c *catalogue, batch int, watch bool) (*daemonProc, error) {
	d, err := b.startDaemon(c, batch, watch)
	if err != nil {
		return nil, err
	}
	if err := d.waitLog(ctx, "database ready", time.Minute); err != nil {
		return nil, b.stopOn(c, d, err)
	}
	if err := b.settle(ctx, d, fmt.Sprintf("a restart on the %s-item catalogue", catName(c.items))); err != nil {
		return nil, b.stopOn(c, d, err)
	}
	return d, nil
}

// settle waits until the daemon is idle before the next measurement. A daemon
// still busy after two minutes is noted and measured anyway.
func (b *bench) settle(ctx context.Context, d *daemonProc, after string) error {
	err := d.waitIdle(ctx, 2*time.Minute)
	var busy *busyError
	if errors.As(err, &busy) {
		note := fmt.Sprintf("after %s, %v; the next figure was measured anyway", after, err)
		progress("  note: %s", note)
		b.res.Notes = append(b.res.Notes, note)
		return nil
	}
	return err
}

func (b *bench) stop(c *catalogue, d *daemonProc) error {
	err := d.stop()
	c.peak = max(c.peak, d.peakRSS)
	return err
}

func (b *bench) stopOn(c *catalogue, d *daemonProc, err error) error {
	return errors.Join(err, b.stop(c, d))
}

// timeout for waiting on n items: generous, so that a slow run is reported
// with its figure rather than cut off, but bounded.
func timeoutFor(n int) time.Duration { return time.Minute + time.Duration(n)*2*time.Millisecond }

// initialSync starts erpsync on a fresh outbox and measures until every item
// is accepted. The daemon keeps running (watch mode, batch).
func (b *bench) initialSync(ctx context.Context, c *catalogue, batch int) (*daemonProc, error) {
	d, r, err := b.measureInitial(ctx, c, batch)
	if r != nil {
		b.res.Initial = append(b.res.Initial, *r)
	}
	return d, err
}

// measureInitial is initialSync without recording: the figure is returned
// whenever it was measured, complete or not.
func (b *bench) measureInitial(ctx context.Context, c *catalogue, batch int) (*daemonProc, *Initial, error) {
	progress("initial sync of %d items (batch %d)", c.items, batch)
	b.hook.expect(c.items)
	cpu0 := b.cpuNow(nil)
	start := time.Now()
	d, err := b.startDaemon(c, batch, true)
	if err != nil {
		return nil, nil, err
	}
	r := Initial{Items: c.items, Batch: batch}
	end, ok, err := b.waitCount(ctx, d, timeoutFor(c.items))
	if err != nil {
		return nil, nil, b.stopOn(c, d, err)
	}
	_, hwm := d.mem()
	r.PeakRSSMB = mb(hwm)
	r.CPU = b.cpuNow(d).since(cpu0)
	got := len(b.rcv.Items(c.name))
	r.Complete = ok && got == c.items
	r.Seconds = end.Sub(start).Seconds()
	r.ItemsPerSec = float64(got) / r.Seconds
	progress("  %d items in %.1fs: %.0f items/s, peak RSS %.1f MB; CPU s: erpsync %.2f, mariadbd %.2f, receiver %.2f; other processes %.0f%% of a core",
		got, r.Seconds, r.ItemsPerSec, r.PeakRSSMB, r.CPU.Erpsync, r.CPU.MariaDB, r.CPU.Bench, r.CPU.OtherPercent)
	if !r.Complete {
		return nil, &r, b.stopOn(c, d, fmt.Errorf("initial sync incomplete: %d of %d items after %.0fs", got, c.items, r.Seconds))
	}
	if err := b.settle(ctx, d, "the initial sync"); err != nil {
		return nil, &r, b.stopOn(c, d, err)
	}
	return d, &r, nil
}

// waitCount waits until the hook's expected count is reached, sampling the
// daemon's memory. It returns the moment it was reached (or now, on timeout).
func (b *bench) waitCount(ctx context.Context, d *daemonProc, timeout time.Duration) (time.Time, bool, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		if at, ok := b.hook.reachedAt(); ok {
			return at, true, nil
		}
		if time.Now().After(deadline) {
			return time.Now(), false, nil
		}
		if i%5 == 0 {
			d.mem()
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false, ctx.Err()
		case <-d.done:
			return time.Time{}, false, d.exitErr()
		case <-t.C:
		}
	}
}

// latency changes one price at a time and measures from just before COMMIT
// to the receiver's acceptance of that item.
func (b *bench) latency(ctx context.Context, c *catalogue, d *daemonProc, mode string, n int) error {
	progress("latency, %s mode: %d single-item changes", mode, n)
	offset := 0
	if mode == "poll" {
		offset = n // other items than the watch run
	}
	rows := c.prices[offset:min(offset+n, len(c.prices))]
	var lat []time.Duration
	missed := 0
	cpu0 := b.cpuNow(d)
	rng := rand.New(rand.NewPCG(uint64(offset), 7))
	// Per change: item, commit duration, latency; kept in the work directory (--keep).
	var csv strings.Builder
	csv.WriteString("item,commit_start_unix_ns,commit_ms,latency_ms\n")
	defer func() {
		_ = os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%s-latency-%s.csv", c.name, mode)), []byte(csv.String()), 0o600)
	}()
	for i, r := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		rate := fmt.Sprintf("%d.%02d", 100+rng.IntN(900), i%100)
		arrived := b.hook.awaitItem(r.code)
		tx, err := c.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE `tabItem Price` SET price_list_rate = ?, modified = ?, modified_by = 'Administrator' WHERE name = ?",
			rate, c.site.Format(time.Now()), r.name); err != nil {
			tx.Rollback()
			return err
		}
		start := time.Now()
		if err := tx.Commit(); err != nil {
			return err
		}
		committed := time.Since(start)
		select {
		case at := <-arrived:
			lat = append(lat, at.Sub(start))
			fmt.Fprintf(&csv, "%s,%d,%.3f,%.3f\n", r.code, start.UnixNano(), ms(committed), ms(at.Sub(start)))
		case <-time.After(5 * time.Second):
			missed++
			fmt.Fprintf(&csv, "%s,%d,%.3f,\n", r.code, start.UnixNano(), ms(committed))
		case <-d.done:
			return d.exitErr()
		}
		b.hook.disarm()
		// Watch mode: 50-100ms apart, so that changes do not coalesce. Poll
		// mode: a random phase of the poll cycle, as real edits arrive (a fixed
		// short gap after each delivery would land every change just after a
		// poll and measure the whole interval every time).
		gap := 50*time.Millisecond + time.Duration(rng.IntN(50))*time.Millisecond
		if mode == "poll" {
			gap = 50*time.Millisecond + time.Duration(rng.Int64N(int64(pollInterval)))
		}
		time.Sleep(gap)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	l := Latency{Mode: mode, Catalogue: c.items, Changes: len(rows), Missed: missed,
		P50: pct(lat, 50), P95: pct(lat, 95), P99: pct(lat, 99), Max: pct(lat, 100), CPU: b.cpuNow(d).since(cpu0)}
	// The final state must be at the receiver.
	items := b.rcv.Items(c.name)
	for _, r := range rows {
		if _, ok := items[r.code]; !ok {
			l.Missed++
		}
	}
	b.res.Latency = append(b.res.Latency, l)
	progress("  p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms, missed %d; other processes %.0f%% of a core, steal %.0f%%, I/O stall %.0f%%",
		l.P50, l.P95, l.P99, l.Max, l.Missed, l.CPU.OtherPercent, l.CPU.StealPercent, l.CPU.IOStallPercent)
	return nil
}

// latencyCeiling posts pre-signed single-item bodies of the latency items one
// after the other.
func (b *bench) latencyCeiling(ctx context.Context, c *catalogue) error {
	n := min(b.o.changes, len(c.codes))
	entries, err := nextEntries(b.rcv.Items(c.name), c.codes[:n])
	if err != nil {
		return err
	}
	bodies, err := buildBodies(b.key, c.name, entries, 1)
	if err != nil {
		return err
	}
	p := newPoster(b.url, c.name, 1)
	if _, err := p.roundTrips(ctx, bodies[:min(10, len(bodies))]); err != nil { // warm up
		return err
	}
	entries, _ = nextEntries(b.rcv.Items(c.name), c.codes[:n])
	bodies, _ = buildBodies(b.key, c.name, entries, 1)
	cpu0 := b.cpuNow(nil)
	rt, err := p.roundTrips(ctx, bodies)
	if err != nil {
		return err
	}
	b.res.LatencyCeiling = &Latency{Mode: "ceiling", Catalogue: c.items, Changes: len(rt), P50: pct(rt, 50), P95: pct(rt, 95), P99: pct(rt, 99), Max: pct(rt, 100),
		CPU: b.cpuNow(nil).since(cpu0)}
	progress("latency ceiling (pre-signed single-item POST): p50 %.2f ms, p99 %.2f ms", b.res.LatencyCeiling.P50, b.res.LatencyCeiling.P99)
	return nil
}

// bulk changes every Standard Selling price in one transaction and measures
// until every item's new version is accepted.
func (b *bench) bulk(ctx context.Context, c *catalogue, d *daemonProc, batch int) error {
	return b.bulkOf(ctx, c, d, batch, c.codes)
}

// bulkOf is bulk for the Standard Selling prices of codes only.
func (b *bench) bulkOf(ctx context.Context, c *catalogue, d *daemonProc, batch int, codes []string) error {
	r, err := b.measureBulk(ctx, c, d, batch, codes)
	if err != nil {
		return err
	}
	b.res.Bulk = append(b.res.Bulk, r)
	return nil
}

// measureBulk is bulkOf without recording.
func (b *bench) measureBulk(ctx context.Context, c *catalogue, d *daemonProc, batch int, codes []string) (Bulk, error) {
	n := len(codes)
	progress("bulk: %d prices in one transaction, batch %d, %d-item catalogue", n, batch, c.items)
	before := b.rcv.Items(c.name)
	b.hook.expect(n)
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return Bulk{}, err
	}
	// Item 3's pinned rate is the largest a decimal(21,9) holds: go down there.
	q := "UPDATE `tabItem Price` SET price_list_rate = IF(price_list_rate > 10000000000, price_list_rate - 1, price_list_rate + 1), " +
		"modified = ?, modified_by = 'Administrator' WHERE price_list = 'Standard Selling'"
	args := []any{c.site.Format(time.Now())}
	if n < len(c.codes) {
		q += " AND item_code IN (?" + strings.Repeat(",?", n-1) + ")"
		for _, code := range codes {
			args = append(args, code)
		}
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		tx.Rollback()
		return Bulk{}, err
	}
	cpu0, conns0, req0 := b.cpuNow(d), b.hook.conns.Load(), b.hook.requests.Load()
	stopProfile := b.profileSelf(fmt.Sprintf("bench-bulk-%d-%d-b%d%s", c.items, n, batch, laneSuffix(c)))
	start := time.Now()
	if err := tx.Commit(); err != nil {
		stopProfile()
		return Bulk{}, err
	}
	deadline := start.Add(timeoutFor(n))
	end, _, err := b.waitCount(ctx, d, time.Until(deadline))
	stopProfile()
	if err != nil {
		return Bulk{}, err
	}
	// Every item must hold a newer version than before.
	verified := 0
	for {
		items := b.rcv.Items(c.name)
		verified = 0
		for _, code := range codes {
			if items[code].Version > before[code].Version {
				verified++
			}
		}
		if verified == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
		end = time.Now()
	}
	_, hwm := d.mem()
	r := Bulk{Catalogue: c.items, Items: n, Batch: batch, Verified: verified, Complete: verified == n,
		Seconds: end.Sub(start).Seconds(), PeakRSSMB: mb(hwm), CPU: b.cpuNow(d).since(cpu0),
		Connections: b.hook.conns.Load() - conns0, Requests: b.hook.requests.Load() - req0}
	r.ItemsPerSec = float64(verified) / r.Seconds
	progress("  %d of %d verified in %.2fs: %.0f items/s, peak RSS %.1f MB; CPU s: erpsync %.2f, mariadbd %.2f, receiver (bench process) %.2f; %d requests, %d new connections",
		verified, n, r.Seconds, r.ItemsPerSec, r.PeakRSSMB, r.CPU.Erpsync, r.CPU.MariaDB, r.CPU.Bench, r.Requests, r.Connections)
	return r, nil
}

// ceiling posts the same items, at the same batch size and concurrency,
// pre-built and pre-signed, to the same receiver (erpsync is stopped).
func (b *bench) ceiling(ctx context.Context, c *catalogue, batch int) error {
	entries, err := nextEntries(b.rcv.Items(c.name), c.codes)
	if err != nil {
		return err
	}
	bodies, err := buildBodies(b.key, c.name, entries, batch)
	if err != nil {
		return err
	}
	entries = nil
	runtime.GC()
	b.hook.expect(len(c.codes))
	cpu0, req0 := b.cpuNow(nil), b.hook.requests.Load()
	stopProfile := b.profileSelf(fmt.Sprintf("bench-ceiling-%d-b%d", c.items, batch))
	took, err := newPoster(b.url, c.name, concurrency).postAll(ctx, bodies, concurrency)
	stopProfile()
	if err != nil {
		return err
	}
	cpu, requests := b.cpuNow(nil).since(cpu0), b.hook.requests.Load()-req0
	if _, ok := b.hook.reachedAt(); !ok {
		return fmt.Errorf("ceiling: the receiver did not accept all %d items", len(c.codes))
	}
	for i := range b.res.Bulk {
		r := &b.res.Bulk[i]
		if r.Catalogue == c.items && r.Batch == batch && r.Items == len(c.codes) {
			r.CeilingSeconds = took.Seconds()
			r.CeilingItemsPerSec = float64(len(c.codes)) / took.Seconds()
			r.Ratio = r.ItemsPerSec / r.CeilingItemsPerSec
			r.CeilingCPU = cpu
			r.CeilingRequests = requests
			progress("  ceiling, batch %d: %.0f items/s (%.2fs); erpsync reaches %.0f%%; other processes %.0f%% of a core, steal %.0f%%",
				batch, r.CeilingItemsPerSec, r.CeilingSeconds, 100*r.Ratio, cpu.OtherPercent, cpu.StealPercent)
		}
	}
	for i := range b.res.Initial {
		r := &b.res.Initial[i]
		if r.Items == c.items && r.Batch == batch {
			r.CeilingItemsPerSec = float64(len(c.codes)) / took.Seconds()
		}
	}
	return nil
}

// profileSelf starts a CPU profile of the bench process itself (the
// receiver, and the ceiling's client) into <profile dir>/<name>.pprof when
// --profile is set; the returned function stops it.
func (b *bench) profileSelf(name string) (stop func()) {
	if b.o.profile == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(b.o.profile, name+".pprof"))
	if err != nil {
		progress("  profile %s: %v", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		progress("  profile %s: %v", name, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			progress("  profile %s: %v", name, err)
		}
	}
}

// idle measures CPU and RSS over a period with nothing changing: poll every
// second, watch on. after "" waits until the daemon has settled first;
// otherwise the period starts at once, after what after says.
func (b *bench) idle(ctx context.Context, c *catalogue, d *daemonProc, dur time.Duration, after string) error {
	progress("idle for %v (%d items) %s", dur.Round(time.Second), c.items, after)
	if after == "" {
		if err := b.settle(ctx, d, "the previous step"); err != nil {
			return err
		}
	}
	dbPid := b.srv.Pid()
	all0 := b.cpuNow(d)
	c0, db0, start := d.cpu(), mustCPU(dbPid), time.Now()
	var peak, last int64
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Since(start) < dur {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.done:
			return d.exitErr()
		case <-t.C:
		}
		last, _ = d.mem()
		peak = max(peak, last)
	}
	el := time.Since(start)
	r := Idle{Catalogue: c.items, Seconds: el.Seconds(), After: after,
		CPUPercent:        100 * float64(d.cpu()-c0) / float64(el),
		MariaDBCPUPercent: 100 * float64(mustCPU(dbPid)-db0) / float64(el),
		RSSMB:             mb(last), PeakRSSMB: mb(peak), CPU: b.cpuNow(d).since(all0)}
	b.res.Idle = append(b.res.Idle, r)
	progress("  erpsync CPU %.2f%% of a core, RSS %.1f MB; mariadbd CPU %.2f%%; other processes %.0f%% of a core",
		r.CPUPercent, r.RSSMB, r.MariaDBCPUPercent, r.CPU.OtherPercent)
	return nil
}

// cpuSample is the CPU time used so far by the daemon, mariadbd and this
// process (the receiver, and the ceiling client when it runs), with the
// machine's total, so that other processes' load is visible.
type cpuSample struct {
	erpsync, mariadb, bench, machine, steal, ioStall time.Duration
	at                                               time.Time
}

func (b *bench) cpuNow(d *daemonProc) cpuSample {
	s := cpuSample{mariadb: mustCPU(b.srv.Pid()), bench: mustCPU(os.Getpid()), at: time.Now()}
	if d != nil {
		s.erpsync = d.cpu()
	}
	s.machine, s.steal = machineCPU()
	s.ioStall = ioStall()
	return s
}

func (s cpuSample) since(o cpuSample) CPU {
	c := CPU{Erpsync: (s.erpsync - o.erpsync).Seconds(), MariaDB: (s.mariadb - o.mariadb).Seconds(), Bench: (s.bench - o.bench).Seconds()}
	if el := s.at.Sub(o.at).Seconds(); el > 0 {
		other := (s.machine - o.machine).Seconds() - c.Erpsync - c.MariaDB - c.Bench
		c.OtherPercent = max(0, 100*other/el)
		c.StealPercent = 100 * (s.steal - o.steal).Seconds() / el
		c.IOStallPercent = 100 * (s.ioStall - o.ioStall).Seconds() / el
	}
	return c
}

func mustCPU(pid int) time.Duration {
	d, _ := procCPU(pid)
	return d
}

// pct is the nearest-rank percentile of sorted durations, in milliseconds.
func pct(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	i = min(max(i, 1), len(sorted))
	return float64(sorted[i-1]) / float64(time.Millisecond)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/orderweave/erpsync/detector"
)

// ResyncCommand queues the current state of items again, whether or not
// they changed, while the daemon runs.
type ResyncCommand struct{ stdio }

// Run queues the items chosen by --item, --all or --since.
func (c *ResyncCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("resync", c.stderr, c.Usage)
	configPath := configFlag(fs)
	var codes []string
	fs.Func("item", "item code to send again (repeat, or separate with commas)", func(s string) error {
		for _, code := range strings.Split(s, ",") {
			if code = strings.TrimSpace(code); code != "" {
				codes = append(codes, code)
			}
		}
		return nil
	})
	all := fs.Bool("all", false, "send every item again")
	since := fs.String("since", "", "send items whose Item, Item Price or Bin changed at or after TIME (site time zone), or in the last DURATION")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if len(codes) == 0 {
			return usageErrorf("unexpected argument %q: item codes follow --item", pos[0])
		}
		codes = append(codes, pos...) // --item A B C
	}
	modes := 0
	for _, on := range []bool{len(codes) > 0, *all, *since != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return usageErrorf("choose exactly one of --item CODE…, --all or --since TIME")
	}

	if *since != "" {
		if _, err := parseSince(*since, time.UTC, "2000-01-01 00:00:00.000000"); err != nil {
			return usageErrorf("--since %q: %v", *since, err)
		}
	}
	cfg, err := ReadConfig(ConfigPath(*configPath))
	if err != nil {
		return err
	}
	ob, err := openExistingOutbox(ctx, cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	if done, _, err := ob.Meta(ctx, metaSnapshotDone); err != nil {
		return err
	} else if done != "1" && !(len(codes) > 0) {
		return errors.New("the initial sync has not finished yet: it sends every item by itself (erpsync status shows how far it got); resync --item works meanwhile")
	}
	db, err := openSiteDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	dcfg := detectorConfig(cfg)
	if *since != "" {
		dcfg.Overlap = time.Microsecond // see sinceBatches
	}
	det, err := detector.New(ctx, db, dcfg)
	if err != nil {
		return fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}

	q := &queue{
		ob: ob, tenant: cfg.Tenant.ID, batchSize: cfg.Ingest.BatchSize, maxBodyBytes: cfg.Ingest.MaxBodyBytes,
		logger: slog.New(slog.DiscardHandler), now: time.Now, force: true,
	}
	r := &resync{q: q, queued: map[string]bool{}}
	start := time.Now()
	switch {
	case len(codes) > 0:
		r.progress = newResyncProgress(c.stderr, len(uniqueCodes(codes)))
		err = r.items(ctx, det, codes, cfg.ERP.PageSize)
	case *all:
		var total int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `tabItem`").Scan(&total); err != nil {
			return fmt.Errorf("count items: %w", err)
		}
		r.progress = newResyncProgress(c.stderr, total)
		err = det.Snapshot(ctx, "", r.emit)
	default:
		now, nowErr := det.Now(ctx)
		if nowErr != nil {
			return nowErr
		}
		from, parseErr := parseSince(*since, det.Location(), now)
		if parseErr != nil {
			return usageErrorf("--since %q: %v", *since, parseErr)
		}
		fmt.Fprintf(c.stderr, "resync: items changed at or after %s (%s)\n", from, det.Location())
		r.progress = newResyncProgress(c.stderr, 0)
		err = r.since(ctx, det, from)
	}
	r.progress.finish()
	if err != nil {
		return fmt.Errorf("resync stopped after queueing %d item states: %w", r.progress.queued, err)
	}
	fmt.Fprintf(c.stdout, "queued %d item state(s) of %d item(s) read in %s; a running daemon delivers them (erpsync status shows the backlog)\n",
		r.progress.queued, r.progress.seen, time.Since(start).Round(time.Millisecond))
	if r.skipped > 0 {
		fmt.Fprintf(c.stdout, "skipped %d item(s) that do not exist and were never sent\n", r.skipped)
	}
	return nil
}

// Usage prints help.
func (c *ResyncCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync resync [--config FILE] (--item CODE… | --all | --since TIME)

Queues the current state of items again, built whole from the database as the
daemon builds them, even when nothing changed since they were last sent (for
a receiver that lost data, or after fixing a dead letter's cause). Each state
gets a new version, so receivers take it. An item that was deleted is sent as
a delete again. Works while the daemon runs: it shares the outbox, and the
daemon delivers what resync queued within a few seconds.

  --item CODE…   these items (repeat --item, separate with commas, or list
                 several codes after one --item)
  --all          every item
  --since TIME   items whose Item, Item Price or Bin row was modified at or
                 after TIME, and items deleted since: TIME is in the site's
                 time zone ("2026-01-31", "2026-01-31 14:00", RFC 3339 with an
                 offset), or a duration back from the database's clock ("6h",
                 "3d")

On a terminal a progress bar shows on stderr; otherwise one line per thousand
items.

Examples:
	sudo erpsync resync --item ITEM-00042
	sudo erpsync resync --item ITEM-1 ITEM-2 ITEM-3
	sudo erpsync resync --since 2026-01-31
	sudo erpsync resync --since 6h
	sudo erpsync resync --all
`)
}

// detectorConfig is the detector's part of the settings.
func detectorConfig(cfg *Config) detector.Config {
	return detector.Config{
		PriceLists: cfg.ERP.PriceLists, Warehouses: cfg.ERP.Warehouses, SiteURL: cfg.ERP.SiteURL,
		ExtraFields: cfg.ERP.ExtraFields, PageSize: cfg.ERP.PageSize, Overlap: cfg.ERP.Overlap,
		TimeZone: cfg.ERP.TimeZone,
	}
}

// resync feeds built items to the queue, once per item.
type resync struct {
	q        *queue
	progress *resyncProgress
	queued   map[string]bool // item codes already queued by this run
	skipped  int
}

// emit queues the items of b that this run has not queued yet.
func (r *resync) emit(ctx context.Context, b detector.Batch) error {
	items := make([]detector.Item, 0, len(b.Items))
	for _, it := range b.Items {
		if !r.queued[it.Code] {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil
	}
	// No Source, no After: resync moves neither a cursor nor the initial
	// sync's position.
	n, err := r.q.write(ctx, detector.Batch{Items: items})
	if err != nil {
		return err
	}
	for _, it := range items {
		r.queued[it.Code] = true
	}
	r.skipped += len(items) - n
	r.progress.add(len(items), n)
	return nil
}

func (r *resync) items(ctx context.Context, det *detector.Detector, codes []string, pageSize int) error {
	codes = uniqueCodes(codes)
	pageSize = max(pageSize, 1)
	for start := 0; start < len(codes); start += pageSize {
		built, err := det.Build(ctx, codes[start:min(start+pageSize, len(codes))])
		if err != nil {
			return err
		}
		if err := r.emit(ctx, detector.Batch{Items: built}); err != nil {
			return err
		}
	}
	return nil
}

// since polls every source from `from`: with the overlap set to 1µs and the
// cursor 1µs after from, the poll reads exactly the rows with modified >=
// from, page by page on the modified index, and builds their items.
func (r *resync) since(ctx context.Context, det *detector.Detector, from string) error {
	t, err := time.Parse(siteTimeLayout, from)
	if err != nil {
		return err
	}
	start := t.Add(time.Microsecond).Format(siteTimeLayout)
	cursors := map[string]detector.Cursor{}
	for _, s := range detector.Sources() {
		cursors[s] = detector.Cursor{Modified: start}
	}
	_, err = det.Poll(ctx, cursors, r.emit)
	return err
}

func uniqueCodes(codes []string) []string {
	seen := map[string]bool{}
	out := codes[:0:0]
	for _, c := range codes {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// siteTimeLayout is how ERPNext writes `modified`, in the site's zone.
const siteTimeLayout = "2006-01-02 15:04:05.000000"

// parseSince turns --since into site-time text: an absolute time (naive
// ones are in loc, the site's zone; ones with an offset are converted), or a
// duration back from now, the database's clock in site time.
func parseSince(s string, loc *time.Location, now string) (string, error) {
	s = strings.TrimSpace(s)
	if d, ok := parseAge(s); ok {
		n, err := time.Parse(siteTimeLayout, now)
		if err != nil {
			return "", fmt.Errorf("database clock %q: %w", now, err)
		}
		return n.Add(-d).Format(siteTimeLayout), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.In(loc).Format(siteTimeLayout), nil
	}
	for _, layout := range []string{
		"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02 15:04:05.999999",
		"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format(siteTimeLayout), nil // naive: already site time
		}
	}
	return "", errors.New(`not a time: write "2026-01-31", "2026-01-31 14:00:00", RFC 3339 with an offset, or a duration such as "6h" or "3d"`)
}

// parseAge reads a Go duration, or whole days as "3d".
func parseAge(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, true
		}
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d >= 0
}

// resyncProgress shows progress on stderr: a bar on a terminal, a plain
// line per thousand items otherwise.
type resyncProgress struct {
	w            io.Writer
	tty          bool
	total        int // 0 when unknown
	seen, queued int
	start, drawn time.Time
	nextLine     int
}

func newResyncProgress(w io.Writer, total int) *resyncProgress {
	return &resyncProgress{w: w, tty: isTTY(w), total: total, start: time.Now(), nextLine: 1000}
}

// isTTY reports whether w is a terminal.
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *resyncProgress) add(seen, queued int) {
	p.seen += seen
	p.queued += queued
	if p.tty {
		if time.Since(p.drawn) >= 100*time.Millisecond {
			p.draw()
		}
		return
	}
	for p.seen >= p.nextLine {
		fmt.Fprintf(p.w, "resync: %d items read, %d queued\n", p.seen, p.queued)
		p.nextLine += 1000
	}
}

func (p *resyncProgress) draw() {
	p.drawn = time.Now()
	rate := float64(p.seen) / max(time.Since(p.start).Seconds(), 0.001)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%d items read, %d queued  %.0f/s ", p.seen, p.queued, rate)
		return
	}
	const width = 30
	frac := min(float64(p.seen)/float64(p.total), 1)
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d/%d items  %.0f/s ", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		frac*100, p.seen, p.total, rate)
}

func (p *resyncProgress) finish() {
	if p == nil {
		return
	}
	if p.tty {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

// openSiteDB opens the ERPNext database of cfg as the daemon does.
func openSiteDB(cfg *Config) (*sql.DB, error) {
	dsn, err := detector.PrepareDSN(cfg.ERP.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", detector.RedactDSN(cfg.ERP.DSN.Reveal()), err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/site"
)

// ResyncCommand queues the current state of items again, whether or not
// they changed, while the daemon runs.
type ResyncCommand struct{ stdio }

// resyncRequest is what the flags chose: exactly one of codes, all, since.
type resyncRequest struct {
	configPath, site string
	codes            []string
	all              bool
	since            string
}

// Run queues the items chosen by --item, --all or --since.
func (c *ResyncCommand) Run(ctx context.Context, args []string) error {
	req, err := c.parse(args)
	if err != nil {
		return err
	}
	cfg, err := readSite(req.configPath, req.site)
	if err != nil {
		return err
	}
	ob, err := openExistingOutbox(ctx, cfg)
	if err != nil {
		return err
	}
	defer ob.Close()
	if done, _, err := site.InitialSync(ctx, ob); err != nil {
		return err
	} else if !done && len(req.codes) == 0 {
		return errors.New("the initial sync has not finished yet: it sends every item by itself (erpsync status shows how far it got); resync --item works meanwhile")
	}
	db, err := detector.Open(cfg.ERP.DSN.Reveal())
	if err != nil {
		return fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}
	defer db.Close()
	progress := newResyncProgress(c.stderr, 0)
	r, err := site.NewResync(ctx, cfg, ob, db, site.ResyncOptions{Progress: progress.add, Since: req.since != ""})
	if err != nil {
		return err
	}
	start := time.Now()
	err = c.resync(ctx, r, req, progress)
	progress.finish()
	if err != nil {
		return fmt.Errorf("resync stopped after queueing %d item states: %w", r.Queued, err)
	}
	fmt.Fprintf(c.stdout, "queued %d item state(s) of %d item(s) read in %s; a running daemon delivers them (erpsync status shows the backlog)\n",
		r.Queued, r.Seen, time.Since(start).Round(time.Millisecond))
	if r.Skipped > 0 {
		fmt.Fprintf(c.stdout, "skipped %d item(s): gone and never sent, or a newer state was queued by the daemon meanwhile\n", r.Skipped)
	}
	if r.Quarantined > 0 {
		fmt.Fprintf(c.stdout, "%d item(s) cannot be built from their values and stay quarantined (erpsync status lists them, the sync log says why)\n", r.Quarantined)
	}
	return nil
}

// parse reads the flags: exactly one of --item, --all and --since.
func (c *ResyncCommand) parse(args []string) (resyncRequest, error) {
	fs := newFlagSet("resync", c.stderr, c.Usage)
	configPath, siteName := configFlag(fs), siteFlag(fs)
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
		return resyncRequest{}, err
	}
	if len(pos) > 0 {
		if len(codes) == 0 {
			return resyncRequest{}, usageErrorf("unexpected argument %q: item codes follow --item", pos[0])
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
		return resyncRequest{}, usageErrorf("choose exactly one of --item CODE…, --all or --since TIME")
	}
	if *since != "" {
		if _, err := site.ParseSince(*since, time.UTC, "2000-01-01 00:00:00.000000"); err != nil {
			return resyncRequest{}, usageErrorf("--since %q: %v", *since, err)
		}
	}
	return resyncRequest{configPath: *configPath, site: *siteName, codes: codes, all: *all, since: *since}, nil
}

// Usage prints help.
func (c *ResyncCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync resync [--config FILE] [--site NAME] (--item CODE… | --all | --since TIME)

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

// resync queues what req chose, telling progress the total where it is known.
func (c *ResyncCommand) resync(ctx context.Context, r *site.Resync, req resyncRequest, progress *resyncProgress) error {
	switch {
	case len(req.codes) > 0:
		progress.total = len(site.UniqueCodes(req.codes))
		return r.Items(ctx, req.codes)
	case req.all:
		total, err := r.CountItems(ctx)
		if err != nil {
			return err
		}
		progress.total = total
		return r.All(ctx)
	default:
		from, err := r.SinceStart(ctx, req.since)
		if err != nil {
			return usageErrorf("--since %q: %v", req.since, err)
		}
		fmt.Fprintf(c.stderr, "resync: items changed at or after %s (%s)\n", from, r.Location())
		return r.Since(ctx, from)
	}
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

package site

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/internal/retry"
	"github.com/orderweave/erpsync/outbox"
)

// Resync queues the current state of items again, built whole from the
// database as the pipeline builds them, even when nothing changed since they
// were last sent. Each state gets a new version; an item that was deleted is
// sent as a delete again. It shares the outbox with a running pipeline, which
// delivers what it queued. It moves neither a cursor nor the initial sync's
// position.
type Resync struct {
	w        *writer
	det      *detector.Detector
	db       *sql.DB
	queued   map[string]bool // item codes already queued by this run
	progress func(seen, queued int)
	readFrom time.Time // the next batch was read after this: when the last one was written

	// Seen, Queued and Skipped count the items read, the states queued, and
	// the items gone and never sent or with a newer state queued meanwhile; Quarantined the items
	// that cannot be built (erpsync status lists them).
	Seen, Queued, Skipped, Quarantined int
}

// ResyncOptions say how a Resync reports and reads.
type ResyncOptions struct {
	// Progress is told how many more items were read and states queued
	// after each page; nil: nobody is told.
	Progress func(seen, queued int)
	// Since makes the detector read rows modified at or after a time
	// exactly (no overlap): for Since.
	Since bool
}

// NewResync checks the site's database (its tables and time zone) and
// returns a Resync into ob.
func NewResync(ctx context.Context, cfg *config.Site, ob *outbox.Outbox, db *sql.DB, opts ResyncOptions) (*Resync, error) {
	dcfg := DetectorConfig(cfg, nil)
	if opts.Since {
		dcfg.Overlap = time.Microsecond // see Since
	}
	det, err := detector.New(ctx, db, dcfg)
	if err != nil {
		return nil, fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}
	floor, err := openFloor(ob.Path())
	if err != nil {
		return nil, err
	}
	w := &writer{
		ob: ob, tenant: cfg.Tenant.ID, batchSize: cfg.Ingest.BatchSize, maxBodyBytes: cfg.Ingest.MaxBodyBytes,
		logger: slog.New(slog.DiscardHandler), now: time.Now, force: true, floor: floor,
	}
	if cfg.HA.Enabled {
		// As the active host does (ha.Term): versions from the database
		// server's clock, which every host of the site reads alike.
		offset, err := serverClockOffset(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
		}
		w.versionNow = func() time.Time { return time.Now().Add(offset) }
	}
	return &Resync{w: w, det: det, db: db, queued: map[string]bool{}, progress: opts.Progress}, nil
}

// serverClockOffset is how far the database server's clock is ahead of the
// local one: the best of three readings, each off by at most half its round
// trip.
func serverClockOffset(ctx context.Context, db *sql.DB) (time.Duration, error) {
	best, bestRTT := time.Duration(0), time.Duration(-1)
	for range 3 {
		var us int64
		before := time.Now()
		if err := db.QueryRowContext(ctx, "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))").Scan(&us); err != nil {
			return 0, fmt.Errorf("read the database server's clock (ha.enabled: versions follow it): %w", err)
		}
		after := time.Now()
		if rtt := after.Sub(before); bestRTT < 0 || rtt < bestRTT {
			best, bestRTT = time.UnixMicro(us).Sub(before.Add(rtt/2)), rtt
		}
	}
	return best, nil
}

// Location is the site's time zone.
func (r *Resync) Location() *time.Location { return r.det.Location() }

// CountItems returns how many items the site has.
func (r *Resync) CountItems(ctx context.Context) (int, error) {
	var total int
	if err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `tabItem`").Scan(&total); err != nil {
		return 0, fmt.Errorf("count items: %w", err)
	}
	return total, nil
}

// emit queues the items of b that this run has not queued yet.
func (r *Resync) emit(ctx context.Context, b detector.Batch) error {
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
	n, err := r.write(ctx, detector.Batch{Items: items})
	if err != nil {
		return err
	}
	r.readFrom = time.Now() // pages are read one after another: the next one after this
	for _, it := range items {
		r.queued[it.Code] = true
	}
	problems := 0
	for _, it := range items {
		if it.Problem != nil {
			problems++
		}
	}
	r.Seen += len(items)
	r.Queued += n
	r.Quarantined += problems
	r.Skipped += len(items) - n - problems
	if r.progress != nil {
		r.progress(len(items), n)
	}
	return nil
}

// resyncBusyTries is how many times a resync tries to queue a batch that
// the daemon's writes keep out of the outbox, each for SQLite's busy timeout
// (10 s): SQLite's wait for the write lock is not fair between processes,
// and a daemon busy with a bulk change can hold it, commit after commit, for
// longer than that.
const resyncBusyTries = 4

// write queues b, trying again while the outbox is busy.
func (r *Resync) write(ctx context.Context, b detector.Batch) (int, error) {
	for try := 1; ; try++ {
		n, err := r.w.writeRead(ctx, b, r.readFrom)
		if err == nil || !outbox.IsBusy(err) || try == resyncBusyTries {
			return n, err
		}
		if !retry.Sleep(ctx, time.Duration(try)*250*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// Items queues the items named by codes, a page at a time.
func (r *Resync) Items(ctx context.Context, codes []string) error {
	r.readFrom = time.Now()
	codes = UniqueCodes(codes)
	pageSize := max(r.det.PageSize(), 1)
	for start := 0; start < len(codes); start += pageSize {
		built, err := r.det.Build(ctx, codes[start:min(start+pageSize, len(codes))])
		if err != nil {
			return err
		}
		if err := r.emit(ctx, detector.Batch{Items: built}); err != nil {
			return err
		}
	}
	return nil
}

// All queues every item.
func (r *Resync) All(ctx context.Context) error {
	r.readFrom = time.Now()
	return r.det.Snapshot(ctx, "", r.emit)
}

// SinceStart turns --since text into site time (ParseSince), reading "now"
// from the database's clock.
func (r *Resync) SinceStart(ctx context.Context, since string) (string, error) {
	now, err := r.det.Now(ctx)
	if err != nil {
		return "", err
	}
	return ParseSince(since, r.det.Location(), now)
}

// Since queues the items whose Item, Item Price or Bin row was modified at
// or after from (site time, ModifiedLayout), and those deleted since: with
// the overlap at 1µs (ResyncOptions.Since) and the cursor 1µs after from,
// the poll reads exactly the rows with modified >= from, page by page on the
// modified index, and builds their items.
func (r *Resync) Since(ctx context.Context, from string) error {
	r.readFrom = time.Now()
	t, err := time.Parse(detector.ModifiedLayout, from)
	if err != nil {
		return err
	}
	start := t.Add(time.Microsecond).Format(detector.ModifiedLayout)
	cursors := map[string]detector.Cursor{}
	for _, s := range detector.Sources() {
		cursors[s] = detector.Cursor{Modified: start}
	}
	// The server-clock source reads rows stamped by SQL NOW(): the same
	// instant, in the database session's zone.
	_, offset := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, r.det.Location()).Zone()
	sign := "+"
	if offset < 0 {
		sign, offset = "-", -offset
	}
	siteOffset := fmt.Sprintf("%s%02d:%02d", sign, offset/3600, offset%3600/60)
	var server sql.NullString
	if err := r.db.QueryRowContext(ctx, "SELECT DATE_FORMAT(CONVERT_TZ(?, ?, @@session.time_zone), '%Y-%m-%d %H:%i:%s.%f')", start, siteOffset).Scan(&server); err != nil {
		return fmt.Errorf("read --since in the database server's time zone: %w", err)
	}
	if !server.Valid { // a zone CONVERT_TZ does not know: read from the site-time start, earlier or later by the zones' difference
		server.String = start
	}
	cursors[detector.SourcePriceServer] = detector.Cursor{Modified: server.String}
	_, err = r.det.Poll(ctx, cursors, r.emit)
	return err
}

// UniqueCodes returns codes without repeats, in their first order.
func UniqueCodes(codes []string) []string {
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

// ParseSince turns --since into site-time text: an absolute time (naive
// ones are in loc, the site's zone; ones with an offset are converted), or a
// duration back from now, the database's clock in site time.
func ParseSince(s string, loc *time.Location, now string) (string, error) {
	s = strings.TrimSpace(s)
	if d, ok := parseAge(s); ok {
		n, err := time.Parse(detector.ModifiedLayout, now)
		if err != nil {
			return "", fmt.Errorf("database clock %q: %w", now, err)
		}
		return n.Add(-d).Format(detector.ModifiedLayout), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.In(loc).Format(detector.ModifiedLayout), nil
	}
	for _, layout := range []string{
		"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02 15:04:05.999999",
		"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format(detector.ModifiedLayout), nil // naive: already site time
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

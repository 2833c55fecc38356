package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/outbox"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// daemon is the main job: detect → queue → deliver, until its context ends.
type daemon struct {
	cfg    *Config // the settings in force; Reload replaces it
	logger *slog.Logger
	log    *syncLog // optional: lets Reload change the level and reopen the file
	now    func() time.Time

	ready func() // called once the database and outbox are open (tests, systemd notify)

	housekeepingEvery time.Duration // default housekeepingEvery; tests shorten it
	metrics           *siteMetrics  // nil: metrics off

	mu      sync.Mutex
	running *pipeline // nil until Run has opened everything
}

// pipeline holds the pieces of a running daemon that a reload reaches.
type pipeline struct {
	ob     *outbox.Outbox
	client *client.Client
	disp   *dispatcher
	q      *queue
	detect *detection
}

// Run opens the outbox and the database, then detects and delivers until ctx
// is done. A database that is down at start or later is retried with backoff;
// settings or schema errors stop it.
func (d *daemon) Run(ctx context.Context) error {
	cfg, log := d.cfg, d.logger
	if d.now == nil {
		d.now = time.Now
	}
	ob, err := outbox.Open(ctx, cfg.Outbox.Path)
	if err != nil {
		return fmt.Errorf("%w (outbox.path in %s)", err, cfg.Path)
	}
	defer ob.Close()

	dsn, err := detector.PrepareDSN(cfg.ERP.DSN.Reveal())
	if err != nil {
		return err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return fmt.Errorf("open database %s: %w", detector.RedactDSN(cfg.ERP.DSN.Reveal()), err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxLifetime(5 * time.Minute)

	cl, err := client.New(clientConfig(cfg, log))
	if err != nil {
		return fmt.Errorf("ingest settings in %s: %w", cfg.Path, err)
	}

	log.Info("erpsync starting", "version", version, "tenant", cfg.Tenant.ID, "ingest_url", cfg.Ingest.URL,
		"database", detector.RedactDSN(cfg.ERP.DSN.Reveal()), "outbox", cfg.Outbox.Path, "poll_interval", cfg.ERP.PollInterval.String())

	det, err := d.openDetector(ctx, db)
	if err != nil {
		return err
	}
	if det == nil {
		return nil // stopped while waiting for the database
	}

	disp := newDispatcher(ob, cl, log, cfg.Tenant.ID, cfg.Ingest.Concurrency, cfg.Ingest.RetryMaxWait)
	disp.metrics = d.metrics
	q := &queue{
		ob: ob, tenant: cfg.Tenant.ID, batchSize: cfg.Ingest.BatchSize, maxBodyBytes: cfg.Ingest.MaxBodyBytes,
		logger: log, now: d.now, queued: disp.Wake, direct: disp,
	}
	detect := &detection{
		det: det, ob: ob, q: q, logger: log, interval: cfg.ERP.PollInterval, metrics: d.metrics,
		reconcileEvery: cfg.ERP.ReconcileInterval,
		wake:           make(chan struct{}, 1), apply: make(chan func(), 8),
	}
	detect.beat()
	d.mu.Lock()
	d.running = &pipeline{ob: ob, client: cl, disp: disp, q: q, detect: detect}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = nil
		d.mu.Unlock()
	}()
	if d.ready != nil {
		d.ready()
	}

	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		disp.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		d.metrics.watchOutbox(ctx, ob, d.now)
	}()
	go func() {
		defer wg.Done()
		d.housekeeping(ctx, ob)
	}()
	if cfg.ERP.Watch != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.watchBinlog(ctx, detect)
		}()
	}
	err = detect.run(ctx)
	wg.Wait()
	log.Info("erpsync stopped")
	return err
}

// watchBinlog wakes the detector on every commit the database writes to its
// binary log (erp.watch). Polling goes on as the safety net; if the directory
// cannot be watched that is logged once and retried.
func (d *daemon) watchBinlog(ctx context.Context, detect *detection) {
	cfg := d.config()
	var outage outageLog
	for attempt := 1; ; attempt++ {
		err := detector.Watch(ctx, cfg.ERP.Watch, cfg.ERP.WatchDebounce, detect.Wake)
		if ctx.Err() != nil {
			return
		}
		outage.failed(d.logger, "binary log watch (erp.watch; polling every erp.poll_interval meanwhile)", err)
		if !sleepCtx(ctx, backoff(attempt, 30*time.Second)) {
			return
		}
	}
}

// clientConfig is the delivery client's part of the settings.
func clientConfig(cfg *Config, log *slog.Logger) client.Config {
	return client.Config{
		URL: cfg.Ingest.URL, TenantID: cfg.Tenant.ID, Key: cfg.Tenant.Key(),
		Timeout: cfg.Ingest.Timeout, Retries: clientRetries(cfg.Ingest.Retries),
		UserAgent: "erpsync/" + version, Logger: log,
	}
}

// Reconcile asks the running daemon for a reconciliation sweep now.
func (d *daemon) Reconcile() {
	d.mu.Lock()
	p := d.running
	d.mu.Unlock()
	if p != nil {
		p.detect.requestReconcile()
	}
}

// openDetector waits for the database (logging once, not on every retry) and
// checks its schema. It returns nil, nil when ctx ends first.
func (d *daemon) openDetector(ctx context.Context, db *sql.DB) (*detector.Detector, error) {
	cfg := d.cfg
	var outage outageLog
	for attempt := 1; ; attempt++ {
		det, err := detector.New(ctx, db, detector.Config{
			PriceLists: cfg.ERP.PriceLists, Warehouses: cfg.ERP.Warehouses, SiteURL: cfg.ERP.SiteURL,
			ExtraFields: cfg.ERP.ExtraFields, PageSize: cfg.ERP.PageSize, Overlap: cfg.ERP.Overlap,
			TimeZone: cfg.ERP.TimeZone, Logger: d.logger,
		})
		if err == nil {
			outage.recovered(d.logger, "database")
			d.logger.Info("database ready", "time_zone", det.Location().String())
			return det, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if !isConnError(err) {
			return nil, fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
		}
		outage.failed(d.logger, "database", err)
		if !sleepCtx(ctx, backoff(attempt, 30*time.Second)) {
			return nil, nil
		}
	}
}

// isConnError tells a database that cannot be reached (retry) from one that
// answers but is wrong for us (stop with the reason).
func isConnError(err error) bool {
	var site *detector.SiteError
	if errors.As(err, &site) {
		return false
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1049: // access denied to database, access denied, unknown database
			return false
		}
	}
	return true
}

// detection runs the initial snapshot once, then polls; between polls it
// walks a reconciliation sweep one page at a time when one is due.
type detection struct {
	det      *detector.Detector
	ob       *outbox.Outbox
	q        *queue
	logger   *slog.Logger
	interval time.Duration

	reconcileEvery time.Duration // 0: only on request
	wake           chan struct{} // poll now (binary log watch)
	apply          chan func()   // settings changes, run between steps
	reconcileReq   atomic.Bool
	metrics        *siteMetrics
	sweep          *sweep       // the reconciliation in progress, if any
	heartbeat      atomic.Int64 // unix nanoseconds of the last sign of progress
}

// stuckAfter is how long detection may show no progress before the systemd
// watchdog is no longer fed (a poll, a snapshot page or a retry all count).
const stuckAfter = 10 * time.Minute

// beat records progress.
func (r *detection) beat() { r.heartbeat.Store(time.Now().UnixNano()) }

// healthy says whether the daemon's detection loop is making progress.
func (d *daemon) healthy() error {
	d.mu.Lock()
	p := d.running
	d.mu.Unlock()
	if p == nil {
		return nil // starting, or waiting for the database: not stuck
	}
	last := time.Unix(0, p.detect.heartbeat.Load())
	if since := time.Since(last); since > stuckAfter {
		return fmt.Errorf("site %q: detection has shown no progress for %s", d.config().Name, since.Round(time.Second))
	}
	return nil
}

// Wake makes the detector poll now instead of at the next interval.
func (r *detection) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// do runs fn on the detection goroutine between two steps.
func (r *detection) do(fn func()) {
	r.apply <- fn
	r.Wake()
}

func (r *detection) requestReconcile() {
	r.reconcileReq.Store(true)
	r.Wake()
}

func (r *detection) run(ctx context.Context) error {
	var outage outageLog
	var cursors map[string]detector.Cursor
	nextReconcile := time.Now().Add(r.reconcileEvery)
	woken := false // by a commit (erp.watch) rather than the poll timer
	var lastFull time.Time
	for attempt := 0; ; {
		r.beat()
		for len(r.apply) > 0 {
			(<-r.apply)()
		}
		if r.sweep == nil && (r.reconcileReq.Swap(false) || (r.reconcileEvery > 0 && time.Now().After(nextReconcile))) {
			r.sweep = &sweep{started: time.Now()}
			nextReconcile = time.Now().Add(r.reconcileEvery)
			r.logger.Info("reconciliation started: comparing every item with the last state sent")
		}
		// A wake by a commit reads only new rows; the overlap window is
		// re-read at least every poll interval, however often commits wake us.
		tail := woken && time.Since(lastFull) < r.interval
		err := r.step(ctx, &cursors, tail)
		if err == nil && !tail {
			lastFull = time.Now()
		}
		if err == nil && r.sweep != nil {
			err = r.sweepPage(ctx)
		}
		wait := r.interval
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			attempt++
			outage.failed(r.logger, "detection", err)
			wait = backoff(attempt, 5*time.Second) // short: a database or disk back from an outage should be used at once
		default:
			attempt = 0
			outage.recovered(r.logger, "detection")
			if r.sweep != nil {
				wait = 0 // keep sweeping, a page per poll
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
			woken = false
		case <-r.wake:
			timer.Stop()
			woken = err == nil && r.sweep == nil
		}
	}
}

// step does one unit of detection: the whole initial snapshot (resumable), or
// one poll of every source.
func (r *detection) step(ctx context.Context, cursors *map[string]detector.Cursor, tail bool) error {
	if *cursors == nil {
		stored, err := r.ob.Cursors(ctx)
		if err != nil {
			return err
		}
		if len(stored) == 0 {
			start, err := r.det.StartCursors(ctx)
			if err != nil {
				return err
			}
			err = r.ob.Update(ctx, func(tx *outbox.Tx) error {
				for src, c := range start {
					if err := tx.SetCursor(ctx, outbox.Cursor{Source: src, Modified: c.Modified, Name: c.Name}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("store start cursors: %w", err)
			}
			stored, err = r.ob.Cursors(ctx)
			if err != nil {
				return err
			}
		}
		cs := make(map[string]detector.Cursor, len(stored))
		for src, c := range stored {
			cs[src] = detector.Cursor{Modified: c.Modified, Name: c.Name}
		}
		*cursors = cs
	}
	done, _, err := r.ob.Meta(ctx, metaSnapshotDone)
	if err != nil {
		return err
	}
	if done != "1" {
		return r.snapshot(ctx)
	}
	poll := r.det.Poll
	if tail {
		poll = r.det.PollTail // woken by a commit: new rows only; the timer's full poll re-reads the overlap
	}
	next, err := poll(ctx, *cursors, r.write)
	*cursors = next
	if err == nil {
		r.metrics.polled(time.Now())
	}
	return err
}

// write queues a detector batch and records it in the metrics.
func (r *detection) write(ctx context.Context, b detector.Batch) error {
	n, err := r.q.write(ctx, b)
	if err == nil {
		r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
	}
	return err
}

func (r *detection) snapshot(ctx context.Context) error {
	after, _, err := r.ob.Meta(ctx, metaSnapshotAfter)
	if err != nil {
		return err
	}
	start := time.Now()
	r.logger.Info("initial sync: sending every item once", "resume_after", after)
	seen, queued := 0, 0
	err = r.det.Snapshot(ctx, after, func(ctx context.Context, b detector.Batch) error {
		n, err := r.q.write(ctx, b)
		if err != nil {
			return err
		}
		r.metrics.queuedBatch(b, n, r.det.Location(), time.Now())
		r.beat()
		seen += len(b.Items)
		queued += n
		r.logger.Info("initial sync progress", "items_read", seen, "queued", queued, "last_item", b.After)
		return nil
	})
	if err != nil {
		return err
	}
	if err := r.ob.Update(ctx, func(tx *outbox.Tx) error { return tx.SetMeta(ctx, metaSnapshotDone, "1") }); err != nil {
		return err
	}
	r.logger.Info("initial sync done", "items_read", seen, "queued", queued, "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// outageLog logs a failure once per outage and its end once, instead of on
// every retry.
type outageLog struct {
	since time.Time
	count int
}

func (o *outageLog) failed(log *slog.Logger, what string, err error) {
	o.count++
	if o.count == 1 {
		o.since = time.Now()
		log.Error(what+" failed; retrying with backoff until it recovers", "err", err)
		return
	}
	log.Debug(what+" still failing", "err", err, "failures", o.count)
}

func (o *outageLog) recovered(log *slog.Logger, what string) {
	if o.count > 0 {
		log.Info(what+" recovered", "failures", o.count, "outage", time.Since(o.since).Round(time.Millisecond).String())
	}
	o.count = 0
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// clientRetries maps ingest.retries to client.Config.Retries, where 0 means
// "the default" and a negative value means none.
func clientRetries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

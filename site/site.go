// Package site runs one ERPNext site's pipeline: it detects changed items in
// the site's database, writes them into the site's outbox with their versions
// (coalescing states that still wait), sweeps for what polling cannot see,
// keeps the outbox tidy, and drives delivery. cmd/erpsync starts one Pipeline
// per site and tells it of reloads and signals.
package site

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderweave/erpsync/client"
	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/ha"
	"github.com/orderweave/erpsync/internal/retry"
	"github.com/orderweave/erpsync/outbox"
)

// Options are what a Pipeline needs besides its settings.
type Options struct {
	// Logger is the sync log (with site=NAME when there are several sites);
	// nil discards.
	Logger *slog.Logger
	// Metrics records the site's events; nil: metrics off.
	Metrics *Metrics
	// Ready is called once the database and the outbox are open (systemd's
	// READY=1, tests).
	Ready func()
	// Version is erpsync's version, for the start line and the User-Agent.
	Version string
	// Now is the clock for versions and the outbox; default time.Now.
	Now func() time.Time
	// HousekeepingEvery is how often the outbox is pruned and its backlog
	// checked; default one minute.
	HousekeepingEvery time.Duration
	// Servers, when set, is shared by the pipelines of one process: sites on
	// one database server are woken by one probe of the server instead of
	// polling every erp.poll_interval each (probe.go).
	Servers *Servers
}

// Pipeline is one site's running pipeline: detect, write into the outbox,
// deliver, until the context of Run ends.
type Pipeline struct {
	opts    Options
	logger  *slog.Logger
	metrics *siteMetrics // nil: metrics off

	changed chan struct{} // Apply replaced the settings of a site that is not running
	ready   sync.Once     // Options.Ready is called once
	clean   atomic.Bool   // the last housekeeping round found nothing pending or dead
	rounds  atomic.Int64  // housekeeping rounds run (tests)

	mu      sync.Mutex
	cfg     *config.Site   // the settings in force; Apply replaces them
	running *parts         // nil until Run has opened everything
	ob      *outbox.Outbox // the outbox, while a try to start or a run has it open
	down    *siteDown      // why the site is not running; nil while it runs
}

// siteDown is why a site is down, and since when.
type siteDown struct {
	since  time.Time
	reason string
}

// parts are the pieces of a running pipeline that Apply, Reconcile and
// Healthy reach.
type parts struct {
	client *client.Client
	disp   *client.Dispatcher
	w      *writer
	detect *detection
}

// New returns the pipeline of the site cfg describes; Run starts it.
func New(cfg *config.Site, opts Options) *Pipeline {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HousekeepingEvery <= 0 {
		opts.HousekeepingEvery = housekeepingEvery
	}
	return &Pipeline{opts: opts, logger: opts.Logger, cfg: cfg, metrics: opts.Metrics.forSite(cfg.Label()),
		changed: make(chan struct{}, 1)}
}

// Name is the site's name in the settings ("" for a file without [[sites]]).
func (p *Pipeline) Name() string { return p.config().Name }

// config returns the settings in force.
func (p *Pipeline) config() *config.Site {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Run runs the site until ctx is done: it opens the outbox and the database,
// then detects and delivers. A site that cannot start (its database down or
// refusing the user, a table missing, its outbox not writable) is down: that
// is logged once, recorded in its outbox for `erpsync status` and in the
// metrics, and Run tries again with backoff until the site comes up by
// itself, so that one bad site never stops the others. A reload applied
// meanwhile (Apply) is used at the next try, which it starts at once. Run
// returns an error only when another erpsync run delivers from the site's
// outbox (outbox.ErrLocked): two daemons must never share one.
//
// With ha.enabled the site runs only while this process holds the site's
// named lock, and stands by otherwise (runStandby, ha.go).
func (p *Pipeline) Run(ctx context.Context) error {
	for p.config().HA.Enabled {
		if err := p.runStandby(ctx); !errors.Is(err, errSettingsChanged) || ctx.Err() != nil {
			return err
		}
	}
	return p.runSite(ctx, nil)
}

// tellReady calls Options.Ready, once.
func (p *Pipeline) tellReady() {
	if p.opts.Ready != nil {
		p.ready.Do(p.opts.Ready)
	}
}

// runSite is Run's loop of tries to start the site; term is the time this
// process holds the site's lock (nil: ha.enabled is off), which ctx ends.
func (p *Pipeline) runSite(ctx context.Context, term *ha.Term) error {
	var outage retry.Outage
	tellReady := p.tellReady
	for attempt := 1; ; attempt++ {
		err := p.runOnce(ctx, term, func() {
			outage.Recovered(p.logger, "site start")
			p.setState(ctx, nil)
			tellReady()
		})
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errSettingsChanged) {
			attempt = 0
			continue
		}
		if errors.Is(err, outbox.ErrLocked) {
			return fmt.Errorf("%w (outbox.path in %s)", err, p.config().Path)
		}
		p.setState(ctx, err)
		outage.Failed(p.logger, "site start (the site is down; the other sites go on)", err)
		tellReady() // started, though this site is down: status and metrics say so
		select {
		case <-ctx.Done():
			return nil
		case <-p.changed:
			attempt = 0 // new settings: try them at once
		case <-time.After(retry.Backoff(attempt, maxStartWait)):
		}
	}
}

// maxStartWait is the longest wait between two tries to start a site.
const maxStartWait = 30 * time.Second

// errSettingsChanged ends a try to start the site whose settings were
// replaced meanwhile: the next try uses the new ones.
var errSettingsChanged = errors.New("settings changed while the site was starting")

// runOnce opens what the site needs with the settings in force, and runs it
// until ctx is done; up is called once it runs. It returns the reason when
// the site cannot start. With a term (ha.enabled) it takes over (takeOver)
// before it runs.
func (p *Pipeline) runOnce(ctx context.Context, term *ha.Term, up func()) (err error) {
	cfg, log := p.config(), p.logger
	// Sites sharing a process start a few at a time (startsAtOnce); the
	// slot is let go after the first poll (detection.started).
	started := func() {}
	if p.opts.Servers != nil {
		if started, err = p.opts.Servers.starts.enter(ctx); err != nil {
			return err
		}
		defer started()
	}
	ob, err := outbox.Open(ctx, cfg.Outbox.Path)
	if err != nil {
		return fmt.Errorf("%w (outbox.path in %s)", err, cfg.Path)
	}
	defer ob.Close()
	if err := ob.LockForDaemon(); err != nil {
		return err // another erpsync run delivers from this outbox: Run stops
	}
	p.mu.Lock()
	p.ob = ob
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.ob = nil
		p.mu.Unlock()
	}()
	defer func() {
		if err != nil && !errors.Is(err, errSettingsChanged) && ctx.Err() == nil {
			p.setState(ctx, err) // while the outbox is open, for `erpsync status`
		}
	}()
	db, schema, release, err := p.openDB(cfg)
	if err != nil {
		return fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}
	defer release()
	cl, err := client.New(p.clientConfig(cfg))
	if err != nil {
		return fmt.Errorf("ingest settings in %s: %w", cfg.Path, err)
	}

	log.Info("erpsync starting", "version", p.opts.Version, "tenant", cfg.Tenant.ID, "ingest_url", cfg.Ingest.URL,
		"database", detector.RedactDSN(cfg.ERP.DSN.Reveal()), "outbox", cfg.Outbox.Path, "poll_interval", cfg.ERP.PollInterval.String())

	dcfg := DetectorConfig(cfg, log)
	dcfg.Schema = schema
	det, err := detector.New(ctx, db, dcfg)
	if err != nil {
		return fmt.Errorf("%w (erp.dsn in %s)", err, cfg.Path)
	}
	log.Info("database ready", "time_zone", det.Location().String())

	// Detection, delivery, the metrics and housekeeping each read the
	// outbox as the site starts; its connections go once all four are done.
	reads := newStartReads(ob, 4)
	disp := client.NewDispatcher(ob, cl, client.DispatcherConfig{
		Tenant: cfg.Tenant.ID, Concurrency: cfg.Ingest.Concurrency, MaxWait: cfg.Ingest.RetryMaxWait,
		Logger: log, Outcome: p.metrics.delivered, FirstLook: reads.part(),
	})
	floor, err := openFloor(ob.Path())
	if err != nil {
		return fmt.Errorf("%w (beside outbox.path in %s)", err, cfg.Path)
	}
	w := &writer{
		ob: ob, tenant: cfg.Tenant.ID, batchSize: cfg.Ingest.BatchSize, maxBodyBytes: cfg.Ingest.MaxBodyBytes,
		logger: log, now: p.opts.Now, queued: disp.Wake, direct: disp, floor: floor,
		quarantined: p.metrics.quarantinedItems, rebuild: det.Build, held: &heldCursors{stored: time.Now()},
	}
	if q, dropped, err := Quarantined(ctx, ob); err == nil {
		p.metrics.quarantinedItems(len(q) + dropped)
	}
	detect := &detection{
		det: det, ob: ob, w: w, logger: log, interval: cfg.ERP.PollInterval, metrics: p.metrics,
		reconcileEvery: cfg.ERP.ReconcileInterval, settingsFile: cfg.Path,
		wake: make(chan struct{}, 1), apply: make(chan func(), 8), started: started,
	}
	detect.readsDone = reads.part()
	metricsRead, housekept := reads.part(), reads.part()
	w.deselectable = detect.selectionSound
	if cfg.ERP.TimeZone == "" {
		detect.siteZone = func(ctx context.Context) (string, error) { return det.SiteTimeZone(ctx) }
	}
	detect.beat()
	if term != nil {
		if err := p.takeOver(ctx, term, ob, w, detect); err != nil {
			return err
		}
	}
	p.mu.Lock()
	if p.cfg != cfg {
		// A reload came while the site was starting: start again with the
		// last settings, all of them, rather than run the ones it replaced.
		p.mu.Unlock()
		return errSettingsChanged
	}
	p.running = &parts{client: cl, disp: disp, w: w, detect: detect}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = nil
		p.mu.Unlock()
	}()
	up()

	probed := false
	if p.opts.Servers != nil {
		leave, safety, ok := p.opts.Servers.join(cfg.ERP.DSN.Reveal(), cfg.ERP.PollInterval, cfg.ERP.Watch, cfg.ERP.WatchDebounce, detect.Wake)
		if ok {
			defer leave()
			detect.safety, detect.name = safety, cfg.Name
			probed = true // the probe follows erp.watch
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { disp.Run(runCtx) })
	wg.Go(func() { p.metrics.watchOutbox(runCtx, ob, p.opts.Now, disp, p.config, metricsRead) })
	wg.Go(func() { p.housekeeping(runCtx, ob, housekept) })
	if cfg.ERP.Watch != "" && !probed {
		wg.Go(func() { p.watchBinlog(runCtx, cfg, detect) })
	}
	err = detect.run(runCtx)
	stop() // detection ended (ctx, or the site's time zone changed): so does the rest
	wg.Wait()
	log.Info("erpsync stopped")
	return err
}

// openDB returns the site's database pool: with Options.Servers, the pool its
// database server's sites share (schema is the site's database, which the
// detector qualifies every table with); otherwise one of its own on erp.dsn
// (schema "": the DSN's database). release gives it back.
func (p *Pipeline) openDB(cfg *config.Site) (db *sql.DB, schema string, release func(), err error) {
	if p.opts.Servers != nil {
		db, schema, release, ok, err := p.opts.Servers.Pool(cfg.ERP.DSN.Reveal())
		if err != nil || ok {
			return db, schema, release, err
		}
	}
	db, err = detector.Open(cfg.ERP.DSN.Reveal())
	if err != nil {
		return nil, "", nil, err
	}
	return db, "", func() { db.Close() }, nil
}

// DetectorConfig is the detector's part of a site's settings.
func DetectorConfig(cfg *config.Site, log *slog.Logger) detector.Config {
	return detector.Config{
		Selection: cfg.ERP.Selection(), SiteURL: cfg.ERP.SiteURL,
		ExtraFields: cfg.ERP.ExtraFields, PageSize: cfg.ERP.PageSize, Overlap: cfg.ERP.Overlap,
		TimeZone: cfg.ERP.TimeZone, Logger: log,
	}
}

// clientConfig is the delivery client's part of a site's settings.
func (p *Pipeline) clientConfig(cfg *config.Site) client.Config {
	retries := cfg.Ingest.Retries
	if retries == 0 {
		retries = -1 // client.Config: 0 is "the default", a negative value none
	}
	return client.Config{
		URL: cfg.Ingest.URL, TenantID: cfg.Tenant.ID, Key: cfg.Key(),
		Timeout: cfg.Ingest.Timeout, Retries: retries,
		UserAgent: "erpsync/" + p.opts.Version, Logger: p.logger,
	}
}

// watchBinlog wakes the detector on every commit the database writes to its
// binary log (erp.watch). Polling goes on as the safety net; if the directory
// cannot be watched that is logged once and retried.
func (p *Pipeline) watchBinlog(ctx context.Context, cfg *config.Site, detect *detection) {
	var outage retry.Outage
	for attempt := 1; ; attempt++ {
		err := detector.Watch(ctx, cfg.ERP.Watch, cfg.ERP.WatchDebounce, detect.Wake)
		if ctx.Err() != nil {
			return
		}
		outage.Failed(p.logger, "binary log watch (erp.watch; polling every erp.poll_interval meanwhile)", err)
		if !retry.Sleep(ctx, retry.Backoff(attempt, 30*time.Second)) {
			return
		}
	}
}

// Polls is how many polls the running pipeline has run (0 while it is not
// running), for tests and the bench.
func (p *Pipeline) Polls() int64 {
	p.mu.Lock()
	r := p.running
	p.mu.Unlock()
	if r == nil {
		return 0
	}
	return r.detect.polls.Load()
}

// Reconcile asks the running pipeline for a reconciliation sweep now.
func (p *Pipeline) Reconcile() {
	p.mu.Lock()
	r := p.running
	p.mu.Unlock()
	if r != nil {
		r.detect.requestReconcile()
	}
}

// stuckAfter is how long detection may show no progress before Healthy
// fails (a poll, a snapshot page or a retry all count).
const stuckAfter = 10 * time.Minute

// Healthy says whether the pipeline's detection loop is making progress; the
// systemd watchdog is fed only while every site is healthy.
func (p *Pipeline) Healthy() error {
	p.mu.Lock()
	r := p.running
	p.mu.Unlock()
	if r == nil {
		return nil // starting, or waiting for the database: not stuck
	}
	last := time.Unix(0, r.detect.heartbeat.Load())
	if since := time.Since(last); since > stuckAfter {
		return fmt.Errorf("site %q: detection has shown no progress for %s", p.Name(), since.Round(time.Second))
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/internal/metrics"
	"github.com/orderweave/erpsync/internal/sdnotify"
	"github.com/orderweave/erpsync/site"
	"github.com/orderweave/erpsync/synclog"
)

// The Go runtime's soft memory limit for `erpsync run`
// (runtime/debug.SetMemoryLimit), unless GOMEMLIMIT is set: softMemoryBase,
// and softMemoryPerSite more for each site. A soft limit makes the garbage
// collector work harder as the Go heap nears it, instead of letting it double
// after a burst (a bulk change of 100k items); it must stay above what the
// sites keep live, or the collector runs without pause.
const (
	softMemoryBase    = 40 << 20
	softMemoryPerSite = 1 << 20
)

// softMemoryLimit is the soft memory limit for sites sites.
func softMemoryLimit(sites int) int64 {
	return softMemoryBase + int64(max(sites-1, 0))*softMemoryPerSite
}

// RunCommand runs the daemon.
type RunCommand struct{ stdio }

// Run reads the settings, then runs one pipeline per site until ctx ends
// (SIGINT or SIGTERM). A bad setting stops start-up with the reason. SIGHUP
// reloads the settings and reopens the log file; so does saving the settings
// file. SIGUSR1 starts a reconciliation sweep.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("run", c.stderr, c.Usage)
	configPath := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Read(config.Path(*configPath))
	if err != nil {
		return err
	}
	setMemoryLimit(len(cfg.Sites))
	stopProfile, err := startProfiles(os.Getenv("ERPSYNC_CPUPROFILE"), os.Getenv("ERPSYNC_MEMPROFILE"))
	if err != nil {
		return err
	}
	defer stopProfile()
	log, err := synclog.Open(logOptions(cfg.Log), c.stderr)
	if err != nil {
		return fmt.Errorf("settings %s: %w", cfg.Path, err)
	}
	defer log.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &daemon{cfg: cfg, log: log, servers: site.NewServers(log.Logger)}
	if cfg.Metrics.Listen != "" {
		reg := metrics.New()
		d.metrics = site.NewMetrics(reg, version)
		addr, wait, err := reg.Serve(ctx, cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("%w (metrics.listen in %s)", err, cfg.Path)
		}
		defer func() {
			cancel()
			wait()
		}()
		log.Info("serving Prometheus metrics", "url", "http://"+addr.String()+"/metrics")
	}
	d.start()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { d.feedWatchdog(ctx) })
	wg.Go(func() { d.reportSites(ctx) })
	wg.Go(func() { d.handleSignals(ctx) })
	for _, path := range watchedFiles(cfg) {
		wg.Go(func() {
			if err := config.Watch(ctx, path, 200*time.Millisecond, d.reload); err != nil {
				log.Warn("file is not watched; reload with SIGHUP (systemctl reload erpsync) after changing it", "file", path, "err", err)
			}
		})
	}
	go func() {
		<-ctx.Done()
		sdnotify.Stopping()
	}()
	return d.run(ctx)
}

// daemon is `erpsync run`'s wiring: the settings in force, the sync log and
// one pipeline per site.
type daemon struct {
	log     *synclog.Log
	metrics *site.Metrics // nil: metrics off
	servers *site.Servers // the sites of erp.sites share a probe per database server

	reloading sync.Mutex // one reload at a time (SIGHUP and the settings watcher)
	mu        sync.Mutex
	cfg       *config.Config // the file's settings in force; reload replaces them
	sites     []*site.Pipeline
	running   map[*site.Pipeline]*runningSite // the pipelines run has started
	runCtx    context.Context                 // run's context; nil until run starts
	stopAll   context.CancelFunc              // ends run: a site's outbox is another daemon's
	wg        sync.WaitGroup                  // the pipelines' goroutines
	errs      []error                         // why pipelines stopped run
}

// runningSite is a started pipeline: stop ends it, done closes when it has.
type runningSite struct {
	stop context.CancelFunc
	done chan struct{}
}

// pipelines returns the pipelines of the sites in force.
func (d *daemon) pipelines() []*site.Pipeline {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.sites)
}

// settings returns the file's settings in force.
func (d *daemon) settings() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// start builds a pipeline per site. systemd hears READY=1 once every site
// has its database and outbox open.
func (d *daemon) start() {
	n := len(d.cfg.Sites)
	ready := readyWhenAll(max(n, 1), d.log.Logger)
	if n == 0 {
		ready() // erp.sites found no site yet: a reload adds them
		d.log.Warn("no site of the bench takes part yet: set erpsync_tenant_id and erpsync_secret in a site's site_config.json, then reload (systemctl reload erpsync)",
			"file", d.cfg.Path)
	}
	d.logExcluded(d.cfg)
	for _, sc := range d.cfg.Sites {
		d.sites = append(d.sites, d.newPipeline(d.cfg, sc, ready))
	}
}

// newPipeline returns the pipeline of site sc of cfg; a site of erp.sites
// gets its outbox directory first.
func (d *daemon) newPipeline(cfg *config.Config, sc *config.Site, ready func()) *site.Pipeline {
	logger := d.log.Logger
	if len(cfg.Sites) > 1 || cfg.BenchSites() {
		logger = logger.With("site", sc.Name)
	}
	if sc.FromBench() {
		if err := os.MkdirAll(filepath.Dir(sc.Outbox.Path), 0o700); err != nil {
			logger.Error("create the site's outbox directory (under the directory of outbox.path) failed", "err", err)
		}
	}
	opts := site.Options{Logger: logger, Metrics: d.metrics, Ready: ready, Version: version}
	if cfg.BenchSites() {
		opts.Servers = d.servers
	}
	return site.New(sc, opts)
}

// logExcluded logs the sites erp.sites names that cannot take part.
func (d *daemon) logExcluded(cfg *config.Config) {
	for _, err := range cfg.Excluded {
		d.log.Error("a site of erp.sites does not take part; the other sites run", "file", cfg.Path, "err", err)
	}
}

// run runs the sites side by side, each with its own database, outbox and
// client: one site's outage never stalls another. A site whose outbox another
// erpsync run holds stops them all: this process must not start. Sites that a
// reload adds are started, and those it removes stopped, while run runs.
func (d *daemon) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	d.runCtx, d.stopAll = ctx, cancel
	d.running = map[*site.Pipeline]*runningSite{}
	for _, p := range d.sites {
		d.launchLocked(p)
	}
	d.mu.Unlock()
	<-ctx.Done()
	d.mu.Lock()
	d.runCtx = nil // a reload from now on starts no pipeline
	d.mu.Unlock()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(d.errs...)
}

// launchLocked starts p under run's context; d.mu is held.
func (d *daemon) launchLocked(p *site.Pipeline) {
	ctx, stop := context.WithCancel(d.runCtx)
	r := &runningSite{stop: stop, done: make(chan struct{})}
	d.running[p] = r
	d.wg.Go(func() {
		defer close(r.done)
		if err := p.Run(ctx); err != nil {
			d.log.Error("erpsync stopped on an error", "site", p.Name(), "err", err)
			d.mu.Lock()
			d.errs = append(d.errs, err)
			d.mu.Unlock()
			d.stopAll()
		}
	})
}

// addSite starts a pipeline for a site a reload added.
func (d *daemon) addSite(cfg *config.Config, sc *config.Site) {
	p := d.newPipeline(cfg, sc, nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sites = append(d.sites, p)
	if d.running != nil && d.runCtx != nil {
		d.launchLocked(p)
	}
	d.log.Info("settings reload: site added", "site", sc.Name)
}

// removeSite stops the pipeline of a site a reload removed, and waits until
// it has closed its outbox (the site may come back at the next reload).
func (d *daemon) removeSite(p *site.Pipeline) {
	d.mu.Lock()
	d.sites = slices.DeleteFunc(d.sites, func(q *site.Pipeline) bool { return q == p })
	r := d.running[p]
	delete(d.running, p)
	d.mu.Unlock()
	if r != nil {
		r.stop()
		<-r.done
	}
	d.metrics.ForgetSite(p.Name())
	d.log.Info("settings reload: site removed; its outbox stays", "site", p.Name())
}

// reload reads the settings file again and applies it: the file-level log
// level at once, each site's settings through its pipeline (Apply). A file
// with an error keeps the running settings and logs what is wrong. With
// erp.sites, the bench's sites are listed again: a new one is started, one
// gone is stopped; [[sites]] tables are added and removed by a restart.
func (d *daemon) reload() {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	sdnotify.Reloading()
	defer sdnotify.Ready()
	old := d.settings()
	next, err := config.Read(old.Path)
	if err != nil {
		d.log.Error("settings reload failed; the running settings stay in force", "err", err)
		return
	}
	applied, needRestart := config.DiffFile(old, next)
	if err := d.log.SetLevel(next.Log.Level); err != nil {
		d.log.Error("settings reload failed; the running settings stay in force", "err", err)
		return
	}
	if len(applied) > 0 {
		d.log.Info("settings reloaded", "file", next.Path, "applied", strings.Join(applied, ","))
	}
	if len(needRestart) > 0 {
		d.log.Warn("settings changed that take effect only after a restart (systemctl restart erpsync); running with the old values meanwhile",
			"file", next.Path, "keys", strings.Join(needRestart, ","))
	}
	d.logExcluded(next)
	have := map[string]bool{}
	for _, p := range d.pipelines() {
		have[p.Name()] = true
		sc := next.Site(p.Name())
		switch {
		case sc != nil:
			p.Apply(sc) // logs what it applied, or why not
		case next.BenchSites():
			d.removeSite(p)
		default:
			d.log.Error("settings reload: a site is no longer there; [[sites]] tables are added and removed by a restart (systemctl restart erpsync)",
				"file", next.Path, "site", p.Name())
		}
	}
	for _, sc := range next.Sites {
		switch {
		case have[sc.Name]:
		case next.BenchSites():
			d.addSite(next, sc)
		default:
			d.log.Error("settings reload: a new site; [[sites]] tables are added and removed by a restart (systemctl restart erpsync)",
				"file", next.Path, "site", sc.Name)
		}
	}
	kept := *next
	kept.Log, kept.Metrics = old.Log, old.Metrics
	kept.Log.Level = next.Log.Level
	d.mu.Lock()
	d.cfg = &kept
	d.mu.Unlock()
	setMemoryLimit(len(next.Sites))
}

// setMemoryLimit sets the soft memory limit for sites sites, unless
// GOMEMLIMIT in the environment sets it.
func setMemoryLimit(sites int) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit(sites))
	}
}

// handleSignals turns SIGHUP into a reload and a reopened log file, and
// SIGUSR1 into a reconciliation sweep of every site.
func (d *daemon) handleSignals(ctx context.Context) {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(signals)
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-signals:
			switch sig {
			case syscall.SIGHUP:
				if err := d.log.Reopen(); err != nil {
					d.log.Error("reopen the log file failed", "file", d.settings().Log.File, "err", err)
				}
				d.reload()
			case syscall.SIGUSR1:
				for _, p := range d.pipelines() {
					p.Reconcile()
				}
			}
		}
	}
}

// feedWatchdog tells systemd's watchdog all is well while every site's
// detection makes progress.
func (d *daemon) feedWatchdog(ctx context.Context) {
	err := sdnotify.RunWatchdog(ctx, func() error {
		for _, p := range d.pipelines() {
			if err := p.Healthy(); err != nil {
				d.log.Error("watchdog: not telling systemd all is well", "err", err)
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.log.Warn("systemd watchdog keep-alive failed", "err", err)
	}
}

// reportSites tells systemd (STATUS=, shown by systemctl status) which sites
// are down, whenever that changes. A down site does not stop the watchdog:
// restarting the process would not fix it and would stop the other sites.
func (d *daemon) reportSites(ctx context.Context) {
	last := ""
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		var down []string
		sites := d.pipelines()
		for _, p := range sites {
			if isDown, since, reason := p.Down(); isDown {
				down = append(down, fmt.Sprintf("%s down since %s: %s", siteLabel(p.Name()), since.Format(time.TimeOnly), reason))
			}
		}
		text := fmt.Sprintf("%d site(s) running", len(sites))
		if len(down) > 0 {
			text = fmt.Sprintf("%d of %d site(s) down: %s", len(down), len(sites), strings.Join(down, "; "))
		}
		if text != last {
			sdnotify.Status(text)
			last = text
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// siteLabel names a site in messages; "" is the single site of a file
// without [[sites]].
func siteLabel(name string) string {
	if name == "" {
		return "the site"
	}
	return "site " + name
}

// readyWhenAll returns a ready callback that tells systemd READY=1 once it
// has been called n times: every site has its database and outbox open.
func readyWhenAll(n int, log *slog.Logger) func() {
	var left atomic.Int32
	left.Store(int32(n))
	return func() {
		if left.Add(-1) == 0 {
			if ok, err := sdnotify.Ready(); err != nil {
				log.Warn("tell systemd READY=1 failed", "err", err)
			} else if ok {
				log.Info("told systemd the service is ready")
			}
		}
	}
}

// watchedFiles are the files whose change reloads the settings: the settings
// file and every site's tenant.secret_file, so that a rotated secret applies
// as soon as the file is replaced.
func watchedFiles(cfg *config.Config) []string {
	files := []string{cfg.Path}
	for _, sc := range cfg.Sites {
		if f := sc.Tenant.SecretFile; f != "" && !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	return files
}

// logOptions is the sync log's part of the settings.
func logOptions(l config.Log) synclog.Options {
	return synclog.Options{File: l.File, Level: l.Level, Format: l.Format}
}

// Usage prints help.
func (c *RunCommand) Usage() {
	fmt.Fprintf(c.stdout, `usage: erpsync run [--config FILE]

Runs the daemon: sends every item once on first start, then follows changes
in the ERPNext database and delivers them to ingest.url. Logs go to log.file
and to stderr (the journal under systemd).

Signals:
	SIGINT, SIGTERM   stop cleanly (in-flight requests get a few seconds)
	SIGHUP            reload the settings and reopen log.file (logrotate)
	SIGUSR1           start a reconciliation sweep now

Saving the settings file also reloads it. A file with an error keeps the
running settings and logs what is wrong. These keys take effect only after a
restart; a change to one is logged and waits:
	%s

Example:
	erpsync run --config /etc/erpsync/settings.toml
`, strings.Join(config.RestartKeys(), ", "))
}

// startProfiles starts a CPU profile into cpuPath and, when the returned stop
// runs, writes a heap profile into memPath ("": none, each). For the bench
// (ERPSYNC_CPUPROFILE, ERPSYNC_MEMPROFILE).
func startProfiles(cpuPath, memPath string) (stop func(), err error) {
	stopCPU := func() {}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("ERPSYNC_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("ERPSYNC_CPUPROFILE: %w", err)
		}
		stopCPU = func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
	return func() {
		stopCPU()
		if memPath == "" {
			return
		}
		if f, err := os.Create(memPath); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/orderweave/erpsync/internal/sdnotify"
)

// softMemoryLimit is the Go runtime's soft memory limit for `erpsync run`
// (runtime/debug.SetMemoryLimit) unless GOMEMLIMIT is set.
const softMemoryLimit = 40 << 20

// RunCommand runs the daemon.
type RunCommand struct{ stdio }

// Run reads the settings, then detects and delivers until ctx ends (SIGINT or
// SIGTERM). A bad setting stops start-up with the reason. SIGHUP reloads the
// settings and reopens the log file; so does saving the settings file.
// SIGUSR1 starts a reconciliation sweep.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("run", c.stderr, c.Usage)
	configPath := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := ReadConfig(ConfigPath(*configPath))
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the garbage collector works harder as the Go heap
		// nears it, instead of letting it double after a burst (a bulk change
		// of 100k items). GOMEMLIMIT in the environment overrides it.
		debug.SetMemoryLimit(softMemoryLimit)
	}
	stopProfile, err := startCPUProfile(os.Getenv("ERPSYNC_CPUPROFILE"))
	if err != nil {
		return err
	}
	defer stopProfile()
	log, err := openSyncLog(cfg.Log, c.stderr)
	if err != nil {
		return fmt.Errorf("settings %s: %w", cfg.Path, err)
	}
	defer log.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var dm *daemonMetrics
	if cfg.Metrics.Listen != "" {
		dm = newDaemonMetrics()
		addr, wait, err := dm.reg.Serve(ctx, cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("%w (metrics.listen in %s)", err, cfg.Path)
		}
		defer func() {
			cancel()
			wait()
		}()
		log.Info("serving Prometheus metrics", "url", "http://"+addr.String()+"/metrics")
	}
	daemons := make([]*daemon, len(cfg.Sites))
	ready := readyWhenAll(len(cfg.Sites), log.Logger)
	for i, sc := range cfg.Sites {
		logger := log.Logger
		if len(cfg.Sites) > 1 {
			logger = logger.With("site", sc.Name)
		}
		daemons[i] = &daemon{cfg: sc, logger: logger, log: log, ready: ready, metrics: dm.forSite(sc.Name)}
	}
	reload := func() {
		sdnotify.Reloading()
		for _, d := range daemons {
			d.Reload()
		}
		sdnotify.Ready()
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(signals)
	wg.Add(3)
	go func() {
		defer wg.Done()
		err := sdnotify.RunWatchdog(ctx, func() error {
			for _, d := range daemons {
				if err := d.healthy(); err != nil {
					log.Error("watchdog: not telling systemd all is well", "err", err)
					return err
				}
			}
			return nil
		})
		if err != nil {
			log.Warn("systemd watchdog keep-alive failed", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-signals:
				switch sig {
				case syscall.SIGHUP:
					if err := log.Reopen(); err != nil {
						log.Error("reopen the log file failed", "file", cfg.Log.File, "err", err)
					}
					reload()
				case syscall.SIGUSR1:
					for _, d := range daemons {
						d.Reconcile()
					}
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		if err := watchSettings(ctx, cfg.Path, 200*time.Millisecond, reload); err != nil {
			log.Warn("settings file is not watched; reload with SIGHUP (systemctl reload erpsync)", "err", err)
		}
	}()

	// Sites run side by side with their own database, outbox and client: one
	// site's outage never stalls another.
	errs := make([]error, len(daemons))
	var sites sync.WaitGroup
	for i, d := range daemons {
		sites.Add(1)
		go func() {
			defer sites.Done()
			if err := d.Run(ctx); err != nil {
				d.logger.Error("erpsync stopped on an error", "err", err)
				errs[i] = err
			}
		}()
	}
	go func() {
		<-ctx.Done()
		sdnotify.Stopping()
	}()
	sites.Wait()
	return errors.Join(errs...)
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

// Usage prints help.
func (c *RunCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync run [--config FILE]

Runs the daemon: sends every item once on first start, then follows changes
in the ERPNext database and delivers them to ingest.url. Logs go to log.file
and to stderr (the journal under systemd).

Signals:
	SIGINT, SIGTERM   stop cleanly (in-flight requests get a few seconds)
	SIGHUP            reload the settings and reopen log.file (logrotate)
	SIGUSR1           start a reconciliation sweep now

Saving the settings file also reloads it. A change that cannot apply while
running (outbox.path, erp.dsn, …) is logged and waits for a restart; a file
with an error keeps the running settings and logs what is wrong.

Example:
	erpsync run --config /etc/erpsync/settings.toml
`)
}

// startCPUProfile writes a CPU profile of the whole run to path, for
// development (ERPSYNC_CPUPROFILE; erpsync-bench --profile). No path: nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("ERPSYNC_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("ERPSYNC_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// readSiteConfig reads the settings file and returns the site named name
// ("" for a file without [[sites]]).
func readSiteConfig(path, name string) (*Config, error) {
	top, err := ReadConfig(path)
	if err != nil {
		return nil, err
	}
	for _, sc := range top.Sites {
		if sc.Name == name {
			return sc, nil
		}
	}
	return nil, fmt.Errorf("settings %s: site %q is no longer there: sites are added and removed by a restart", path, name)
}

// config returns the settings in force.
func (d *daemon) config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// setting is one key a reload compares: how to read it and whether a change
// applies while running.
type setting struct {
	key     string
	value   func(c *Config) string // compared, never logged: it may hold a secret
	restart bool                   // the change takes effect only after a restart
}

func settings() []setting {
	str := func(f func(c *Config) any) func(c *Config) string {
		return func(c *Config) string { return fmt.Sprint(f(c)) }
	}
	return []setting{
		{"tenant.id", str(func(c *Config) any { return c.Tenant.ID }), true},
		{"tenant.secret", func(c *Config) string { return string(c.Tenant.Key()) }, false},
		{"ingest.url", str(func(c *Config) any { return c.Ingest.URL }), false},
		{"ingest.timeout", str(func(c *Config) any { return c.Ingest.Timeout }), false},
		{"ingest.retries", str(func(c *Config) any { return c.Ingest.Retries }), false},
		{"ingest.batch_size", str(func(c *Config) any { return c.Ingest.BatchSize }), false},
		{"ingest.max_body_bytes", str(func(c *Config) any { return c.Ingest.MaxBodyBytes }), false},
		{"ingest.concurrency", str(func(c *Config) any { return c.Ingest.Concurrency }), false},
		{"ingest.retry_max_wait", str(func(c *Config) any { return c.Ingest.RetryMaxWait }), false},
		{"erp.dsn", func(c *Config) string { return c.ERP.DSN.Reveal() }, true},
		{"erp.poll_interval", str(func(c *Config) any { return c.ERP.PollInterval }), false},
		{"erp.overlap", str(func(c *Config) any { return c.ERP.Overlap }), true},
		{"erp.page_size", str(func(c *Config) any { return c.ERP.PageSize }), true},
		{"erp.price_lists", str(func(c *Config) any { return c.ERP.PriceLists }), false},
		{"erp.warehouses", str(func(c *Config) any { return c.ERP.Warehouses }), false},
		{"erp.site_url", str(func(c *Config) any { return c.ERP.SiteURL }), false},
		{"erp.time_zone", str(func(c *Config) any { return c.ERP.TimeZone }), true},
		{"erp.extra_fields", str(func(c *Config) any { return c.ERP.ExtraFields }), true},
		{"erp.watch", str(func(c *Config) any { return c.ERP.Watch }), true},
		{"erp.watch_debounce", str(func(c *Config) any { return c.ERP.WatchDebounce }), true},
		{"erp.reconcile_interval", str(func(c *Config) any { return c.ERP.ReconcileInterval }), false},
		{"outbox.path", str(func(c *Config) any { return c.Outbox.Path }), true},
		{"outbox.retention", str(func(c *Config) any { return c.Outbox.Retention }), false},
		{"outbox.alarm_pending", str(func(c *Config) any { return c.Outbox.AlarmPending }), false},
		{"outbox.alarm_age", str(func(c *Config) any { return c.Outbox.AlarmAge }), false},
		{"log.file", str(func(c *Config) any { return c.Log.File }), true},
		{"log.level", str(func(c *Config) any { return c.Log.Level }), false},
		{"log.format", str(func(c *Config) any { return c.Log.Format }), true},
		{"metrics.listen", str(func(c *Config) any { return c.Metrics.Listen }), true},
	}
}

// Reload reads the settings file again and applies what changed without a
// restart: the tenant secret, ingest URL and delivery limits, poll interval,
// price lists, warehouses, site URL, log level and outbox housekeeping. A
// change that needs a restart is logged as such and not applied. A file that
// is not valid keeps the running settings; the error says what is wrong.
func (d *daemon) Reload() error {
	d.mu.Lock()
	old, p := d.cfg, d.running
	d.mu.Unlock()
	next, err := readSiteConfig(old.Path, old.Name)
	if err != nil {
		d.logger.Error("settings reload failed; the running settings stay in force", "err", err)
		return err
	}
	var changed, needRestart []string
	for _, s := range settings() {
		if s.value(old) == s.value(next) {
			continue
		}
		if s.restart {
			needRestart = append(needRestart, s.key)
		} else {
			changed = append(changed, s.key)
		}
	}
	// Settings that need a restart keep their running values.
	applied := *next
	applied.Tenant.ID = old.Tenant.ID
	applied.ERP.DSN, applied.ERP.BenchPath, applied.ERP.Site = old.ERP.DSN, old.ERP.BenchPath, old.ERP.Site
	applied.ERP.Overlap, applied.ERP.PageSize, applied.ERP.TimeZone = old.ERP.Overlap, old.ERP.PageSize, old.ERP.TimeZone
	applied.ERP.ExtraFields, applied.ERP.Watch, applied.ERP.WatchDebounce = old.ERP.ExtraFields, old.ERP.Watch, old.ERP.WatchDebounce
	applied.Outbox.Path = old.Outbox.Path
	applied.Log.File, applied.Log.Format = old.Log.File, old.Log.Format
	applied.Metrics = old.Metrics

	if p != nil && len(changed) > 0 {
		if err := p.client.SetConfig(clientConfig(&applied, d.logger)); err != nil {
			d.logger.Error("settings reload failed; the running settings stay in force", "err", err)
			return fmt.Errorf("settings %s: %w", applied.Path, err)
		}
		p.disp.reconfigure(applied.Ingest.Concurrency, applied.Ingest.RetryMaxWait)
		contentChanged := false
		for _, k := range changed {
			switch k {
			case "erp.price_lists", "erp.warehouses", "erp.site_url":
				contentChanged = true
			}
		}
		p.detect.do(func() {
			p.q.batchSize, p.q.maxBodyBytes = applied.Ingest.BatchSize, applied.Ingest.MaxBodyBytes
			p.detect.interval = applied.ERP.PollInterval
			p.detect.reconcileEvery = applied.ERP.ReconcileInterval
			p.detect.det.SetFilters(applied.ERP.PriceLists, applied.ERP.Warehouses, applied.ERP.SiteURL)
		})
		if contentChanged {
			// Items sent before the change carry the old price lists,
			// warehouses or image URLs: send what differs now.
			p.detect.requestReconcile()
		}
	}
	if d.log != nil {
		if err := d.log.SetLevel(applied.Log.Level); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.cfg = &applied
	d.mu.Unlock()
	switch {
	case len(changed) == 0 && len(needRestart) == 0:
		d.logger.Info("settings reloaded: nothing changed", "file", applied.Path)
	case len(changed) > 0:
		d.logger.Info("settings reloaded", "file", applied.Path, "applied", strings.Join(changed, ","))
	}
	if len(needRestart) > 0 {
		d.logger.Warn("settings changed that take effect only after a restart (systemctl restart erpsync); running with the old values meanwhile",
			"file", applied.Path, "keys", strings.Join(needRestart, ","))
	}
	return nil
}

// reconfigure applies reloaded delivery settings and resumes delivery that a
// 401/403 paused or a 410 stopped: the fix may be in the new settings.
func (d *dispatcher) reconfigure(concurrency int, maxWait time.Duration) {
	d.mu.Lock()
	d.concurrency, d.maxWait = concurrency, maxWait
	d.pausedUntil, d.gone = time.Time{}, false
	d.mu.Unlock()
	d.Wake()
}

// watchSettings reloads the settings whenever the file at path is written,
// replaced (editors save by rename) or recreated after removal. It watches the
// directory, not the file, so it survives all three; bursts of events are
// debounced into one reload.
func watchSettings(ctx context.Context, path string, debounce time.Duration, reload func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch settings %s: %w", path, err)
	}
	defer w.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch settings %s: %w", path, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch settings directory %s: %w", filepath.Dir(abs), err)
	}
	last, _ := os.ReadFile(abs) // the settings in force were read from this
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) != abs || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(debounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case <-fire:
			b, err := os.ReadFile(abs)
			if err != nil || bytes.Equal(b, last) {
				continue // removed (wait for its return) or unchanged
			}
			last = b
			reload()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			return fmt.Errorf("watch settings %s: %w", path, err)
		}
	}
}

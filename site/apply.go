package site

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orderweave/erpsync/config"
)

// Apply makes next the site's settings: what can change while running
// applies at once (the tenant secret, ingest URL and delivery limits, poll and
// reconcile intervals, batch size, price lists, warehouses, site URL, outbox
// housekeeping); a change of a restart-only key (config.RestartKeys) is logged
// and keeps its running value. A change of what an item holds (price lists,
// warehouses, site URL) starts a reconciliation sweep, so that items sent
// before it are sent again where they differ now. When the running pipeline
// refuses the new delivery settings, nothing changes and the error says why.
func (p *Pipeline) Apply(next *config.Site) error {
	p.mu.Lock()
	old, r := p.cfg, p.running
	if r == nil {
		// Not running yet (starting, or down): nothing runs with the old
		// settings, so all of the new ones apply, restart-only keys too, at
		// the next try to start, which begins at once.
		p.cfg = next
		p.mu.Unlock()
		changed, needRestart := config.DiffSite(old, next)
		if all := append(changed, needRestart...); len(all) > 0 {
			p.logger.Info("settings reloaded; the site is not running yet, so every key applies when it starts", "file", next.Path, "applied", strings.Join(all, ","))
		} else {
			p.logger.Info("settings reloaded: nothing changed", "file", next.Path)
		}
		select {
		case p.changed <- struct{}{}:
		default:
		}
		return nil
	}
	p.mu.Unlock()
	changed, needRestart := config.DiffSite(old, next)
	applied := config.Running(old, next)
	if r != nil && len(changed) > 0 {
		if slices.Contains(changed, "erp.sync_field") || slices.Contains(changed, "erp.item_groups") {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := r.detect.det.CheckSelection(ctx, applied.ERP.Selection())
			cancel()
			if err != nil {
				p.logger.Error("settings reload failed; the running settings stay in force", "err", err)
				return fmt.Errorf("settings %s: %w", applied.Path, err)
			}
		}
		if err := r.client.SetConfig(p.clientConfig(applied)); err != nil {
			p.logger.Error("settings reload failed; the running settings stay in force", "err", err)
			return fmt.Errorf("settings %s: %w", applied.Path, err)
		}
		r.disp.Reconfigure(applied.Ingest.Concurrency, applied.Ingest.RetryMaxWait)
		r.detect.do(func() {
			r.w.batchSize, r.w.maxBodyBytes = applied.Ingest.BatchSize, applied.Ingest.MaxBodyBytes
			r.detect.interval = applied.ERP.PollInterval
			r.detect.reconcileEvery = applied.ERP.ReconcileInterval
			r.detect.det.SetFilters(applied.ERP.Selection(), applied.ERP.SiteURL)
			r.detect.refs.checkedAt = time.Time{} // check the names the new settings give at the next step
		})
		if slices.ContainsFunc(changed, changesContent) {
			r.detect.requestReconcile()
		}
	}
	p.mu.Lock()
	p.cfg = applied
	p.mu.Unlock()
	switch {
	case len(changed) == 0 && len(needRestart) == 0:
		p.logger.Info("settings reloaded: nothing changed", "file", applied.Path)
	case len(changed) > 0:
		p.logger.Info("settings reloaded", "file", applied.Path, "applied", strings.Join(changed, ","))
	}
	if len(needRestart) > 0 {
		p.logger.Warn("settings changed that take effect only after a restart (systemctl restart erpsync); running with the old values meanwhile",
			"file", applied.Path, "keys", strings.Join(needRestart, ","))
	}
	return nil
}

// changesContent reports whether a change of key changes what items hold.
func changesContent(key string) bool {
	switch key {
	case "erp.price_lists", "erp.customer_prices", "erp.warehouses", "erp.site_url",
		"erp.item_groups", "erp.brands", "erp.sales_items_only", "erp.sync_field":
		return true
	}
	return false
}

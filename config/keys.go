package config

import "reflect"

// Key is one setting a reload compares: its name, whether a change to it
// applies only after a restart, and where its value is in a Site (tenant,
// ingest, erp and outbox keys, and the [ha] keys every site holds a copy of)
// or in a Config (log and metrics keys).
type Key struct {
	Name    string // as in the settings file, such as "ingest.url"
	Restart bool   // a change applies only after a restart

	// site or file returns a pointer to the key's value in s or c; exactly
	// one of them is set. The value is compared and copied, never printed:
	// it may be a secret.
	site func(s *Site) any
	file func(c *Config) any
}

// Keys returns every key of the settings file, in the order of defaults and
// of the annotated settings.toml. tenant.secret compares the decoded key (so
// a secret file rewritten in place is a change, and the same secret written
// another way is not); erp.dsn compares the DSN in force (read from the bench
// when erp.bench_path is set). A new setting is added here, in defaults and
// in settings.toml.
func Keys() []Key {
	site := func(name string, restart bool, field func(s *Site) any) Key {
		return Key{Name: name, Restart: restart, site: field}
	}
	file := func(name string, restart bool, field func(c *Config) any) Key {
		return Key{Name: name, Restart: restart, file: field}
	}
	return []Key{
		site("tenant.id", true, func(s *Site) any { return &s.Tenant.ID }),
		site("tenant.secret", false, func(s *Site) any { return &s.Tenant.key }),
		site("tenant.secret_file", false, func(s *Site) any { return &s.Tenant.SecretFile }),
		site("ingest.url", false, func(s *Site) any { return &s.Ingest.URL }),
		site("ingest.allow_insecure_http", false, func(s *Site) any { return &s.Ingest.AllowInsecureHTTP }),
		site("ingest.timeout", false, func(s *Site) any { return &s.Ingest.Timeout }),
		site("ingest.batch_size", false, func(s *Site) any { return &s.Ingest.BatchSize }),
		site("ingest.max_body_bytes", false, func(s *Site) any { return &s.Ingest.MaxBodyBytes }),
		site("ingest.concurrency", false, func(s *Site) any { return &s.Ingest.Concurrency }),
		site("ingest.retries", false, func(s *Site) any { return &s.Ingest.Retries }),
		site("ingest.retry_max_wait", false, func(s *Site) any { return &s.Ingest.RetryMaxWait }),
		site("erp.dsn", true, func(s *Site) any { return &s.ERP.DSN }),
		site("erp.poll_interval", false, func(s *Site) any { return &s.ERP.PollInterval }),
		site("erp.overlap", true, func(s *Site) any { return &s.ERP.Overlap }),
		site("erp.page_size", true, func(s *Site) any { return &s.ERP.PageSize }),
		site("erp.price_lists", false, func(s *Site) any { return &s.ERP.PriceLists }),
		site("erp.customer_prices", false, func(s *Site) any { return &s.ERP.CustomerPrices }),
		site("erp.warehouses", false, func(s *Site) any { return &s.ERP.Warehouses }),
		site("erp.item_groups", false, func(s *Site) any { return &s.ERP.ItemGroups }),
		site("erp.brands", false, func(s *Site) any { return &s.ERP.Brands }),
		site("erp.sales_items_only", false, func(s *Site) any { return &s.ERP.SalesItemsOnly }),
		site("erp.sync_field", false, func(s *Site) any { return &s.ERP.SyncField }),
		site("erp.site_url", false, func(s *Site) any { return &s.ERP.SiteURL }),
		site("erp.time_zone", true, func(s *Site) any { return &s.ERP.TimeZone }),
		site("erp.extra_fields", true, func(s *Site) any { return &s.ERP.ExtraFields }),
		site("erp.watch", true, func(s *Site) any { return &s.ERP.Watch }),
		site("erp.watch_debounce", true, func(s *Site) any { return &s.ERP.WatchDebounce }),
		site("erp.reconcile_interval", false, func(s *Site) any { return &s.ERP.ReconcileInterval }),
		site("erp.bench_path", true, func(s *Site) any { return &s.ERP.BenchPath }),
		site("erp.site", true, func(s *Site) any { return &s.ERP.Site }),
		site("erp.sites", false, func(s *Site) any { return &s.ERP.Sites }),
		site("outbox.path", true, func(s *Site) any { return &s.Outbox.Path }),
		site("outbox.retention", false, func(s *Site) any { return &s.Outbox.Retention }),
		site("outbox.alarm_pending", false, func(s *Site) any { return &s.Outbox.AlarmPending }),
		site("outbox.alarm_age", false, func(s *Site) any { return &s.Outbox.AlarmAge }),
		file("log.file", true, func(c *Config) any { return &c.Log.File }),
		file("log.level", false, func(c *Config) any { return &c.Log.Level }),
		file("log.format", true, func(c *Config) any { return &c.Log.Format }),
		file("metrics.listen", true, func(c *Config) any { return &c.Metrics.Listen }),
		site("ha.enabled", true, func(s *Site) any { return &s.HA.Enabled }),
	}
}

// RestartKeys returns the names of the keys whose change applies only after
// a restart, in the order of Keys.
func RestartKeys() []string {
	var names []string
	for _, k := range Keys() {
		if k.Restart {
			names = append(names, k.Name)
		}
	}
	return names
}

// DiffSite returns the names of the site keys (tenant, ingest, erp, outbox)
// whose values differ between old and next: applied are those a running
// pipeline takes on at once, restart those that need a restart. The values
// themselves are never part of the result.
func DiffSite(old, next *Site) (applied, restart []string) {
	for _, k := range Keys() {
		if k.site != nil && !same(k.site(old), k.site(next)) {
			applied, restart = sortKey(k, applied, restart)
		}
	}
	return applied, restart
}

// DiffFile does what DiffSite does for the keys all sites share (log and
// metrics).
func DiffFile(old, next *Config) (applied, restart []string) {
	for _, k := range Keys() {
		if k.file != nil && !same(k.file(old), k.file(next)) {
			applied, restart = sortKey(k, applied, restart)
		}
	}
	return applied, restart
}

func sortKey(k Key, applied, restart []string) ([]string, []string) {
	if k.Restart {
		return applied, append(restart, k.Name)
	}
	return append(applied, k.Name), restart
}

// Running returns a copy of next in which every restart-only site key keeps
// its value in old: the settings a running pipeline applies on reload. The
// database stays the one in force: erp.dsn, erp.bench_path and erp.site are
// all kept. The copy shares slices with old and next; settings are not
// changed once read.
func Running(old, next *Site) *Site {
	run := *next
	for _, k := range Keys() {
		if k.Restart && k.site != nil {
			dst, src := reflect.ValueOf(k.site(&run)).Elem(), reflect.ValueOf(k.site(old)).Elem()
			dst.Set(src)
		}
	}
	// erp.dsn is old's: so is whether it was read from the bench.
	run.dsnFromBench = old.dsnFromBench
	return &run
}

// same compares the values that two pointers from a Key point at. Empty and
// nil lists are the same setting.
func same(a, b any) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	if va.Kind() == reflect.Slice && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(va.Interface(), vb.Interface())
}

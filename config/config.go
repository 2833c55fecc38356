// Package config reads the erpsync settings file: one TOML file, overridden
// key by key from ERPSYNC_<SECTION>_<KEY> environment variables, describing
// one or more ERPNext sites (tenant, ingest, erp and outbox settings each)
// and the log, metrics and standby (ha) settings they share.
//
// Read is what a program calls: Parse decodes the file, Validate checks every
// value without reading any other file, and Resolve reads the files the
// settings point at (the tenant secret file, a Frappe bench's site config).
// Keys, DiffSite, DiffFile and Running say what a reload changes and what it
// may apply while running; Watch reloads when the file is saved.
//
// No secret is ever part of an error, and Secret and Tenant keep the tenant
// secret, its decoded key and the database DSN out of fmt, slog and
// encoding/json output.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/spf13/viper"
)

// DefaultPath is where the settings live when neither --config nor
// $ERPSYNC_CONFIG says otherwise.
const DefaultPath = "/etc/erpsync/settings.toml"

// Config is the whole settings file. Read returns it parsed, validated and
// resolved; it is handed down as typed values, and no other package reads the
// file or the environment by itself.
type Config struct {
	// Path is the settings file read.
	Path    string
	Log     Log
	Metrics Metrics
	// Sites are the ERPNext sites to sync: one per [[sites]] table, or, for
	// a file without [[sites]], exactly one, named "", made of the file's
	// tenant, ingest, erp and outbox sections; or, with erp.sites, one per
	// site of the bench that takes part (set by Resolve, named as the site).
	Sites []*Site
	// Excluded are the sites that erp.sites names but that cannot take
	// part, each with why (a bad erpsync_secret, say): the other sites run.
	// Set by Resolve; never holds a secret.
	Excluded []error

	// bench is the file's own site when erp.sites is set: the settings every
	// site of the bench shares, which Resolve turns into Sites.
	bench *Site
}

// Site is one ERPNext site's settings: what to read, where to deliver it and
// where to keep the outbox in between.
type Site struct {
	// Name labels the site: "" for a file without [[sites]]; the table's
	// name, else "siteN" for the Nth [[sites]] table.
	Name string `mapstructure:"-"`
	// Path is the settings file the site was read from, for messages such as
	// "(outbox.path in PATH)".
	Path   string `mapstructure:"-"`
	Tenant Tenant `mapstructure:"tenant"`
	Ingest Ingest `mapstructure:"ingest"`
	ERP    ERP    `mapstructure:"erp"`
	Outbox Outbox `mapstructure:"outbox"`
	// HA is the file's [ha] section, which every site shares (set by
	// Parse; a [[sites]] table cannot hold it).
	HA HA `mapstructure:"-"`

	// dsnFromBench says that Resolve set ERP.DSN from the bench, so that
	// Validate and Resolve can be run again on a resolved Config.
	dsnFromBench bool
	// siteConfig is the site_config.json of a site of erp.sites, which holds
	// its tenant (erpsync_tenant_id, erpsync_secret, erpsync_ingest_url).
	siteConfig string
}

// Format prints the site's settings, the secrets redacted, under every verb.
// Without it, a verb that does not suit a pointer (%s, %q, %t) makes fmt print
// a *Site inside a Config or slice raw, with no method called: the tenant
// secret, its decoded key and the DSN included.
func (s Site) Format(f fmt.State, verb rune) {
	type Site struct { // the same name and fields, for %#v
		Name   string
		Path   string
		Tenant Tenant
		Ingest Ingest
		ERP    ERP
		Outbox Outbox
		HA     HA
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), Site{Name: s.Name, Path: s.Path, Tenant: s.Tenant, Ingest: s.Ingest, ERP: s.ERP, Outbox: s.Outbox, HA: s.HA})
}

// Key is the site's decoded tenant secret (set by Resolve).
func (s *Site) Key() []byte { return s.Tenant.Key() }

// Label is the name the site goes by in logs and metrics: its Name, or
// "default" for the one site of a file without [[sites]].
func (s *Site) Label() string {
	if s.Name == "" {
		return "default"
	}
	return s.Name
}

// Site returns the site named name ("" for a file without [[sites]]), nil
// when there is none.
func (c *Config) Site(name string) *Site {
	for _, s := range c.Sites {
		if s != nil && s.Name == name {
			return s
		}
	}
	return nil
}

// Tenant identifies the tenant and holds its signing secret.
type Tenant struct {
	ID         string `mapstructure:"id"`
	Secret     Secret `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`

	key []byte // the decoded secret, set by Resolve
}

// Key is the decoded tenant secret (set by Resolve).
func (t Tenant) Key() []byte { return t.key }

// Format prints the tenant settings without the decoded key, under every
// verb: fmt would print the unexported key bytes of a Tenant (or of a Site
// holding one) as they are, even where Secret redacts the base64 text.
func (t Tenant) Format(f fmt.State, verb rune) {
	type Tenant struct { // the same name, for %#v
		ID         string
		Secret     Secret
		SecretFile string
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), Tenant{ID: t.ID, Secret: t.Secret, SecretFile: t.SecretFile})
}

// Ingest says where and how to deliver.
type Ingest struct {
	URL               string        `mapstructure:"url"`
	AllowInsecureHTTP bool          `mapstructure:"allow_insecure_http"`
	Timeout           time.Duration `mapstructure:"timeout"`
	BatchSize         int           `mapstructure:"batch_size"`
	MaxBodyBytes      int           `mapstructure:"max_body_bytes"`
	Concurrency       int           `mapstructure:"concurrency"`
	Retries           int           `mapstructure:"retries"`
	RetryMaxWait      time.Duration `mapstructure:"retry_max_wait"`
}

// ERP says which ERPNext database to read and what to send of it.
type ERP struct {
	// DSN is the database to read: erp.dsn, or, after Resolve, the DSN read
	// from the bench that BenchPath and Site name.
	DSN          Secret        `mapstructure:"dsn"`
	PollInterval time.Duration `mapstructure:"poll_interval"`
	Overlap      time.Duration `mapstructure:"overlap"`
	PageSize     int           `mapstructure:"page_size"`
	PriceLists   []string      `mapstructure:"price_lists"`
	// CustomerPrices also sends customer-specific Item Price rows.
	CustomerPrices bool     `mapstructure:"customer_prices"`
	Warehouses     []string `mapstructure:"warehouses"`
	// ItemGroups, Brands, SalesItemsOnly and SyncField choose which items
	// sync; empty selects every item.
	ItemGroups     []string `mapstructure:"item_groups"`
	Brands         []string `mapstructure:"brands"`
	SalesItemsOnly bool     `mapstructure:"sales_items_only"`
	SyncField      string   `mapstructure:"sync_field"`
	SiteURL        string   `mapstructure:"site_url"`
	TimeZone       string   `mapstructure:"time_zone"`
	ExtraFields    []string `mapstructure:"extra_fields"`
	// Watch is a directory of the database's binary log; a write there wakes
	// the detector at once. Empty: poll only.
	Watch             string        `mapstructure:"watch"`
	WatchDebounce     time.Duration `mapstructure:"watch_debounce"`
	ReconcileInterval time.Duration `mapstructure:"reconcile_interval"`
	// BenchPath and Site read the DSN from a Frappe bench instead of DSN.
	BenchPath string `mapstructure:"bench_path"`
	Site      string `mapstructure:"site"`
	// Sites names the sites of the bench at BenchPath to sync, by name or
	// glob ("*": every site); each site whose site_config.json has
	// erpsync_tenant_id takes part, read with DSN's server-wide user.
	Sites []string `mapstructure:"sites"`
}

// Selection is what the detector selects under these settings.
func (e ERP) Selection() detector.Selection {
	return detector.Selection{
		PriceLists: e.PriceLists, CustomerPrices: e.CustomerPrices, Warehouses: e.Warehouses,
		ItemGroups: e.ItemGroups, Brands: e.Brands, SalesItemsOnly: e.SalesItemsOnly, SyncField: e.SyncField,
	}
}

// Outbox says where the durable outbox lives.
type Outbox struct {
	Path         string        `mapstructure:"path"`
	Retention    time.Duration `mapstructure:"retention"`
	AlarmPending int           `mapstructure:"alarm_pending"`
	AlarmAge     time.Duration `mapstructure:"alarm_age"`
}

// HA says whether erpsync runs with standbys: with Enabled, each site runs
// only in the process that holds its MariaDB named lock, and erpsync on
// other hosts stands by to take over.
type HA struct {
	Enabled bool `mapstructure:"enabled"`
}

// Log says where the sync log goes.
type Log struct {
	File   string `mapstructure:"file"`
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Metrics says where to serve Prometheus metrics.
type Metrics struct {
	Listen string `mapstructure:"listen"`
}

// Secret is a string that never prints: fmt, %v, %#v, slog (text and JSON)
// and encoding/json all show "[redacted]". Use Reveal where the value is
// really needed.
type Secret string

// String redacts the secret.
func (s Secret) String() string { return redacted(s) }

// GoString redacts the secret under %#v.
func (s Secret) GoString() string { return redacted(s) }

// Format redacts under every verb. Without it, a verb that does not suit a
// string (%d) makes fmt print the raw value, bypassing String.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), redacted(s))
}

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted(s)) }

// MarshalText keeps the secret out of encoding/json (and so out of
// slog.JSONHandler, which marshals structs such as Tenant).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted(s)), nil }

// Reveal returns the secret text.
func (s Secret) Reveal() string { return string(s) }

func redacted(s Secret) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// defaults holds every key the settings file may contain, with its default.
// Keys not listed here are unknown and stop start-up. Keys (keys.go) lists
// the same keys, in the same order, for reloads.
func defaults() map[string]any {
	return map[string]any{
		"tenant.id":                  "",
		"tenant.secret":              "",
		"tenant.secret_file":         "",
		"ingest.url":                 "",
		"ingest.allow_insecure_http": false,
		"ingest.timeout":             "10s",
		"ingest.batch_size":          1,
		"ingest.max_body_bytes":      1 << 20,
		"ingest.concurrency":         4,
		"ingest.retries":             2,
		"ingest.retry_max_wait":      "10m",
		"erp.dsn":                    "",
		"erp.poll_interval":          "1s",
		"erp.overlap":                "5m",
		"erp.page_size":              500,
		"erp.price_lists":            []string{},
		"erp.warehouses":             []string{},
		"erp.customer_prices":        false,
		"erp.item_groups":            []string{},
		"erp.brands":                 []string{},
		"erp.sales_items_only":       false,
		"erp.sync_field":             "",
		"erp.site_url":               "",
		"erp.time_zone":              "",
		"erp.extra_fields":           []string{},
		"erp.watch":                  "",
		"erp.watch_debounce":         "5ms",
		"erp.reconcile_interval":     "6h",
		"erp.bench_path":             "",
		"erp.site":                   "",
		"erp.sites":                  []string{},
		"outbox.path":                "/var/lib/erpsync/outbox.db",
		"outbox.retention":           "168h",
		"outbox.alarm_pending":       10000,
		"outbox.alarm_age":           "1h",
		"log.file":                   "/var/log/erpsync/sync.log",
		"log.level":                  "info",
		"log.format":                 "text",
		"metrics.listen":             "",
		"ha.enabled":                 false,
	}
}

// Path picks the settings file: the flag, else $ERPSYNC_CONFIG, else
// DefaultPath.
func Path(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("ERPSYNC_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}

// Read loads the settings file at path: Parse, then Validate and Resolve.
// Every error names the file, the key and how to fix it, one problem a line,
// and never contains a secret. A file that fails Validate also reports what
// Resolve finds (a missing secret file, a bench without the site), so one
// run shows everything to fix.
func Read(path string) (*Config, error) {
	c, err := Parse(path)
	if err != nil {
		return nil, err
	}
	invalid := flatten(c.Validate())
	seen := make(map[string]bool, len(invalid))
	for _, e := range invalid {
		seen[e.Error()] = true
	}
	errs := invalid
	for _, e := range flatten(c.Resolve()) {
		// Resolve refuses what it cannot resolve with Validate's words (no
		// secret, erp.dsn and erp.bench_path both set): say it once.
		if !seen[e.Error()] {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("settings %s: %w", path, errors.Join(errs...))
	}
	return c, nil
}

// Parse reads the settings file at path: its TOML, the defaults,
// ERPSYNC_<SECTION>_<KEY> environment overrides, and [[sites]] tables, for
// which the top-level tenant, ingest, erp and outbox sections are defaults.
// It refuses unknown keys and values of the wrong type, but checks no value
// (see Validate) and reads no other file (see Resolve).
func Parse(path string) (*Config, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("settings file %s not found: create it from the annotated settings.toml in the erpsync sources (`make install` puts one in /etc/erpsync), or pass --config FILE", path)
		}
		return nil, fmt.Errorf("settings file %s: %w", path, err)
	}
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("toml")
	defs := defaults()
	for k, val := range defs {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("ERPSYNC")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("settings %s: %s", path, tomlError(err))
	}
	rawSites, err := siteTables(v.Get("sites"))
	if err != nil {
		return nil, fmt.Errorf("settings %s: %w", path, err)
	}
	if err := checkKeys(v.AllKeys(), defs, func(k string) bool { return k == "sites" }); err != nil {
		return nil, fmt.Errorf("settings %s: %w", path, err)
	}
	var file struct {
		Site    `mapstructure:",squash"`
		Log     Log              `mapstructure:"log"`
		Metrics Metrics          `mapstructure:"metrics"`
		HA      HA               `mapstructure:"ha"`
		Sites   []map[string]any `mapstructure:"sites"`
	}
	if err := v.UnmarshalExact(&file); err != nil {
		return nil, fmt.Errorf("settings %s: %s", path, cleanDecodeError(err))
	}
	c := &Config{Path: path, Log: file.Log, Metrics: file.Metrics}
	if len(file.Site.ERP.Sites) > 0 {
		if len(rawSites) > 0 {
			return nil, fmt.Errorf("settings %s: erp.sites and [[sites]] tables are both set: name the sites of a bench with erp.sites, or write one [[sites]] table per site, not both", path)
		}
		s := file.Site
		s.Name, s.Path, s.HA = "", path, file.HA
		c.bench = &s
		return c, nil
	}
	if len(rawSites) == 0 {
		s := file.Site
		s.Name, s.Path, s.HA = "", path, file.HA
		c.Sites = []*Site{&s}
		return c, nil
	}
	for i, m := range rawSites {
		s, err := parseSite(v, m)
		if err != nil {
			return nil, fmt.Errorf("settings %s: [[sites]] #%d: %w", path, i+1, err)
		}
		if s.Name == "" {
			s.Name = fmt.Sprintf("site%d", i+1)
		}
		s.Path, s.HA = path, file.HA
		c.Sites = append(c.Sites, s)
	}
	return c, nil
}

// siteSection reports whether key belongs in a [[sites]] table: tenant,
// ingest, erp and outbox keys do; log and metrics are shared by all sites.
func siteSection(key string) bool {
	for _, p := range []string{"tenant.", "ingest.", "erp.", "outbox."} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// parseSite decodes one [[sites]] table. The top-level tenant, ingest, erp
// and outbox keys are its defaults, so settings all sites share (say
// erp.poll_interval) are written once.
func parseSite(top *viper.Viper, m map[string]any) (*Site, error) {
	sv := viper.New()
	defs := defaults()
	for k := range defs {
		if siteSection(k) {
			sv.SetDefault(k, top.Get(k))
		}
	}
	name, _ := m["name"].(string)
	site := make(map[string]any, len(m))
	for k, val := range m {
		if k != "name" {
			site[k] = val
		}
	}
	if err := sv.MergeConfigMap(site); err != nil {
		return nil, err
	}
	allowed := map[string]any{}
	for k, val := range defs {
		if siteSection(k) {
			allowed[k] = val
		}
	}
	if err := checkKeys(sv.AllKeys(), allowed, nil); err != nil {
		return nil, fmt.Errorf("%w (a site holds only name and tenant, ingest, erp and outbox keys)", err)
	}
	s := &Site{}
	if err := sv.UnmarshalExact(s); err != nil {
		return nil, fmt.Errorf("%s", cleanDecodeError(err))
	}
	if len(s.ERP.Sites) > 0 {
		return nil, errors.New("erp.sites cannot be set in a [[sites]] table: set it in the top-level [erp] section, without [[sites]] tables")
	}
	s.Name = name
	return s, nil
}

// siteTables reads the [[sites]] array of tables.
func siteTables(raw any) ([]map[string]any, error) {
	switch list := raw.(type) {
	case nil:
		return nil, nil
	case []map[string]any:
		return list, nil
	case []any:
		out := make([]map[string]any, 0, len(list))
		for _, x := range list {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, errors.New("sites must be written as [[sites]] tables")
			}
			out = append(out, m)
		}
		return out, nil
	default:
		return nil, errors.New("sites must be written as [[sites]] tables")
	}
}

// checkKeys reports keys that are not settings.
func checkKeys(keys []string, known map[string]any, skip func(string) bool) error {
	var unknown []string
	for _, k := range keys {
		if _, ok := known[k]; !ok && (skip == nil || !skip(k)) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("unknown key %s: remove it or fix its spelling (every key is listed in the annotated settings.toml)", strings.Join(unknown, ", "))
}

// cleanDecodeError turns mapstructure's multi-line error into one line.
func cleanDecodeError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	msg = strings.Join(strings.Fields(msg), " ")
	return msg + " (durations are written with a unit, like \"10s\" or \"5m\"; numbers and true/false without quotes; lists as [\"a\", \"b\"])"
}

// tomlError describes a TOML syntax error with its line and column. Only the
// parser's message is kept, never the offending text, which may be a secret.
func tomlError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "While parsing config: ")
	var pos interface{ Position() (row, column int) }
	if errors.As(err, &pos) {
		row, col := pos.Position()
		return fmt.Sprintf("not valid TOML at line %d, column %d: %s: fix the syntax (strings in double quotes, one key = value per line)", row, col, msg)
	}
	return fmt.Sprintf("not valid TOML: %s: fix the syntax (strings in double quotes, one key = value per line)", msg)
}

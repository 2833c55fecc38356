package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/signer"
)

// DefaultConfigPath is where the settings live when neither --config nor
// $ERPSYNC_CONFIG says otherwise.
const DefaultConfigPath = "/etc/erpsync/settings.toml"

// Config is the parsed, validated settings file. It is read once by
// ReadConfig and handed down as typed values; no package reads the file or the
// environment by itself.
type Config struct {
	Path string `mapstructure:"-"`
	// Name labels a site in logs ("" for a single-site file).
	Name string `mapstructure:"-"`
	// Sites are the ERPNext sites to sync, each a whole Config of its own
	// (tenant, ingest, erp, outbox) sharing log and metrics. A file without
	// [[sites]] has one: the file itself.
	Sites   SiteList      `mapstructure:"-"`
	Tenant  TenantConfig  `mapstructure:"tenant"`
	Ingest  IngestConfig  `mapstructure:"ingest"`
	ERP     ERPConfig     `mapstructure:"erp"`
	Outbox  OutboxConfig  `mapstructure:"outbox"`
	Log     LogConfig     `mapstructure:"log"`
	Metrics MetricsConfig `mapstructure:"metrics"`
}

// SiteList is Config.Sites. It prints (fmt, encoding/json, slog) as the site
// names only: a single-site Config lists itself, a cycle for encoding/json,
// and fmt prints the target of a pointer it cannot format with the verb
// given (%s, %q, %x, …) raw, secrets and key bytes included.
type SiteList []*Config

func (l SiteList) names() []string {
	names := make([]string, len(l))
	for i, c := range l {
		names[i] = c.Name
		if c.Name == "" {
			names[i] = "(single site)"
		}
	}
	return names
}

// Format prints the site names.
func (l SiteList) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), l.names())
}

// MarshalJSON writes the site names.
func (l SiteList) MarshalJSON() ([]byte, error) { return json.Marshal(l.names()) }

// TenantConfig identifies the tenant and holds its signing secret.
type TenantConfig struct {
	ID         string `mapstructure:"id"`
	Secret     Secret `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`

	key []byte // the decoded secret, set by validate
}

// Key is the decoded tenant secret.
func (t TenantConfig) Key() []byte { return t.key }

// Format prints the tenant settings without the decoded key, under every
// verb: fmt would print the unexported key bytes of a TenantConfig (or of a
// Config holding one) as they are, even where Secret redacts the base64 text.
func (t TenantConfig) Format(f fmt.State, verb rune) {
	type TenantConfig struct { // the same name, for %#v
		ID         string
		Secret     Secret
		SecretFile string
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), TenantConfig{ID: t.ID, Secret: t.Secret, SecretFile: t.SecretFile})
}

// IngestConfig says where and how to deliver.
type IngestConfig struct {
	URL               string        `mapstructure:"url"`
	AllowInsecureHTTP bool          `mapstructure:"allow_insecure_http"`
	Timeout           time.Duration `mapstructure:"timeout"`
	BatchSize         int           `mapstructure:"batch_size"`
	MaxBodyBytes      int           `mapstructure:"max_body_bytes"`
	Concurrency       int           `mapstructure:"concurrency"`
	Retries           int           `mapstructure:"retries"`
	RetryMaxWait      time.Duration `mapstructure:"retry_max_wait"`
}

// ERPConfig says which ERPNext database to read and what to send of it.
type ERPConfig struct {
	DSN          Secret        `mapstructure:"dsn"`
	PollInterval time.Duration `mapstructure:"poll_interval"`
	Overlap      time.Duration `mapstructure:"overlap"`
	PageSize     int           `mapstructure:"page_size"`
	PriceLists   []string      `mapstructure:"price_lists"`
	Warehouses   []string      `mapstructure:"warehouses"`
	SiteURL      string        `mapstructure:"site_url"`
	TimeZone     string        `mapstructure:"time_zone"`
	ExtraFields  []string      `mapstructure:"extra_fields"`
	// Watch is a directory of the database's binary log; a write there wakes
	// the detector at once. Empty: poll only.
	Watch             string        `mapstructure:"watch"`
	WatchDebounce     time.Duration `mapstructure:"watch_debounce"`
	ReconcileInterval time.Duration `mapstructure:"reconcile_interval"`
	// BenchPath and Site read the DSN from a Frappe bench instead of DSN.
	BenchPath string `mapstructure:"bench_path"`
	Site      string `mapstructure:"site"`
}

// OutboxConfig says where the durable outbox lives.
type OutboxConfig struct {
	Path         string        `mapstructure:"path"`
	Retention    time.Duration `mapstructure:"retention"`
	AlarmPending int           `mapstructure:"alarm_pending"`
	AlarmAge     time.Duration `mapstructure:"alarm_age"`
}

// LogConfig says where the sync log goes.
type LogConfig struct {
	File   string `mapstructure:"file"`
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// MetricsConfig says where to serve Prometheus metrics.
type MetricsConfig struct {
	Listen string `mapstructure:"listen"`
}

// Secret is a string that never prints: fmt, %v, %#v, slog (text and JSON)
// and encoding/json all show "[redacted]". Use Reveal where the value is
// really needed.
type Secret string

func (s Secret) String() string   { return redacted(s) }
func (s Secret) GoString() string { return redacted(s) }

// Format redacts under every verb. Without it, a verb that does not suit a
// string (%d) makes fmt print the raw value, bypassing String.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), redacted(s))
}

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted(s)) }

// MarshalText keeps the secret out of encoding/json (and so out of
// slog.JSONHandler, which marshals structs such as TenantConfig).
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
// Keys not listed here are unknown and stop start-up.
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
		"erp.site_url":               "",
		"erp.time_zone":              "",
		"erp.extra_fields":           []string{},
		"erp.watch":                  "",
		"erp.watch_debounce":         "5ms",
		"erp.reconcile_interval":     "6h",
		"erp.bench_path":             "",
		"erp.site":                   "",
		"outbox.path":                "/var/lib/erpsync/outbox.db",
		"outbox.retention":           "168h",
		"outbox.alarm_pending":       10000,
		"outbox.alarm_age":           "1h",
		"log.file":                   "/var/log/erpsync/sync.log",
		"log.level":                  "info",
		"log.format":                 "text",
		"metrics.listen":             "",
	}
}

// ConfigPath picks the settings file: the flag, else $ERPSYNC_CONFIG, else
// DefaultConfigPath.
func ConfigPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("ERPSYNC_CONFIG"); p != "" {
		return p
	}
	return DefaultConfigPath
}

// ReadConfig loads the settings file at path, applies ERPSYNC_<SECTION>_<KEY>
// environment overrides and defaults, and validates the result. Every error
// names the file, the key and how to fix it, and never contains a secret.
func ReadConfig(path string) (*Config, error) {
	c, err := parseConfig(path)
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("settings %s: %w", path, err)
	}
	return c, nil
}

func parseConfig(path string) (*Config, error) {
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
		Config `mapstructure:",squash"`
		Sites  []map[string]any `mapstructure:"sites"`
	}
	if err := v.UnmarshalExact(&file); err != nil {
		return nil, fmt.Errorf("settings %s: %s", path, cleanDecodeError(err))
	}
	c := &file.Config
	c.Path = path
	for i, m := range rawSites {
		sc, err := parseSite(v, m)
		if err != nil {
			return nil, fmt.Errorf("settings %s: [[sites]] #%d: %w", path, i+1, err)
		}
		if sc.Name == "" {
			sc.Name = fmt.Sprintf("site%d", i+1)
		}
		sc.Path, sc.Log, sc.Metrics = path, c.Log, c.Metrics
		c.Sites = append(c.Sites, sc)
	}
	return c, nil
}

// siteSections are the sections a [[sites]] table may hold; log and metrics
// are shared by all sites.
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
func parseSite(top *viper.Viper, m map[string]any) (*Config, error) {
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
	sc := &Config{Name: name}
	if err := sv.UnmarshalExact(sc); err != nil {
		return nil, fmt.Errorf("%s", cleanDecodeError(err))
	}
	sc.Name = name
	return sc, nil
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

var slugPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// userInfoPattern matches a URL authority with a user part ("//user:pw@host").
var userInfoPattern = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#]*@`)

func (c *Config) validate() error {
	errs := []error{c.validateGlobal()}
	if len(c.Sites) == 0 {
		errs = append(errs, c.validateSite())
		c.Sites = []*Config{c}
		return errors.Join(errs...)
	}
	outboxes := map[string]string{}
	for i, sc := range c.Sites {
		label := fmt.Sprintf("[[sites]] #%d (%s)", i+1, sc.Name)
		if err := sc.validateSite(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("%s: %w", label, e))
			}
		}
		if prev, ok := outboxes[sc.Outbox.Path]; ok && sc.Outbox.Path != "" {
			errs = append(errs, fmt.Errorf("%s: outbox.path %q is also used by site %s: give every site its own outbox", label, sc.Outbox.Path, prev))
		}
		outboxes[sc.Outbox.Path] = sc.Name
	}
	return errors.Join(errs...)
}

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// validateGlobal checks what all sites share: log and metrics.
func (c *Config) validateGlobal() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format = %q is not a format: use \"text\" or \"json\"", c.Log.Format)
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			add("metrics.listen = %q is not host:port: use an address such as \"127.0.0.1:9464\", or \"\" to turn metrics off", c.Metrics.Listen)
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level = %q is not a level: use \"debug\", \"info\", \"warn\" or \"error\"", c.Log.Level)
	}
	return errors.Join(errs...)
}

// validateSite checks one site's tenant, ingest, erp and outbox settings and
// loads its secret.
func (c *Config) validateSite() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case c.Tenant.ID == "":
		add("tenant.id is required: set it to your tenant slug, such as \"lighting_co_ke\"")
	case !slugPattern.MatchString(c.Tenant.ID):
		add("tenant.id = %q is not a slug: use letters, digits, '_', '-' and '.' only", c.Tenant.ID)
	}
	if err := c.Tenant.loadKey(); err != nil {
		errs = append(errs, err)
	}

	if err := validateIngestURL(c.Ingest.URL, c.Ingest.AllowInsecureHTTP); err != nil {
		errs = append(errs, err)
	}
	minDuration(&errs, "ingest.timeout", c.Ingest.Timeout, 100*time.Millisecond)
	minDuration(&errs, "ingest.retry_max_wait", c.Ingest.RetryMaxWait, time.Second)
	intRange(&errs, "ingest.batch_size", c.Ingest.BatchSize, 1, 1000)
	intRange(&errs, "ingest.max_body_bytes", c.Ingest.MaxBodyBytes, 4096, 256<<20)
	intRange(&errs, "ingest.concurrency", c.Ingest.Concurrency, 1, 64)
	intRange(&errs, "ingest.retries", c.Ingest.Retries, 0, 10)

	if c.ERP.BenchPath != "" || c.ERP.Site != "" {
		switch {
		case c.ERP.DSN != "":
			add("erp.dsn and erp.bench_path/erp.site are both set: keep one way of naming the database")
		case c.ERP.BenchPath == "" || c.ERP.Site == "":
			add("erp.bench_path and erp.site go together: set both (the bench directory and the site name), or use erp.dsn")
		default:
			dsn, err := benchSiteDSN(c.ERP.BenchPath, c.ERP.Site)
			if err != nil {
				errs = append(errs, err)
			} else {
				c.ERP.DSN = Secret(dsn)
			}
		}
	} else if c.ERP.DSN == "" {
		add("erp.dsn is required: set the ERPNext database DSN, as in \"erpsync:PASSWORD@tcp(127.0.0.1:3306)/_1bd3e0294da19198\" (a read-only user is enough)")
	}
	if c.ERP.DSN != "" {
		if _, err := detector.PrepareDSN(c.ERP.DSN.Reveal()); err != nil {
			errs = append(errs, err)
		}
	}
	minDuration(&errs, "erp.poll_interval", c.ERP.PollInterval, 10*time.Millisecond)
	if c.ERP.Overlap < 0 || c.ERP.Overlap > 24*time.Hour {
		add("erp.overlap = %s is out of range: use a duration from \"0s\" to \"24h\" (default \"5m\")", c.ERP.Overlap)
	}
	intRange(&errs, "erp.page_size", c.ERP.PageSize, 1, 5000)
	if c.ERP.SiteURL != "" {
		u, err := url.Parse(c.ERP.SiteURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("erp.site_url = %q is not an absolute http(s) URL: set it to the site's public address, such as \"https://erp.example.com\"", c.ERP.SiteURL)
		}
	}
	if c.ERP.TimeZone != "" {
		if _, err := time.LoadLocation(c.ERP.TimeZone); err != nil {
			add("erp.time_zone = %q is not an IANA time zone: use a name such as \"Africa/Nairobi\", or leave it empty to read System Settings", c.ERP.TimeZone)
		}
	}
	if c.ERP.WatchDebounce < 0 || c.ERP.WatchDebounce > time.Second {
		add("erp.watch_debounce = %s is out of range: use a duration from \"0s\" to \"1s\" (default \"5ms\")", c.ERP.WatchDebounce)
	}
	if c.ERP.ReconcileInterval != 0 {
		minDuration(&errs, "erp.reconcile_interval", c.ERP.ReconcileInterval, time.Minute)
	}
	if c.Outbox.Retention != 0 {
		minDuration(&errs, "outbox.retention", c.Outbox.Retention, time.Minute)
	}
	intRange(&errs, "outbox.alarm_pending", c.Outbox.AlarmPending, 0, 1<<30)
	if c.Outbox.Path == "" {
		add("outbox.path is required: set it to a file in a writable directory, such as \"/var/lib/erpsync/outbox.db\"")
	}
	return errors.Join(errs...)
}

func minDuration(errs *[]error, key string, d, least time.Duration) {
	if d < least {
		*errs = append(*errs, fmt.Errorf("%s = %s is too short: write a duration with a unit, at least %s (for example \"10s\")", key, d, least))
	}
}

func intRange(errs *[]error, key string, v, lo, hi int) {
	if v < lo || v > hi {
		*errs = append(*errs, fmt.Errorf("%s = %d is out of range: use a whole number from %d to %d", key, v, lo, hi))
	}
}

// loadKey decodes the secret from exactly one of secret and secret_file.
func (t *TenantConfig) loadKey() error {
	switch {
	case t.Secret != "" && t.SecretFile != "":
		return errors.New("tenant.secret and tenant.secret_file are both set: keep exactly one")
	case t.Secret == "" && t.SecretFile == "":
		return errors.New("tenant.secret or tenant.secret_file is required: generate a secret with `erpsync keygen` and put it in one of them")
	case t.SecretFile != "":
		b, err := os.ReadFile(t.SecretFile)
		if err != nil {
			if looksLikeSecret(t.SecretFile) {
				// The secret itself was put where its path belongs: do not
				// echo it (nor the *PathError, which holds it).
				return errors.New("tenant.secret_file cannot be read and looks like a secret rather than a path: put the secret in a file and set tenant.secret_file to that file's path, or set tenant.secret instead")
			}
			return fmt.Errorf("tenant.secret_file = %q: %w: check the path and that the erpsync user can read it", t.SecretFile, err)
		}
		key, err := signer.DecodeSecret(string(b))
		if err != nil {
			return fmt.Errorf("tenant.secret_file = %q: %w", t.SecretFile, err)
		}
		t.key = key
	default:
		key, err := signer.DecodeSecret(t.Secret.Reveal())
		if err != nil {
			return fmt.Errorf("tenant.secret: %w", err)
		}
		t.key = key
	}
	return nil
}

// looksLikeSecret reports whether s, given as a path, is more likely a
// tenant secret: base64 of at least 32 bytes that is padded (as keygen and
// `openssl rand -base64 32` print it) or has no '/' (paths nearly always do).
func looksLikeSecret(s string) bool {
	s = strings.TrimSpace(s)
	if _, err := signer.DecodeSecret(s); err != nil {
		return false
	}
	return strings.HasSuffix(s, "=") || !strings.Contains(s, "/")
}

func validateIngestURL(raw string, allowHTTP bool) error {
	if raw == "" {
		return errors.New("ingest.url is required: set it to the ingestion endpoint, such as \"https://ingest.example.com/erpnext/items\"")
	}
	// Look for user:password@ before parsing: an error about a URL that
	// does not parse must not echo a password in it.
	if userInfoPattern.MatchString(raw) {
		return errors.New("ingest.url must not carry a user or password: remove the user:password@ part, requests are authenticated by the HMAC signature")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("ingest.url = %q is not an absolute URL: write it as \"https://host/path\"", raw)
	}
	if u.User != nil {
		return errors.New("ingest.url must not carry a user or password: remove the user:password@ part, requests are authenticated by the HMAC signature")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !isLoopback(u.Hostname()) {
			return fmt.Errorf("ingest.url = %q uses plain http to a non-loopback host: use https, or set ingest.allow_insecure_http = true if the network path is trusted", raw)
		}
	default:
		return fmt.Errorf("ingest.url = %q: scheme must be https (or http to loopback)", raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

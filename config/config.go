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


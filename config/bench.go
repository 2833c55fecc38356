package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/detector"
)

// benchSiteDSN builds the database DSN of a Frappe site from its bench:
// sites/<site>/site_config.json gives db_name, db_password and optionally
// db_user, db_host and db_port; sites/common_site_config.json gives the
// bench-wide db_host and db_port. The site's own keys win. Frappe connects as
// the user named like the database unless db_user says otherwise.
func benchSiteDSN(benchPath, site string) (string, error) {
	sites := filepath.Join(benchPath, "sites")
	siteFile := filepath.Join(sites, site, "site_config.json")
	var siteCfg, common map[string]any
	if err := readJSONFile(siteFile, &siteCfg); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("erp.site = %q: %s not found: check erp.bench_path (the bench directory, e.g. /home/frappe/frappe-bench) and the site name (a directory under sites/)", site, siteFile)
		}
		return "", fmt.Errorf("erp.site = %q: %w", site, err)
	}
	commonFile := filepath.Join(sites, "common_site_config.json")
	if err := readJSONFile(commonFile, &common); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("erp.bench_path = %q: %w", benchPath, err)
	}
	get := func(key string) string {
		for _, m := range []map[string]any{siteCfg, common} {
			switch v := m[key].(type) {
			case string:
				if v != "" {
					return v
				}
			case float64:
				return strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		return ""
	}
	name, password := get("db_name"), get("db_password")
	if name == "" {
		return "", fmt.Errorf("erp.site = %q: %s has no db_name: is it a Frappe site?", site, siteFile)
	}
	user := get("db_user")
	if user == "" {
		user = name
	}
	host := get("db_host")
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	port := get("db_port")
	if port == "" {
		port = "3306"
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, name
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	return cfg.FormatDSN(), nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is not valid JSON: %w", path, err)
	}
	return nil
}

// The keys of a site's site_config.json that make it take part in erp.sites,
// set with `bench --site SITE set-config KEY VALUE`.
const (
	keyTenantID  = "erpsync_tenant_id"
	keySecret    = "erpsync_secret"
	keyIngestURL = "erpsync_ingest_url"
)

// BenchSites reports whether the sites come from erp.sites: the bench's sites
// that take part, listed again on every Resolve (and so on every reload).
func (c *Config) BenchSites() bool { return c.bench != nil }

// FromBench reports whether the site is one of erp.sites: its outbox
// directory (under the directory of outbox.path) is created when it starts.
func (s *Site) FromBench() bool { return s.siteConfig != "" }

// validateBench checks the settings that every site of erp.sites shares: the
// bench, the patterns, the server-wide erp.dsn, and every other key as a
// site would have it. The tenant keys come from each site's site_config.json.
func (c *Config) validateBench() []error {
	t := c.bench
	if t == nil {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	e := t.ERP
	if e.BenchPath == "" {
		add("erp.sites needs erp.bench_path: set it to the bench directory, such as \"/home/frappe/frappe-bench\"")
	}
	if e.Site != "" {
		add("erp.site and erp.sites are both set: erp.site names one site of the bench, erp.sites several (names or globs); keep one")
	}
	for _, p := range e.Sites {
		if _, err := path.Match(p, ""); err != nil || p == "" || strings.Contains(p, "/") {
			add("erp.sites: %q is not a site name or glob: use names such as \"shop.example.com\", or globs such as \"*.example.com\" or \"*\"", p)
		}
	}
	if t.Tenant.ID != "" || t.Tenant.Secret != "" || t.Tenant.SecretFile != "" {
		add("tenant.id, tenant.secret and tenant.secret_file are read from each site's site_config.json with erp.sites (%s, %s): remove them from the [tenant] section", keyTenantID, keySecret)
	}
	if e.DSN == "" {
		add("erp.sites needs erp.dsn: a read-only user of the database server that may read every site's database, as in \"erpsync:PASSWORD@tcp(127.0.0.1:3306)/\" (the database part is left out: each site's db_name is used)")
	}
	// Every other key, checked once as a site of the bench has it.
	probe := *t
	probe.Tenant = Tenant{ID: "probe", Secret: Secret(strings.Repeat("A", 43) + "=")}
	probe.ERP.BenchPath, probe.ERP.Site = "", ""
	if probe.Ingest.URL == "" {
		probe.Ingest.URL = "https://ingest.invalid/" // each site may have erpsync_ingest_url
	}
	if e.DSN == "" {
		probe.ERP.DSN = "probe@tcp(127.0.0.1:3306)/probe"
	} else if dsn, err := siteDSN(e.DSN, "probe"); err == nil {
		probe.ERP.DSN = Secret(dsn)
	}
	errs = append(errs, probe.validate()...)
	return errs
}

// siteDSN is the server-wide DSN with its database replaced by database.
func siteDSN(server Secret, database string) (string, error) {
	cfg, err := mysql.ParseDSN(server.Reveal())
	if err != nil {
		return "", fmt.Errorf("erp.dsn is not a go-sql-driver DSN (user:password@tcp(host:3306)/): %w", errors.New("check its syntax"))
	}
	cfg.DBName = database
	return cfg.FormatDSN(), nil
}

// resolveBench lists the bench's sites that erp.sites names and turns each
// that takes part into a Site; a site that is named but cannot take part goes
// to Excluded with why. It fails only when the bench itself cannot be read.
func (c *Config) resolveBench() []error {
	t := c.bench
	if t == nil {
		return nil
	}
	c.Sites, c.Excluded = nil, nil
	if t.ERP.BenchPath == "" || t.ERP.DSN == "" {
		return nil // Validate says what is missing
	}
	names, err := benchSiteNames(t.ERP.BenchPath)
	if err != nil {
		return []error{err}
	}
	for _, name := range names {
		explicit, ok := matchSite(t.ERP.Sites, name)
		if !ok {
			continue
		}
		s, err := t.benchSite(name)
		switch {
		case err != nil:
			c.Excluded = append(c.Excluded, err)
		case s != nil:
			c.Sites = append(c.Sites, s)
		case explicit:
			c.Excluded = append(c.Excluded, fmt.Errorf("site %s: erp.sites names it, but its site_config.json has no %s: set it with `bench --site %s set-config %s SLUG` (and %s)", name, keyTenantID, name, keyTenantID, keySecret))
		}
	}
	for _, p := range t.ERP.Sites {
		if !hasMeta(p) && !slices.Contains(names, p) {
			c.Excluded = append(c.Excluded, fmt.Errorf("erp.sites names %q, which is not a site of the bench %s (no sites/%s/site_config.json)", p, t.ERP.BenchPath, p))
		}
	}
	return nil
}

// benchSiteNames lists the sites of the bench: the directories under sites/
// that hold a site_config.json, sorted.
func benchSiteNames(benchPath string) ([]string, error) {
	dir := filepath.Join(benchPath, "sites")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("erp.bench_path = %q: list its sites: %w: check erp.bench_path (the bench directory, e.g. /home/frappe/frappe-bench) and that the erpsync user can read it", benchPath, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "site_config.json")); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// matchSite reports whether a pattern of erp.sites matches site, and whether
// one names it exactly.
func matchSite(patterns []string, site string) (explicit, ok bool) {
	for _, p := range patterns {
		if p == site {
			return true, true
		}
		if m, _ := path.Match(p, site); m {
			ok = true
		}
	}
	return false, ok
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// benchSite is the site named name of the bench, t's settings with the
// tenant of its site_config.json: nil when it has no erpsync_tenant_id (it
// does not take part), an error when it cannot take part. Errors never hold
// the secret.
func (t *Site) benchSite(name string) (*Site, error) {
	file := filepath.Join(t.ERP.BenchPath, "sites", name, "site_config.json")
	var cfg map[string]any
	if err := readJSONFile(file, &cfg); err != nil {
		return nil, fmt.Errorf("site %s: %w", name, err)
	}
	str := func(key string) string { v, _ := cfg[key].(string); return strings.TrimSpace(v) }
	tenant := str(keyTenantID)
	if tenant == "" {
		return nil, nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("site %s (%s): %s", name, file, fmt.Sprintf(format, args...))
	}
	if str(keySecret) == "" {
		return nil, fail("%s is set but %s is not: set it with `bench --site %s set-config %s \"$(erpsync keygen)\"` and give the same secret to the receiver", keyTenantID, keySecret, name, keySecret)
	}
	db := str("db_name")
	if db == "" {
		return nil, fail("no db_name: is it a Frappe site?")
	}
	dsn, err := siteDSN(t.ERP.DSN, db)
	if err != nil {
		return nil, fail("%v", err)
	}
	s := *t
	s.Name, s.siteConfig = name, file
	s.Tenant = Tenant{ID: tenant, Secret: Secret(str(keySecret))}
	if u := str(keyIngestURL); u != "" {
		s.Ingest.URL = u
	}
	s.ERP.DSN, s.ERP.BenchPath, s.ERP.Site = Secret(dsn), "", ""
	s.Outbox.Path = filepath.Join(filepath.Dir(t.Outbox.Path), "sites", name, "outbox.db")
	var problems []string
	for _, e := range append(s.validate(), s.resolve()...) {
		problems = append(problems, siteKeyNames().Replace(e.Error()))
	}
	if len(problems) > 0 {
		return nil, fail("%s", strings.Join(problems, "; "))
	}
	if _, err := detector.PrepareDSN(dsn); err != nil {
		return nil, fail("%v", err)
	}
	return &s, nil
}

// siteKeyNames names a site's tenant keys as its site_config.json has them.
func siteKeyNames() *strings.Replacer {
	return strings.NewReplacer("tenant.id", keyTenantID, "tenant.secret", keySecret, "ingest.url", keyIngestURL)
}

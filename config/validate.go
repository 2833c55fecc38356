package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/signer"
)

var slugPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// userInfoPattern matches a URL authority with a user part ("//user:pw@host").
var userInfoPattern = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#]*@`)

// Validate checks every value of the settings and reads no file: the
// tenant.secret_file and a bench's site config are read by Resolve. It
// returns every problem found, one a line (errors.Join), each naming the key
// and how to fix it; in a file with [[sites]], a site's problems start with
// "[[sites]] #N (name): ". Validate changes nothing in c.
func (c *Config) Validate() error {
	errs := validateFile(c)
	errs = append(errs, c.validateBench()...)
	if len(c.Sites) == 0 && c.bench == nil {
		errs = append(errs, errors.New("no site to sync: set the [tenant], [ingest], [erp] and [outbox] sections, or add [[sites]] tables"))
	}
	errs = append(errs, c.eachSite((*Site).validate)...)
	if c.multi() {
		outboxes := map[string]string{}
		for i, s := range c.Sites {
			if prev, ok := outboxes[s.Outbox.Path]; ok && s.Outbox.Path != "" {
				errs = append(errs, fmt.Errorf("%s: outbox.path %q is also used by site %s: give every site its own outbox", siteLabel(i, s), s.Outbox.Path, prev))
			}
			outboxes[s.Outbox.Path] = s.Name
		}
	}
	return errors.Join(errs...)
}

// Resolve reads the files the settings point at: each site's
// tenant.secret_file, and for erp.bench_path with erp.site the bench's
// sites/<site>/site_config.json and sites/common_site_config.json, which set
// erp.dsn. It decodes each site's secret, from tenant.secret or the file, into
// the key that Key returns. Like Validate, it returns every problem, one a
// line; where a site's settings leave nothing to resolve (no secret, or both
// erp.dsn and erp.bench_path), it says so in Validate's words.
//
// With erp.sites, Resolve first lists the bench's sites again (Sites,
// Excluded): a site added or removed since the last Resolve is found.
func (c *Config) Resolve() error {
	errs := c.resolveBench()
	return errors.Join(append(errs, c.eachSite((*Site).resolve)...)...)
}

// multi reports whether c came from a file with [[sites]]: its sites have
// names, and their errors say which site they are about.
func (c *Config) multi() bool {
	return len(c.Sites) != 1 || c.Sites[0] == nil || c.Sites[0].Name != ""
}

// siteLabel names the i'th [[sites]] table in errors.
func siteLabel(i int, s *Site) string {
	if s.siteConfig != "" {
		return fmt.Sprintf("site %s (%s)", s.Name, s.siteConfig)
	}
	return fmt.Sprintf("[[sites]] #%d (%s)", i+1, s.Name)
}

// eachSite calls check on every site and returns the problems it finds, with
// the site's label in front in a file with [[sites]].
func (c *Config) eachSite(check func(*Site) []error) []error {
	var errs []error
	multi := c.multi()
	for i, s := range c.Sites {
		if s == nil {
			continue
		}
		for _, e := range check(s) {
			if multi {
				e = fmt.Errorf("%s: %w", siteLabel(i, s), e)
			}
			errs = append(errs, e)
		}
	}
	return errs
}

// flatten splits an errors.Join result, however nested, into its errors.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var errs []error
	for _, e := range j.Unwrap() {
		errs = append(errs, flatten(e)...)
	}
	return errs
}

// validateFile checks what all sites share: log and metrics.
func validateFile(c *Config) []error {
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
	return errs
}

// validate checks one site's tenant, ingest, erp and outbox settings.
func (s *Site) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case s.Tenant.ID == "":
		add("tenant.id is required: set it to your tenant slug, such as \"lighting_co_ke\"")
	case !slugPattern.MatchString(s.Tenant.ID):
		add("tenant.id = %q is not a slug: use letters, digits, '_', '-' and '.' only", s.Tenant.ID)
	}
	if err := s.Tenant.checkSecret(); err != nil {
		errs = append(errs, err)
	}

	if err := validateIngestURL(s.Ingest.URL, s.Ingest.AllowInsecureHTTP); err != nil {
		errs = append(errs, err)
	}
	minDuration(&errs, "ingest.timeout", s.Ingest.Timeout, 100*time.Millisecond)
	minDuration(&errs, "ingest.retry_max_wait", s.Ingest.RetryMaxWait, time.Second)
	intRange(&errs, "ingest.batch_size", s.Ingest.BatchSize, 1, 1000)
	intRange(&errs, "ingest.max_body_bytes", s.Ingest.MaxBodyBytes, 4096, 256<<20)
	intRange(&errs, "ingest.concurrency", s.Ingest.Concurrency, 1, 64)
	intRange(&errs, "ingest.retries", s.Ingest.Retries, 0, 10)

	if err := s.checkSource(); err != nil {
		errs = append(errs, err)
	}
	if s.ERP.DSN != "" && !s.dsnFromBench {
		if _, err := detector.PrepareDSN(s.ERP.DSN.Reveal()); err != nil {
			errs = append(errs, err)
		}
	}
	minDuration(&errs, "erp.poll_interval", s.ERP.PollInterval, 10*time.Millisecond)
	if s.ERP.Overlap < 0 || s.ERP.Overlap > 24*time.Hour {
		add("erp.overlap = %s is out of range: use a duration from \"0s\" to \"24h\" (default \"5m\")", s.ERP.Overlap)
	}
	intRange(&errs, "erp.page_size", s.ERP.PageSize, 1, 5000)
	if s.ERP.SiteURL != "" {
		u, err := url.Parse(s.ERP.SiteURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("erp.site_url = %q is not an absolute http(s) URL: set it to the site's public address, such as \"https://erp.example.com\"", s.ERP.SiteURL)
		}
	}
	if s.ERP.TimeZone != "" {
		if _, err := time.LoadLocation(s.ERP.TimeZone); err != nil {
			add("erp.time_zone = %q is not an IANA time zone: use a name such as \"Africa/Nairobi\", or leave it empty to read System Settings", s.ERP.TimeZone)
		}
	}
	if s.ERP.WatchDebounce < 0 || s.ERP.WatchDebounce > time.Second {
		add("erp.watch_debounce = %s is out of range: use a duration from \"0s\" to \"1s\" (default \"5ms\")", s.ERP.WatchDebounce)
	}
	if s.ERP.ReconcileInterval != 0 {
		minDuration(&errs, "erp.reconcile_interval", s.ERP.ReconcileInterval, time.Minute)
	}
	if s.Outbox.Retention != 0 {
		minDuration(&errs, "outbox.retention", s.Outbox.Retention, time.Minute)
	}
	intRange(&errs, "outbox.alarm_pending", s.Outbox.AlarmPending, 0, 1<<30)
	if s.Outbox.Path == "" {
		add("outbox.path is required: set it to a file in a writable directory, such as \"/var/lib/erpsync/outbox.db\"")
	}
	return errs
}

// resolve reads the site's secret file and bench.
func (s *Site) resolve() []error {
	var errs []error
	if err := s.Tenant.loadKey(); err != nil {
		errs = append(errs, err)
	}
	if err := s.readBench(); err != nil {
		errs = append(errs, err)
	}
	return errs
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

// checkSource checks that the database is named one way: by erp.dsn, or by
// erp.bench_path with erp.site.
func (s *Site) checkSource() error {
	e := &s.ERP
	if e.BenchPath == "" && e.Site == "" {
		if e.DSN == "" {
			return errors.New("erp.dsn is required: set the ERPNext database DSN, as in \"erpsync:PASSWORD@tcp(127.0.0.1:3306)/_1bd3e0294da19198\" (a read-only user is enough)")
		}
		return nil
	}
	switch {
	case e.DSN != "" && !s.dsnFromBench:
		return errors.New("erp.dsn and erp.bench_path/erp.site are both set: keep one way of naming the database")
	case e.BenchPath == "" || e.Site == "":
		return errors.New("erp.bench_path and erp.site go together: set both (the bench directory and the site name), or use erp.dsn")
	}
	return nil
}

// readBench sets erp.dsn from the bench that erp.bench_path and erp.site
// name, if they do.
func (s *Site) readBench() error {
	e := &s.ERP
	if e.BenchPath == "" && e.Site == "" {
		return nil
	}
	if err := s.checkSource(); err != nil {
		return err
	}
	dsn, err := benchSiteDSN(e.BenchPath, e.Site)
	if err != nil {
		return err
	}
	if _, err := detector.PrepareDSN(dsn); err != nil {
		return err
	}
	e.DSN, s.dsnFromBench = Secret(dsn), true
	return nil
}

// checkSecret checks that exactly one of secret and secret_file is set and
// that secret decodes; the file is read by loadKey.
func (t *Tenant) checkSecret() error {
	switch {
	case t.Secret != "" && t.SecretFile != "":
		return errors.New("tenant.secret and tenant.secret_file are both set: keep exactly one")
	case t.Secret == "" && t.SecretFile == "":
		return errors.New("tenant.secret or tenant.secret_file is required: generate a secret with `erpsync keygen` and put it in one of them")
	case t.SecretFile != "":
		return nil
	}
	if _, err := signer.DecodeSecret(t.Secret.Reveal()); err != nil {
		return fmt.Errorf("tenant.secret: %w", err)
	}
	return nil
}

// loadKey decodes the secret from exactly one of secret and secret_file.
func (t *Tenant) loadKey() error {
	t.key = nil
	if err := t.checkSecret(); err != nil {
		return err
	}
	if t.SecretFile == "" {
		key, err := signer.DecodeSecret(t.Secret.Reveal())
		if err != nil {
			return fmt.Errorf("tenant.secret: %w", err)
		}
		t.key = key
		return nil
	}
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
		if !allowHTTP && !IsLoopback(u.Hostname()) {
			return fmt.Errorf("ingest.url = %q uses plain http to a non-loopback host: use https, or set ingest.allow_insecure_http = true if the network path is trusted", raw)
		}
	default:
		return fmt.Errorf("ingest.url = %q: scheme must be https (or http to loopback)", raw)
	}
	return nil
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

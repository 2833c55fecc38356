package config

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// The PROTOCOL.md reference secret; it decodes to the ASCII text
// "erpsync-reference-secret-32bytes", which makes a leaked key easy to spot.
const (
	ctRefSecret     = "ZXJwc3luYy1yZWZlcmVuY2Utc2VjcmV0LTMyYnl0ZXM="
	ctRefKeyText    = "erpsync-reference-secret-32bytes"
	ctDSNPassword   = "Dsn-Pa55word-xyz"
	ctDSN           = "erpsync:" + ctDSNPassword + "@tcp(127.0.0.1:3306)/_1bd3e0294da19198"
	ctShortSecret   = "MTIzNDU2Nzg5MGFiY2RlZg==" // 16 bytes
	ctNotBase64     = "not*base64*but*a*long*enough*secret*value*here"
	ctURLPassword   = "Url-Pa55word-xyz"
	ctReferenceFile = "../settings.toml"
)

// ctNeverShown are texts that no error, log line or printed Config may hold.
// The secrets are listed without their '=' padding, which also finds them
// echoed unpadded.
var ctNeverShown = []string{
	strings.TrimRight(ctRefSecret, "="), ctRefKeyText, ctDSNPassword,
	strings.TrimRight(ctShortSecret, "="), ctNotBase64, ctURLPassword,
}

// ctClearEnv removes every ERPSYNC_ variable that Read or Path
// reads, so the tests do not depend on the caller's environment. The
// variables are restored when the test ends.
func ctClearEnv(t *testing.T) {
	t.Helper()
	names := []string{"ERPSYNC_CONFIG"}
	for k := range defaults() {
		names = append(names, "ERPSYNC_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_")))
	}
	for _, n := range names {
		t.Setenv(n, "") // restores the old value at the end of the test
		os.Unsetenv(n)
	}
}

// ctDel as a value in ctTOML's overrides removes the key.
const ctDel = "\x00delete"

// ctTOML returns a valid settings file with the given keys replaced, added
// (even unknown ones) or removed (ctDel). Values are raw TOML.
func ctTOML(over map[string]string) string {
	keys := map[string]string{
		"tenant.id":     `"acme"`,
		"tenant.secret": `"` + ctRefSecret + `"`,
		"ingest.url":    `"https://ingest.example.com/erpnext/items"`,
		"erp.dsn":       `"` + ctDSN + `"`,
		"log.file":      `"-"`,
	}
	for k, v := range over {
		if v == ctDel {
			delete(keys, k)
		} else {
			keys[k] = v
		}
	}
	sections := map[string][]string{}
	for k, v := range keys {
		sec, name, _ := strings.Cut(k, ".")
		sections[sec] = append(sections[sec], name+" = "+v)
	}
	var b strings.Builder
	for _, sec := range slices.Sorted(maps.Keys(sections)) {
		lines := sections[sec]
		sort.Strings(lines)
		fmt.Fprintf(&b, "[%s]\n%s\n\n", sec, strings.Join(lines, "\n"))
	}
	return b.String()
}

// ctWrite writes content to a new file in a temporary directory.
func ctWrite(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ctAssertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range ctNeverShown {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q:\n%s", what, s, text)
		}
	}
}

// TestConfigReferenceFile keeps the annotated settings.toml and the code in
// step: the file parses and validates except for its secret file, and it
// lists every key with its default.
func TestConfigReferenceFile(t *testing.T) {
	ctClearEnv(t)

	if _, err := os.Stat("/etc/erpsync/secret"); err != nil {
		_, err := Read(ctReferenceFile)
		if err == nil {
			t.Fatal("settings.toml validated although /etc/erpsync/secret does not exist")
		}
		msg := err.Error()
		if !strings.Contains(msg, "tenant.secret_file") || !strings.Contains(msg, "/etc/erpsync/secret") {
			t.Errorf("error does not name tenant.secret_file and its path:\n%s", msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("settings.toml has more wrong than the missing secret file:\n%s", msg)
		}
	}

	secretFile := ctWrite(t, "secret", ctRefSecret+"\n") // as `erpsync keygen > file` writes it
	t.Setenv("ERPSYNC_TENANT_SECRET_FILE", secretFile)
	cfg, err := Read(ctReferenceFile)
	if err != nil {
		t.Fatalf("settings.toml with ERPSYNC_TENANT_SECRET_FILE set: %v", err)
	}
	if len(cfg.Sites) != 1 || cfg.Sites[0].Name != "" || cfg.Sites[0].Path != ctReferenceFile || cfg.Path != ctReferenceFile {
		t.Fatalf("settings.toml: %d sites, want one, named \"\", from %s", len(cfg.Sites), ctReferenceFile)
	}
	site := cfg.Sites[0]
	if site.Tenant.SecretFile != secretFile {
		t.Errorf("tenant.secret_file = %q, want the environment's %q", site.Tenant.SecretFile, secretFile)
	}
	if string(site.Tenant.Key()) != ctRefKeyText {
		t.Errorf("Key() = %q, want the decoded secret file", site.Tenant.Key())
	}
	for _, c := range []struct{ name, got, want string }{
		{"tenant.id", site.Tenant.ID, "acme"},
		{"ingest.url", site.Ingest.URL, "https://ingest.example.com/erpnext/items"},
		{"ingest.timeout", site.Ingest.Timeout.String(), "10s"},
		{"ingest.batch_size", fmt.Sprint(site.Ingest.BatchSize), "1"},
		{"erp.dsn", site.ERP.DSN.Reveal(), "erpsync:CHANGE-ME@tcp(127.0.0.1:3306)/_1bd3e0294da19198"},
		{"erp.poll_interval", site.ERP.PollInterval.String(), "1s"},
		{"erp.overlap", site.ERP.Overlap.String(), "5m0s"},
		{"erp.price_lists", fmt.Sprintf("%q", site.ERP.PriceLists), "[]"},
		{"outbox.path", site.Outbox.Path, "/var/lib/erpsync/outbox.db"},
		{"log.level", cfg.Log.Level, "info"},
	} {
		if c.got != c.want {
			t.Errorf("settings.toml: %s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

// TestConfigReferenceFileListsEveryKey checks that settings.toml and
// defaults() name the same keys, and that the file shows each default.
func TestConfigReferenceFileListsEveryKey(t *testing.T) {
	ctClearEnv(t)
	// Keys whose value in the file is an example rather than the default.
	examples := map[string]bool{"tenant.id": true, "tenant.secret_file": true, "ingest.url": true, "erp.dsn": true}

	v := viper.New()
	v.SetConfigFile(ctReferenceFile)
	v.SetConfigType("toml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	for _, k := range v.AllKeys() {
		inFile[k] = true
	}
	// Keys that are documented but commented out, such as `# secret = ""`.
	f, err := os.Open(ctReferenceFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	section := ""
	sectionRE := regexp.MustCompile(`^\[([a-z_]+)\]\s*$`)
	commentedSectionRE := regexp.MustCompile(`^#\s*\[`) // an example block, such as # [[sites]]
	commentedRE := regexp.MustCompile(`^#\s*([a-z_]+)\s*=\s*\S`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		switch line := sc.Text(); {
		case sectionRE.MatchString(line):
			section = sectionRE.FindStringSubmatch(line)[1]
		case commentedSectionRE.MatchString(line):
			section = ""
		case section != "" && commentedRE.MatchString(line):
			inFile[section+"."+commentedRE.FindStringSubmatch(line)[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	defs := defaults()
	for k := range defs {
		if !inFile[k] {
			t.Errorf("key %s (in defaults()) is not documented in settings.toml", k)
		}
	}
	for k := range inFile {
		if _, ok := defs[k]; !ok {
			t.Errorf("settings.toml documents %s, which defaults() does not know (it would be refused as unknown)", k)
		}
	}
	for _, k := range v.AllKeys() {
		def, ok := defs[k]
		if !ok || examples[k] {
			continue
		}
		if got, want := fmt.Sprint(v.Get(k)), fmt.Sprint(def); got != want {
			t.Errorf("settings.toml shows %s = %s, but the default is %s", k, got, want)
		}
	}
}

func TestConfigBadSettings(t *testing.T) {
	ctClearEnv(t)
	dir := t.TempDir()
	goodSecretFile := filepath.Join(dir, "good-secret")
	shortSecretFile := filepath.Join(dir, "short-secret")
	if err := os.WriteFile(goodSecretFile, []byte(ctRefSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shortSecretFile, []byte(ctShortSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		over map[string]string
		raw  string   // the whole file instead of ctTOML(over)
		want []string // each must appear in the error: the key and a hint
	}{
		{name: "typo in key", over: map[string]string{"ingest.urll": `"https://x.example.com/"`},
			want: []string{"unknown key ingest.urll", "fix its spelling"}},
		{name: "unknown section", over: map[string]string{"metrics.port": `9090`},
			want: []string{"unknown key metrics.port", "fix its spelling"}},
		{name: "tenant.id missing", over: map[string]string{"tenant.id": ctDel},
			want: []string{"tenant.id is required", "slug"}},
		{name: "tenant.id not a slug", over: map[string]string{"tenant.id": `"acme corp!"`},
			want: []string{"tenant.id", "not a slug", "letters, digits"}},
		{name: "secret and secret_file", over: map[string]string{"tenant.secret_file": `"` + goodSecretFile + `"`},
			want: []string{"tenant.secret and tenant.secret_file are both set", "exactly one"}},
		{name: "no secret", over: map[string]string{"tenant.secret": ctDel},
			want: []string{"tenant.secret or tenant.secret_file is required", "erpsync keygen"}},
		{name: "secret not base64", over: map[string]string{"tenant.secret": `"` + ctNotBase64 + `"`},
			want: []string{"tenant.secret", "not valid base64", "erpsync keygen"}},
		{name: "secret 16 bytes", over: map[string]string{"tenant.secret": `"` + ctShortSecret + `"`},
			want: []string{"tenant.secret", "16 bytes", "at least 32", "erpsync keygen"}},
		{name: "secret not a string", over: map[string]string{"tenant.secret": `["` + ctRefSecret + `"]`},
			want: []string{"tenant.secret", "Secret"}},
		{name: "secret_file missing", over: map[string]string{"tenant.secret": ctDel, "tenant.secret_file": `"` + filepath.Join(dir, "nope") + `"`},
			want: []string{"tenant.secret_file", filepath.Join(dir, "nope"), "check the path"}},
		{name: "secret_file holds the secret", over: map[string]string{"tenant.secret": ctDel, "tenant.secret_file": `"` + ctRefSecret + `"`},
			want: []string{"tenant.secret_file", "looks like a secret rather than a path", "tenant.secret instead"}},
		{name: "secret_file holds an unpadded secret", over: map[string]string{"tenant.secret": ctDel, "tenant.secret_file": `"` + strings.TrimRight(ctRefSecret, "=") + `"`},
			want: []string{"tenant.secret_file", "looks like a secret rather than a path"}},
		// A long path of base64 letters and '/' is still a path (and named).
		{name: "secret_file missing, long base64-like path", over: map[string]string{"tenant.secret": ctDel, "tenant.secret_file": `"/var/lib/erpsync/secrets/acmeKenyaProductionTenantKey"`},
			want: []string{"tenant.secret_file", "/var/lib/erpsync/secrets/acmeKenyaProductionTenantKey", "check the path"}},
		{name: "secret_file 16 bytes", over: map[string]string{"tenant.secret": ctDel, "tenant.secret_file": `"` + shortSecretFile + `"`},
			want: []string{"tenant.secret_file", "16 bytes", "at least 32"}},
		{name: "ingest.url missing", over: map[string]string{"ingest.url": ctDel},
			want: []string{"ingest.url is required", "https://"}},
		{name: "ingest.url not absolute", over: map[string]string{"ingest.url": `"/erpnext/items"`},
			want: []string{"ingest.url", "not an absolute URL", "https://host/path"}},
		{name: "ingest.url http to non-loopback", over: map[string]string{"ingest.url": `"http://ingest.example.com/items"`},
			want: []string{"ingest.url", "plain http", "ingest.allow_insecure_http = true"}},
		{name: "ingest.url ftp", over: map[string]string{"ingest.url": `"ftp://ingest.example.com/items"`},
			want: []string{"ingest.url", "scheme must be https"}},
		{name: "ingest.url with user:password", over: map[string]string{"ingest.url": `"https://bob:` + ctURLPassword + `@ingest.example.com/items"`},
			want: []string{"ingest.url must not carry a user or password", "HMAC"}},
		{name: "ingest.url with user:password and no host", over: map[string]string{"ingest.url": `"https://bob:` + ctURLPassword + `@/items"`},
			want: []string{"ingest.url must not carry a user or password"}},
		{name: "timeout without unit (number)", over: map[string]string{"ingest.timeout": `10`},
			want: []string{"ingest.timeout = 10ns is too short", "with a unit"}},
		{name: "timeout without unit (string)", over: map[string]string{"ingest.timeout": `"10"`},
			want: []string{"ingest.timeout", "missing unit", `"10s"`}},
		{name: "timeout abc", over: map[string]string{"ingest.timeout": `"abc"`},
			want: []string{"ingest.timeout", "invalid duration", `"10s"`}},
		{name: "batch_size 0", over: map[string]string{"ingest.batch_size": `0`},
			want: []string{"ingest.batch_size = 0 is out of range", "from 1 to 1000"}},
		{name: "batch_size ten", over: map[string]string{"ingest.batch_size": `"ten"`},
			want: []string{"ingest.batch_size", "numbers", "without quotes"}},
		{name: "concurrency 0", over: map[string]string{"ingest.concurrency": `0`},
			want: []string{"ingest.concurrency = 0 is out of range", "from 1 to 64"}},
		{name: "erp.dsn missing", over: map[string]string{"erp.dsn": ctDel},
			want: []string{"erp.dsn is required", "@tcp("}},
		{name: "erp.dsn unparsable", over: map[string]string{"erp.dsn": `"erpsync:` + ctDSNPassword + `@127.0.0.1:3306/db"`},
			want: []string{"erp.dsn", "not a go-sql-driver DSN", "@tcp(host:3306)/database"}},
		{name: "erp.dsn with the password in a bad parameter", over: map[string]string{"erp.dsn": `"erpsync:` + ctDSNPassword + `@tcp(127.0.0.1:3306)/db?timeout=` + ctDSNPassword + `"`},
			want: []string{"erp.dsn", "not a go-sql-driver DSN"}},
		{name: "erp.dsn without database", over: map[string]string{"erp.dsn": `"erpsync:` + ctDSNPassword + `@tcp(127.0.0.1:3306)/"`},
			want: []string{"erp.dsn names no database", "/_1bd3e0294da19198"}},
		{name: "erp.dsn not a string", over: map[string]string{"erp.dsn": `["` + ctDSN + `"]`},
			want: []string{"erp.dsn"}},
		{name: "poll_interval 1ms", over: map[string]string{"erp.poll_interval": `"1ms"`},
			want: []string{"erp.poll_interval = 1ms is too short", "at least 10ms"}},
		{name: "site_url not absolute", over: map[string]string{"erp.site_url": `"erp.example.com"`},
			want: []string{"erp.site_url", "not an absolute http(s) URL", "https://erp.example.com"}},
		{name: "time_zone Mars", over: map[string]string{"erp.time_zone": `"Mars/Olympus"`},
			want: []string{"erp.time_zone", "Mars/Olympus", "IANA", "Africa/Nairobi"}},
		{name: "log.level loud", over: map[string]string{"log.level": `"loud"`},
			want: []string{"log.level", "loud", `"debug"`}},
		{name: "several at once", over: map[string]string{"tenant.id": ctDel, "ingest.url": ctDel, "erp.dsn": ctDel},
			want: []string{"tenant.id is required", "ingest.url is required", "erp.dsn is required"}},
		{name: "site: secret 16 bytes", raw: ctTOML(map[string]string{"tenant.secret": ctDel}) +
			"[[sites]]\nname = \"shop-a\"\n[sites.tenant]\nid = \"shop_a\"\nsecret = \"" + ctShortSecret + "\"\n[sites.outbox]\npath = \"/tmp/a.db\"\n",
			want: []string{"[[sites]] #1 (shop-a)", "tenant.secret", "16 bytes", "erpsync keygen"}},
		{name: "site: unknown key", raw: ctTOML(nil) +
			"[[sites]]\nname = \"shop-a\"\n[sites.tenant]\nid = \"shop_a\"\nsecrett = \"" + ctRefSecret + "\"\n",
			want: []string{"[[sites]] #1", "unknown key tenant.secrett", "spelling"}},
		{name: "site: DSN without database", raw: ctTOML(nil) +
			"[[sites]]\nname = \"shop-a\"\n[sites.erp]\ndsn = \"erpsync:" + ctDSNPassword + "@tcp(127.0.0.1:3306)/\"\n[sites.outbox]\npath = \"/tmp/a.db\"\n",
			want: []string{"[[sites]] #1 (shop-a)", "erp.dsn names no database"}},
		{name: "invalid TOML", raw: "[tenant]\nid = \"acme\"\nsecret = " + ctRefSecret + "\n",
			want: []string{"not valid TOML", "line 3", "double quotes"}},
		{name: "invalid TOML in the DSN", raw: "[erp]\ndsn = \"" + ctDSN + "\n",
			want: []string{"not valid TOML", "line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := tt.raw
			if content == "" {
				content = ctTOML(tt.over)
			}
			path := ctWrite(t, "settings.toml", content)
			cfg, err := Read(path)
			if err == nil {
				t.Fatalf("Read accepted:\n%s\n%+v", content, cfg)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file %s:\n%s", path, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			ctAssertNoSecret(t, "error", msg)
		})
	}
}

func TestConfigGoodSettings(t *testing.T) {
	ctClearEnv(t)
	secretFile := ctWrite(t, "secret", "\n  "+ctRefSecret+"  \n\n")
	tests := []struct {
		name  string
		over  map[string]string
		check func(t *testing.T, s *Site)
	}{
		{name: "minimal", check: func(t *testing.T, s *Site) {
			if s.Ingest.Timeout != 10*time.Second || s.Ingest.BatchSize != 1 || s.ERP.PollInterval != time.Second {
				t.Errorf("defaults not applied: %+v %+v", s.Ingest, s.ERP)
			}
		}},
		{name: "secret_file with blank lines", over: map[string]string{"tenant.secret": ctDel, "tenant.secret_file": `"` + secretFile + `"`}},
		{name: "secret without padding", over: map[string]string{"tenant.secret": `"` + strings.TrimRight(ctRefSecret, "=") + `"`}},
		{name: "http with allow_insecure_http", over: map[string]string{"ingest.url": `"http://ingest.internal/items"`, "ingest.allow_insecure_http": "true"}},
		{name: "http to 127.0.0.1", over: map[string]string{"ingest.url": `"http://127.0.0.1:8080/items"`}},
		{name: "http to localhost", over: map[string]string{"ingest.url": `"http://localhost:8080/items"`}},
		{name: "http to [::1]", over: map[string]string{"ingest.url": `"http://[::1]:8080/items"`}},
		{name: "durations and lists", over: map[string]string{
			"ingest.timeout": `"1500ms"`, "erp.overlap": `"0s"`, "erp.price_lists": `["Standard Selling", "Retail KE"]`,
			"erp.time_zone": `"Africa/Nairobi"`, "erp.site_url": `"https://erp.example.com"`, "log.level": `"WARN"`,
		}, check: func(t *testing.T, s *Site) {
			if s.Ingest.Timeout != 1500*time.Millisecond || s.ERP.Overlap != 0 ||
				!slices.Equal(s.ERP.PriceLists, []string{"Standard Selling", "Retail KE"}) || s.ERP.TimeZone != "Africa/Nairobi" {
				t.Errorf("parsed %+v %+v", s.Ingest, s.ERP)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Read(ctWrite(t, "settings.toml", ctTOML(tt.over)))
			if err != nil {
				t.Fatal(err)
			}
			if string(cfg.Sites[0].Tenant.Key()) != ctRefKeyText {
				t.Errorf("Key() = %q, want %q", cfg.Sites[0].Tenant.Key(), ctRefKeyText)
			}
			if tt.check != nil {
				tt.check(t, cfg.Sites[0])
			}
		})
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	tests := []struct {
		name    string
		over    map[string]string // the file
		env     map[string]string
		check   func(t *testing.T, s *Site)
		wantErr []string
	}{
		{
			name: "url and price lists",
			over: map[string]string{"erp.price_lists": `["From File"]`},
			env:  map[string]string{"ERPSYNC_INGEST_URL": "https://env.example.com/in", "ERPSYNC_ERP_PRICE_LISTS": "A,B"},
			check: func(t *testing.T, s *Site) {
				if s.Ingest.URL != "https://env.example.com/in" {
					t.Errorf("ingest.url = %q, want the environment's", s.Ingest.URL)
				}
				if !slices.Equal(s.ERP.PriceLists, []string{"A", "B"}) {
					t.Errorf("erp.price_lists = %q, want [A B]", s.ERP.PriceLists)
				}
			},
		},
		{
			name: "numbers, durations and booleans",
			env: map[string]string{
				"ERPSYNC_INGEST_BATCH_SIZE": "25", "ERPSYNC_ERP_POLL_INTERVAL": "250ms",
				"ERPSYNC_INGEST_URL": "http://ingest.internal/x", "ERPSYNC_INGEST_ALLOW_INSECURE_HTTP": "true",
			},
			check: func(t *testing.T, s *Site) {
				if s.Ingest.BatchSize != 25 || s.ERP.PollInterval != 250*time.Millisecond || !s.Ingest.AllowInsecureHTTP {
					t.Errorf("parsed %+v %+v", s.Ingest, s.ERP)
				}
			},
		},
		{
			name: "secret only in the environment",
			over: map[string]string{"tenant.secret": ctDel},
			env:  map[string]string{"ERPSYNC_TENANT_SECRET": ctRefSecret},
			check: func(t *testing.T, s *Site) {
				if string(s.Tenant.Key()) != ctRefKeyText {
					t.Errorf("Key() = %q", s.Tenant.Key())
				}
			},
		},
		{
			name:    "bad value from the environment",
			env:     map[string]string{"ERPSYNC_INGEST_BATCH_SIZE": "0"},
			wantErr: []string{"ingest.batch_size = 0 is out of range"},
		},
		{
			name:    "bad DSN from the environment",
			env:     map[string]string{"ERPSYNC_ERP_DSN": "erpsync:" + ctDSNPassword + "@tcp(127.0.0.1:3306)/"},
			wantErr: []string{"erp.dsn names no database"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctClearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Read(ctWrite(t, "settings.toml", ctTOML(tt.over)))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted: %+v", cfg)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				ctAssertNoSecret(t, "error", err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg.Sites[0])
		})
	}
}

// TestConfigSecretNeverPrints prints a Config every way a developer might
// (fmt verbs, slog text and JSON, encoding/json) and looks for the tenant
// secret, the decoded key and the DSN password.
func TestConfigSecretNeverPrints(t *testing.T) {
	ctClearEnv(t)
	cfg, err := Read(ctWrite(t, "settings.toml", ctTOML(nil)))
	if err != nil {
		t.Fatal(err)
	}
	site := cfg.Sites[0]
	// The values are there, so the checks below are not vacuous.
	if site.Tenant.Secret.Reveal() != ctRefSecret || site.ERP.DSN.Reveal() != ctDSN || string(site.Key()) != ctRefKeyText {
		t.Fatalf("secrets not parsed: %q %q %q", site.Tenant.Secret.Reveal(), site.ERP.DSN.Reveal(), site.Key())
	}
	key := site.Key()

	var out strings.Builder
	for _, v := range []any{cfg, *cfg, cfg.Sites, site, *site, site.Tenant, &site.Tenant, site.ERP, &site.ERP, site.Tenant.Secret, site.ERP.DSN} {
		// %s, %q, %x and %d do not suit every field: fmt's fallback for a
		// wrong verb prints values raw, bypassing String.
		fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n%q\n%x\n%d\n%t\n", v, v, v, v, v, v, v, v)
		fmt.Fprintln(&out, v)
	}
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("settings", "cfg", cfg, "value", *cfg, "sites", cfg.Sites, "site", site, "sitev", *site,
			"tenant", site.Tenant, "tenantp", &site.Tenant, "secret", site.Tenant.Secret, "dsn", site.ERP.DSN,
			slog.Group("g", "erp", site.ERP))
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Errorf("encoding/json of a Config: %v", err)
		js = []byte("[redacted]") // checked above; go on with fmt and slog
	}

	for name, text := range map[string]string{"fmt": out.String(), "slog": logs.String(), "encoding/json": string(js)} {
		ctAssertNoSecret(t, name, text)
		for _, form := range []string{fmt.Sprint(key), fmt.Sprintf("%#v", key), fmt.Sprintf("%x", key), fmt.Sprintf("%X", key), base64.RawStdEncoding.EncodeToString(key)} {
			if strings.Contains(text, form) {
				t.Errorf("%s output shows the decoded key as %s:\n%s", name, form, text)
			}
		}
		if !strings.Contains(text, "[redacted]") {
			t.Errorf("%s output does not show [redacted]:\n%s", name, text)
		}
	}
	// encoding/json writes the sites in full (Secret redacts itself, the key
	// is unexported): the settings are there, the secrets are not.
	var decoded struct {
		Sites []struct {
			Tenant struct{ ID, Secret string }
			ERP    struct{ DSN string }
		}
	}
	if err := json.Unmarshal(js, &decoded); err != nil {
		t.Fatalf("encoding/json of a Config: %v\n%s", err, js)
	}
	if len(decoded.Sites) != 1 || decoded.Sites[0].Tenant.ID != "acme" ||
		decoded.Sites[0].Tenant.Secret != "[redacted]" || decoded.Sites[0].ERP.DSN != "[redacted]" {
		t.Errorf("encoding/json of a Config: %s, want the site with tenant.secret and erp.dsn redacted", js)
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("an empty Secret prints %q, want nothing", got)
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		flag, env, want string
	}{
		{flag: "/a/flag.toml", env: "/b/env.toml", want: "/a/flag.toml"},
		{flag: "/a/flag.toml", want: "/a/flag.toml"},
		{env: "/b/env.toml", want: "/b/env.toml"},
		{want: DefaultPath},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("flag=%q env=%q", tt.flag, tt.env), func(t *testing.T) {
			ctClearEnv(t)
			if tt.env != "" {
				t.Setenv("ERPSYNC_CONFIG", tt.env)
			}
			if got := Path(tt.flag); got != tt.want {
				t.Errorf("Path(%q) with $ERPSYNC_CONFIG=%q = %q, want %q", tt.flag, tt.env, got, tt.want)
			}
		})
	}
	if DefaultPath != "/etc/erpsync/settings.toml" {
		t.Errorf("DefaultPath = %q", DefaultPath)
	}
}

func TestConfigFileNotFound(t *testing.T) {
	ctClearEnv(t)
	path := filepath.Join(t.TempDir(), "missing.toml")
	_, err := Read(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("Read(missing) = %v, want an error naming the file and --config", err)
	}
}

package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// writeBench makes a Frappe bench directory whose site points at the
// database behind dsn, the way `bench new-site` writes it.
func writeBench(t *testing.T, dsn, site string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	bench := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bench, "sites", site), 0o755); err != nil {
		t.Fatal(err)
	}
	siteCfg, _ := json.Marshal(map[string]any{"db_name": cfg.DBName, "db_password": cfg.Passwd, "db_type": "mariadb", "db_user": cfg.User})
	ctWriteFile(t, filepath.Join(bench, "sites", site, "site_config.json"), string(siteCfg))
	common, _ := json.Marshal(map[string]any{"db_host": host, "db_port": json.Number(port), "redis_cache": "redis://127.0.0.1:13000"})
	ctWriteFile(t, filepath.Join(bench, "sites", "common_site_config.json"), string(common))
	return bench
}

// quoteTOML writes s as a TOML basic string.
func quoteTOML(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestBenchSiteErrors(t *testing.T) {
	bench := t.TempDir()
	for site, content := range map[string]string{"nodb": `{"db_password": "hunter2"}`, "broken": `{"db_name": `} {
		if err := os.MkdirAll(filepath.Join(bench, "sites", site), 0o755); err != nil {
			t.Fatal(err)
		}
		ctWriteFile(t, filepath.Join(bench, "sites", site, "site_config.json"), content)
	}
	tests := []struct{ site, want string }{
		{"missing.example.com", "not found"},
		{"nodb", "has no db_name"},
		{"broken", "not valid JSON"},
	}
	for _, tc := range tests {
		_, err := benchSiteDSN(bench, tc.site)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("site %s: %v, want an error with %q and no password", tc.site, err, tc.want)
		}
	}
}

// TestResolveBench: erp.bench_path and erp.site set erp.dsn from the bench's
// files, the site's own keys before the bench-wide ones; a resolved Config
// validates and resolves again.
func TestResolveBench(t *testing.T) {
	ctClearEnv(t)
	const password = "Bench-Pa55word-xyz"
	bench := writeBench(t, "shop_user:"+password+"@tcp(db.internal:3307)/_shop_db", "shop.example.com")
	cfg, err := Read(ctWrite(t, "settings.toml", ctTOML(map[string]string{
		"erp.dsn": ctDel, "erp.bench_path": quoteTOML(bench), "erp.site": `"shop.example.com"`,
	})))
	if err != nil {
		t.Fatal(err)
	}
	got, err := mysql.ParseDSN(cfg.Sites[0].ERP.DSN.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "shop_user" || got.Passwd != password || got.Addr != "db.internal:3307" || got.DBName != "_shop_db" {
		t.Errorf("DSN from the bench: user %q, address %q, database %q", got.User, got.Addr, got.DBName)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after Resolve: %v", err)
	}
	if err := cfg.Resolve(); err != nil {
		t.Errorf("Resolve again: %v", err)
	}

	// The bench-wide host and a missing db_user: the user is the database.
	ctWriteFile(t, filepath.Join(bench, "sites", "shop.example.com", "site_config.json"), `{"db_name": "_shop_db", "db_password": "x"}`)
	ctWriteFile(t, filepath.Join(bench, "sites", "common_site_config.json"), `{"db_host": "localhost"}`)
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Sites[0].ERP.DSN.Reveal(), "_shop_db:x@tcp(127.0.0.1:3306)/_shop_db"; got != want {
		t.Errorf("DSN from the bench = %q, want %q", got, want)
	}
}

// writeBenchSites adds sites to a bench directory, each with the given
// site_config.json keys.
func writeBenchSites(t *testing.T, bench string, sites map[string]map[string]any) {
	t.Helper()
	for name, keys := range sites {
		if err := os.MkdirAll(filepath.Join(bench, "sites", name), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(keys)
		ctWriteFile(t, filepath.Join(bench, "sites", name, "site_config.json"), string(b))
	}
}

// benchSitesTOML is a settings file for erp.sites over bench.
func benchSitesTOML(bench, sites string, over map[string]string) string {
	keys := map[string]string{
		"tenant.id": ctDel, "tenant.secret": ctDel,
		"erp.dsn":        `"erpsync:` + ctDSNPassword + `@tcp(db.internal:3307)/"`,
		"erp.bench_path": quoteTOML(bench), "erp.sites": sites,
		"outbox.path": `"/var/lib/erpsync/outbox.db"`,
	}
	for k, v := range over {
		keys[k] = v
	}
	return ctTOML(keys)
}

// TestBenchSites: erp.sites turns every named or globbed site of the bench
// whose site_config.json has erpsync_tenant_id into a site, with its tenant,
// secret and ingest URL from there, its database read with erp.dsn's user and
// its own outbox; a site that cannot take part is excluded with why (and no
// secret), and the others run.
func TestBenchSites(t *testing.T) {
	ctClearEnv(t)
	bench := t.TempDir()
	writeBenchSites(t, bench, map[string]map[string]any{
		"a.example.com": {"db_name": "_a", "db_password": "site-pw-a", keyTenantID: "tenant_a", keySecret: ctRefSecret},
		"b.example.com": {"db_name": "_b", keyTenantID: "tenant_b", keySecret: ctRefSecret, keyIngestURL: "https://b.example.net/in"},
		"c.example.com": {"db_name": "_c"}, // does not take part
		"d.example.com": {"db_name": "_d", keyTenantID: "tenant_d", keySecret: ctShortSecret},
		"e.example.com": {"db_name": "_e", keyTenantID: "tenant_e"},
		"f.other.org":   {"db_name": "_f", keyTenantID: "tenant_f", keySecret: ctNotBase64},
	})
	ctWriteFile(t, filepath.Join(bench, "sites", "common_site_config.json"), `{"db_host": "localhost"}`)
	if err := os.MkdirAll(filepath.Join(bench, "sites", "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		sites        string
		wantSites    []string
		wantExcluded []string // one substring per excluded site, in order
	}{
		{name: "every site", sites: `["*"]`, wantSites: []string{"a.example.com", "b.example.com"},
			wantExcluded: []string{"d.example.com", "e.example.com", "f.other.org"}},
		{name: "a glob", sites: `["*.example.com"]`, wantSites: []string{"a.example.com", "b.example.com"},
			wantExcluded: []string{"d.example.com (", "e.example.com (" + filepath.Join(bench, "sites", "e.example.com", "site_config.json") + "): erpsync_tenant_id is set but erpsync_secret is not"}},
		{name: "names", sites: `["b.example.com", "c.example.com", "gone.example.com"]`, wantSites: []string{"b.example.com"},
			wantExcluded: []string{"site c.example.com: erp.sites names it, but its site_config.json has no erpsync_tenant_id",
				`erp.sites names "gone.example.com", which is not a site of the bench`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Read(ctWrite(t, "settings.toml", benchSitesTOML(bench, tc.sites, nil)))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range cfg.Sites {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, tc.wantSites) {
				t.Errorf("sites %q, want %q", names, tc.wantSites)
			}
			if len(cfg.Excluded) != len(tc.wantExcluded) {
				t.Fatalf("excluded %q, want %d", cfg.Excluded, len(tc.wantExcluded))
			}
			for i, e := range cfg.Excluded {
				ctAssertNoSecret(t, "excluded", e.Error())
				if !strings.Contains(e.Error(), tc.wantExcluded[i]) {
					t.Errorf("excluded #%d: %v, want %q in it", i, e, tc.wantExcluded[i])
				}
			}
			ctAssertNoSecret(t, "sites", fmt.Sprintf("%v %+v %s", cfg.Sites, cfg, cfg.Sites))
		})
	}

	cfg, err := Read(ctWrite(t, "settings.toml", benchSitesTOML(bench, `["*"]`,
		map[string]string{"ingest.url": `"https://ingest.example.com/all"`, "erp.poll_interval": `"2s"`})))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Site("a.example.com"), cfg.Site("b.example.com")
	dsn, err := mysql.ParseDSN(a.ERP.DSN.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if dsn.User != "erpsync" || dsn.Passwd != ctDSNPassword || dsn.Addr != "db.internal:3307" || dsn.DBName != "_a" {
		t.Errorf("site a's DSN: user %q, address %q, database %q: want erp.dsn's user and server, the site's db_name", dsn.User, dsn.Addr, dsn.DBName)
	}
	if a.Tenant.ID != "tenant_a" || string(a.Key()) != ctRefKeyText || a.Ingest.URL != "https://ingest.example.com/all" || a.ERP.PollInterval != 2*time.Second {
		t.Errorf("site a: tenant %q, key set %v, url %q, poll %s", a.Tenant.ID, a.Key() != nil, a.Ingest.URL, a.ERP.PollInterval)
	}
	if b.Ingest.URL != "https://b.example.net/in" {
		t.Errorf("site b's ingest URL %q, want its erpsync_ingest_url", b.Ingest.URL)
	}
	if got, want := a.Outbox.Path, "/var/lib/erpsync/sites/a.example.com/outbox.db"; got != want || !a.FromBench() {
		t.Errorf("site a's outbox %q (from bench %v), want %q", got, a.FromBench(), want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after Resolve: %v", err)
	}

	// A reload sees a site added and one gone.
	writeBenchSites(t, bench, map[string]map[string]any{
		"e.example.com": {"db_name": "_e", keyTenantID: "tenant_e", keySecret: ctRefSecret},
	})
	if err := os.Remove(filepath.Join(bench, "sites", "a.example.com", "site_config.json")); err != nil {
		t.Fatal(err)
	}
	next, err := Read(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if next.Site("e.example.com") == nil || next.Site("a.example.com") != nil || len(next.Sites) != 2 {
		t.Errorf("after the bench changed: sites %v, want b and e", next.Sites)
	}
}

// TestBenchSitesInvalid: what erp.sites refuses, each problem named.
func TestBenchSitesInvalid(t *testing.T) {
	ctClearEnv(t)
	bench := t.TempDir()
	tests := []struct {
		name string
		file string
		want string
	}{
		{"no bench", benchSitesTOML("", `["*"]`, map[string]string{"erp.bench_path": ctDel}), "erp.sites needs erp.bench_path"},
		{"no dsn", benchSitesTOML(bench, `["*"]`, map[string]string{"erp.dsn": ctDel}), "erp.sites needs erp.dsn"},
		{"erp.site too", benchSitesTOML(bench, `["*"]`, map[string]string{"erp.site": `"a"`}), "erp.site and erp.sites are both set"},
		{"a tenant", benchSitesTOML(bench, `["*"]`, map[string]string{"tenant.secret": `"` + ctRefSecret + `"`}), "are read from each site's site_config.json"},
		{"bad glob", benchSitesTOML(bench, `["[a"]`, nil), `erp.sites: "[a" is not a site name or glob`},
		{"other key", benchSitesTOML(bench, `["*"]`, map[string]string{"erp.page_size": "0"}), "erp.page_size = 0 is out of range"},
		{"missing bench", benchSitesTOML(filepath.Join(bench, "nope"), `["*"]`, nil), "list its sites"},
		{"with [[sites]]", benchSitesTOML(bench, `["*"]`, nil) + "[[sites]]\nname = \"x\"\n", "erp.sites and [[sites]] tables are both set"},
		{"in [[sites]]", ctTOML(nil) + "[[sites]]\nname = \"x\"\n[sites.erp]\nsites = [\"*\"]\n", "erp.sites cannot be set in a [[sites]] table"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(ctWrite(t, "settings.toml", tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v, want %q", err, tc.want)
			}
			ctAssertNoSecret(t, "error", err.Error())
		})
	}
}

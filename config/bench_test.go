package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

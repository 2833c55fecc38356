package site_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// writeBench makes a Frappe bench directory whose site points at the
// database behind dsn, the way `bench new-site` writes it.
func writeBench(t *testing.T, dsn, site string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	must(t, err)
	host, port, _ := strings.Cut(cfg.Addr, ":")
	bench := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(bench, "sites", site), 0o755))
	siteCfg, _ := json.Marshal(map[string]any{"db_name": cfg.DBName, "db_password": cfg.Passwd, "db_type": "mariadb", "db_user": cfg.User})
	must(t, os.WriteFile(filepath.Join(bench, "sites", site, "site_config.json"), siteCfg, 0o600))
	common, _ := json.Marshal(map[string]any{"db_host": host, "db_port": json.Number(port), "redis_cache": "redis://127.0.0.1:13000"})
	must(t, os.WriteFile(filepath.Join(bench, "sites", "common_site_config.json"), common, 0o644))
	return bench
}

// TestBenchSite: erp.bench_path + erp.site read the database from the bench's
// files instead of erp.dsn.
func TestBenchSite(t *testing.T) {
	const n = 8
	e := sitetest.New(t, sitetest.Options{Items: n})
	bench := writeBench(t, e.DSN, "shop.example.com")
	e.RewriteSettings(t, "dsn = "+quoteTOML(e.DSN), "bench_path = "+quoteTOML(bench)+"\nsite = \"shop.example.com\"")
	e.Start()
	e.WaitCount(n)
	e.Stop()
	e.AssertMatchesDatabase()
}

func quoteTOML(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

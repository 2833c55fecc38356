package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/signer"
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
	e := newE2E(t, e2eOptions{items: n})
	bench := writeBench(t, e.dsn, "shop.example.com")
	e.rewriteSettings(t, "dsn = "+quoteTOML(e.dsn), "bench_path = "+quoteTOML(bench)+"\nsite = \"shop.example.com\"")
	e.start()
	e.waitCount(n)
	e.stop()
	e.assertMatchesDatabase()
}

func TestBenchSiteErrors(t *testing.T) {
	bench := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(bench, "sites", "nodb"), 0o755))
	must(t, os.WriteFile(filepath.Join(bench, "sites", "nodb", "site_config.json"), []byte(`{"db_password": "hunter2"}`), 0o600))
	must(t, os.MkdirAll(filepath.Join(bench, "sites", "broken"), 0o755))
	must(t, os.WriteFile(filepath.Join(bench, "sites", "broken", "site_config.json"), []byte(`{"db_name": `), 0o600))
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

func quoteTOML(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestSeveralSitesAreIsolated runs two sites in one `erpsync run`: each has
// its own database, outbox and receiver, and one receiver's outage does not
// stall the other site.
func TestSeveralSitesAreIsolated(t *testing.T) {
	var bDown atomic.Bool
	bDown.Store(true)
	a := newE2E(t, e2eOptions{items: 10})
	b := newE2E(t, e2eOptions{items: 12, fault: func(*receiverRequest) (int, bool) {
		if bDown.Load() {
			return 503, true
		}
		return 0, false
	}})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "sync.log")
	site := func(name string, e *e2e) string {
		return fmt.Sprintf(`
[[sites]]
name = %q
[sites.tenant]
id = %q
secret_file = %q
[sites.ingest]
url = %q
[sites.erp]
dsn = %q
[sites.outbox]
path = %q
`, name, e2eTenant, filepath.Join(e.dir, "secret"), e.url, e.dsn, filepath.Join(e.dir, "outbox.db"))
	}
	settings := fmt.Sprintf(`[ingest]
timeout = "2s"
retry_max_wait = "1s"
[erp]
poll_interval = "50ms"
site_url = "https://erp.example.com"
[log]
file = %q
level = "debug"
`, logPath) + site("shop-a", a) + site("shop-b", b)
	cfgPath := filepath.Join(dir, "settings.toml")
	must(t, os.WriteFile(cfgPath, []byte(settings), 0o600))

	cmd := exec.Command(binPath, "run", "--config", cfgPath)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	a.waitCount(10)
	must(t, a.site.SetPrice(context.Background(), "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "1.11"}))
	a.wait(t, "site a's change while site b is down", func(items map[string]receiver.Entry) bool {
		return price(items["ITEM-00001"], "Wholesale") == json.Number("1.11")
	})
	if got := len(b.rcv.Items(e2eTenant)); got != 0 {
		t.Fatalf("site b's receiver accepted %d items while answering 503", got)
	}
	bDown.Store(false)
	b.waitCount(12)
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	a.assertMatchesDatabase()
	b.assertMatchesDatabase()
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), "site=shop-a") || !strings.Contains(string(log), "site=shop-b") {
		t.Error("the sync log does not say which site a line is about")
	}
}

func TestSitesSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	key, _ := signer.NewSecret()
	must(t, os.WriteFile(secret, []byte(key), 0o600))
	base := func(name, outbox string) string {
		return fmt.Sprintf("\n[[sites]]\nname = %q\n[sites.tenant]\nid = \"t\"\nsecret_file = %q\n[sites.ingest]\nurl = \"https://x.example/in\"\n[sites.erp]\ndsn = \"u:p@tcp(127.0.0.1:3306)/db\"\n[sites.outbox]\npath = %q\n", name, secret, outbox)
	}
	tests := []struct{ name, file, want string }{
		{"shared outbox", base("a", "/tmp/x.db") + base("b", "/tmp/x.db"), "also used by site a"},
		{"log inside a site", base("a", "/tmp/a.db") + "[sites.log]\nlevel = \"debug\"\n", "a site holds only"},
		{"bad key in a site", base("a", "/tmp/a.db") + strings.Replace(base("b", "/tmp/b.db"), "[sites.ingest]\n", "[sites.ingest]\nurll = \"x\"\n", 1), "unknown key ingest.urll"},
		{"a site's own error", strings.Replace(base("a", "/tmp/a.db"), `url = "https://x.example/in"`, `url = "http://x.example/in"`, 1), "#1 (a): ingest.url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
			must(t, os.WriteFile(p, []byte(tc.file), 0o600))
			_, err := ReadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadConfig: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	p := filepath.Join(dir, "ok.toml")
	must(t, os.WriteFile(p, []byte("[erp]\npoll_interval = \"3s\"\n"+base("a", "/tmp/a.db")+base("b", "/tmp/b.db")), 0o600))
	cfg, err := ReadConfig(p)
	must(t, err)
	if len(cfg.Sites) != 2 || cfg.Sites[1].Name != "b" || cfg.Sites[1].ERP.PollInterval != 3*time.Second || len(cfg.Sites[0].Tenant.Key()) != 32 {
		t.Fatalf("parsed sites wrong: %d sites, second %+v", len(cfg.Sites), cfg.Sites[1].ERP)
	}
}

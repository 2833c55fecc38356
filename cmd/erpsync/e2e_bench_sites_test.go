package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// benchSite is a site of a test bench: its database and receiver (e), and
// the site_config.json keys erpsync reads.
type benchSite struct {
	name string
	e    *sitetest.Env
}

// writeSiteConfig writes the site's site_config.json the way `bench
// new-site` and `bench --site S set-config` write it; withTenant adds
// erpsync_tenant_id, erpsync_secret and erpsync_ingest_url.
func (s benchSite) writeSiteConfig(t *testing.T, bench string, withTenant bool) {
	t.Helper()
	cfg, err := mysql.ParseDSN(s.e.DSN)
	must(t, err)
	keys := map[string]any{"db_name": cfg.DBName, "db_password": "frappe-site-Pa55", "db_type": "mariadb"}
	if withTenant {
		keys["erpsync_tenant_id"], keys["erpsync_secret"], keys["erpsync_ingest_url"] = sitetest.Tenant, s.e.Secret, s.e.URL
	}
	b, _ := json.MarshalIndent(keys, "", " ")
	dir := filepath.Join(bench, "sites", s.name)
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "site_config.json"), b, 0o600))
}

// TestBenchSitesRun: with erp.bench_path and erp.sites = ["*"], one `erpsync
// run` syncs every site of the bench whose site_config.json has
// erpsync_tenant_id, each with its own tenant, receiver and outbox, read with
// one server-wide read-only user; a reload starts a site that joined and
// stops one that left, and the others go on. No secret reaches the log.
func TestBenchSitesRun(t *testing.T) {
	ctx := context.Background()
	sites := []benchSite{
		{"a.example.com", sitetest.New(t, sitetest.Options{Items: 6})},
		{"b.example.com", sitetest.New(t, sitetest.Options{Items: 7})},
		{"c.example.com", sitetest.New(t, sitetest.Options{Items: 8})},
	}
	// One read-only user for the whole server (here: SELECT on each site's
	// database), as README says to grant it.
	root, err := mysql.ParseDSN(sites[0].e.DSN)
	must(t, err)
	const user, password = "erpsync_bench", "bench-ro-Pa55word"
	for _, s := range sites {
		cfg, err := mysql.ParseDSN(s.e.DSN)
		must(t, err)
		must(t, erpnext.CreateReadOnlyUser(ctx, s.e.DB, cfg.DBName, user, password))
	}
	bench, dir := t.TempDir(), t.TempDir()
	sites[0].writeSiteConfig(t, bench, true)
	sites[1].writeSiteConfig(t, bench, true)
	sites[2].writeSiteConfig(t, bench, false) // not yet taking part
	must(t, os.MkdirAll(filepath.Join(bench, "sites", "assets"), 0o755))
	logPath := filepath.Join(dir, "sync.log")
	metricsAddr := cmdtFreePort(t)
	cfgPath := writeBenchSitesSettings(t, dir, user, password, root.Addr, bench, fmt.Sprintf("level = \"debug\"\n[metrics]\nlisten = %q", metricsAddr))
	scrape := func() string {
		t.Helper()
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		must(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		must(t, err)
		return string(body)
	}

	cmd := exec.Command(erpsyncBinary(t), "run", "--config", cfgPath)
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	sites[0].e.WaitCount(6)
	sites[1].e.WaitCount(7)
	for _, s := range sites[:2] {
		if _, err := os.Stat(filepath.Join(dir, "sites", s.name, "outbox.db")); err != nil {
			t.Errorf("site %s's outbox: %v", s.name, err)
		}
	}
	if n := len(sites[2].e.Rcv.Items(sitetest.Tenant)); n != 0 {
		t.Fatalf("site c without erpsync_tenant_id sent %d items", n)
	}
	if m := scrape(); !strings.Contains(m, `site="b.example.com"`) {
		t.Fatalf("no metrics of site b while it runs:\n%s", m)
	}

	// c joins, b leaves: a reload starts c and stops b; a runs on.
	sites[2].writeSiteConfig(t, bench, true)
	sites[1].writeSiteConfig(t, bench, false)
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	sites[2].e.WaitCount(8)
	waitFileHas(t, logPath, "site removed")
	if m := scrape(); strings.Contains(m, `site="b.example.com"`) || !strings.Contains(m, `site="a.example.com"`) {
		t.Errorf("after site b left: want no series of b and a's still there:\n%s", m)
	}
	must(t, sites[1].e.Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "7.77"}))
	must(t, sites[0].e.Site.SetPrice(ctx, "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "1.11"}))
	sites[0].e.Wait(t, "site a's change after the reload", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00001"], "Wholesale") == json.Number("1.11")
	})
	time.Sleep(300 * time.Millisecond)
	if got := sitetest.Price(sites[1].e.Rcv.Items(sitetest.Tenant)["ITEM-00001"], "Wholesale"); got == json.Number("7.77") {
		t.Error("site b sent a change after it left erp.sites")
	}

	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	sites[0].e.AssertMatchesDatabase()
	sites[2].e.AssertMatchesDatabase()
	log, _ := os.ReadFile(logPath)
	for _, want := range []string{"site=a.example.com", "site=c.example.com", "site added"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the sync log has no %q", want)
		}
	}
	for _, secret := range []string{password, "frappe-site-Pa55", sites[0].e.Secret, sites[2].e.Secret} {
		if strings.Contains(string(log)+stderr.String(), secret) {
			t.Errorf("a secret is in the log")
		}
	}
}

// waitFileHas waits until the file at path contains want.
func waitFileHas(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s has no %q after 30 s", path, want)
}

// writeBenchSitesSettings writes dir/settings.toml for every site of the
// bench at bench (erp.sites = ["*"]), read with the server-wide user at addr,
// the sync log in dir/sync.log; logExtra is added to [log]. It returns the
// file's path.
func writeBenchSitesSettings(t *testing.T, dir, user, password, addr, bench, logExtra string) string {
	t.Helper()
	path := filepath.Join(dir, "settings.toml")
	must(t, os.WriteFile(path, []byte(fmt.Sprintf(`[ingest]
timeout = "2s"
retry_max_wait = "1s"
[erp]
dsn = "%s:%s@tcp(%s)/"
bench_path = %q
sites = ["*"]
poll_interval = "50ms"
site_url = "https://erp.example.com"
[outbox]
path = %q
[log]
file = %q
%s
`, user, password, addr, bench, filepath.Join(dir, "outbox.db"), filepath.Join(dir, "sync.log"), logExtra)), 0o600))
	return path
}

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

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestSeveralSitesAreIsolated runs two sites in one `erpsync run`: each has
// its own database, outbox and receiver, and one receiver's outage does not
// stall the other site.
func TestSeveralSitesAreIsolated(t *testing.T) {
	var bDown atomic.Bool
	bDown.Store(true)
	a := sitetest.New(t, sitetest.Options{Items: 10})
	b := sitetest.New(t, sitetest.Options{Items: 12, Fault: func([]byte) (int, bool) {
		if bDown.Load() {
			return 503, true
		}
		return 0, false
	}})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "sync.log")
	site := func(name string, e *sitetest.Env) string {
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
`, name, sitetest.Tenant, filepath.Join(e.Dir, "secret"), e.URL, e.DSN, filepath.Join(e.Dir, "outbox.db"))
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

	cmd := exec.Command(erpsyncBinary(t), "run", "--config", cfgPath)
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	a.WaitCount(10)
	must(t, a.Site.SetPrice(context.Background(), "ITEM-00001", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "1.11"}))
	a.Wait(t, "site a's change while site b is down", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00001"], "Wholesale") == json.Number("1.11")
	})
	if got := len(b.Rcv.Items(sitetest.Tenant)); got != 0 {
		t.Fatalf("site b's receiver accepted %d items while answering 503", got)
	}
	bDown.Store(false)
	b.WaitCount(12)
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	a.AssertMatchesDatabase()
	b.AssertMatchesDatabase()
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), "site=shop-a") || !strings.Contains(string(log), "site=shop-b") {
		t.Error("the sync log does not say which site a line is about")
	}
}

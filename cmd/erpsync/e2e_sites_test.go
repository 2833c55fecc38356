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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	cfgPath, logPath := twoSiteSettings(t, a, b, "")
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

// twoSiteSettings writes a settings file with sites shop-a (a) and shop-b
// (b), and extra lines at the top (such as [metrics]), and returns its path
// and the sync log's.
func twoSiteSettings(t *testing.T, a, b *sitetest.Env, extra string) (cfgPath, logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "sync.log")
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
	cfgPath = filepath.Join(dir, "settings.toml")
	must(t, os.WriteFile(cfgPath, []byte(extra+settings), 0o600))
	return cfgPath, logPath
}

// TestSiteDownRecoversAlone: of two sites in one `erpsync run`, one whose
// database lacks a table cannot start. The process and the other site go on;
// status and metrics show the site down; once the table is back, the site
// comes up by itself and sends its items.
func TestSiteDownRecoversAlone(t *testing.T) {
	a := sitetest.New(t, sitetest.Options{Items: 10})
	b := sitetest.New(t, sitetest.Options{Items: 12})
	b.Exec("RENAME TABLE `tabBin` TO `tabBin_away`")
	metricsAddr := cmdtFreePort(t)
	cfgPath, _ := twoSiteSettings(t, a, b, fmt.Sprintf("[metrics]\nlisten = %q\n", metricsAddr))
	sock, notes := notifySocket(t)
	cmd := exec.Command(erpsyncBinary(t), "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	var stderr sitetest.LockedBuffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); <-exited }()

	a.WaitCount(10)
	siteUp := func() string {
		t.Helper()
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, `erpsync_site_up{site="shop-b"}`) {
				return strings.TrimSpace(strings.TrimPrefix(l, `erpsync_site_up{site="shop-b"}`))
			}
		}
		return "absent"
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			select {
			case err := <-exited:
				t.Fatalf("erpsync run exited (%v) while %s:\n%s", err, what, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 60s:\n%s", what, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("site b down in the metrics", func() bool { return siteUp() == "0" })
	code, out, errOut := runBinary(t, "status", "--config", cfgPath, "--site", "shop-b")
	if code != 0 || !strings.Contains(out, "DOWN since") || !strings.Contains(out, "tabBin") {
		t.Errorf("status of the down site: exit %d\n%s%s", code, out, errOut)
	}
	// systemd hears the process is ready, which site is down, and the
	// watchdog keeps being fed: a restart would not fix the site and would
	// stop the other.
	expectNotify(t, notes, "READY=1")
	if st := expectNotify(t, notes, "STATUS=1 of 2 site(s) down"); !strings.Contains(st, "site shop-b down since") {
		t.Errorf("systemd status %q does not name the down site", st)
	}
	expectNotify(t, notes, "WATCHDOG=1")
	expectNotify(t, notes, "WATCHDOG=1")
	must(t, a.Site.SetPrice(context.Background(), "ITEM-00002", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "2.22"}))
	a.Wait(t, "site a's change while site b is down", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00002"], "Wholesale") == json.Number("2.22")
	})

	b.Exec("RENAME TABLE `tabBin_away` TO `tabBin`")
	b.WaitCount(12)
	waitFor("site b up in the metrics", func() bool { return siteUp() == "1" })
	expectNotify(t, notes, "STATUS=2 site(s) running")
	code, out, _ = runBinary(t, "status", "--config", cfgPath, "--site", "shop-b")
	if code != 0 || strings.Contains(out, "DOWN") {
		t.Errorf("status after the site came up: exit %d\n%s", code, out)
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := <-exited; err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	exited <- nil // for the deferred stop
	a.AssertMatchesDatabase()
	b.AssertMatchesDatabase()
}

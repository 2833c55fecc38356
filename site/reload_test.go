package site_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/signer"
)

// TestReloadRotatesSecretWithoutLoss: a wrong secret pauses delivery; a
// reload with the right one resumes it, with nothing lost or dead. A reload of
// a broken file keeps the running settings.
func TestReloadRotatesSecretWithoutLoss(t *testing.T) {
	const n = 12
	e := sitetest.New(t, sitetest.Options{Items: n})
	wrong, err := signer.NewSecret()
	must(t, err)
	secretFile := filepath.Join(e.Dir, "secret")
	right, err := os.ReadFile(secretFile)
	must(t, err)
	must(t, os.WriteFile(secretFile, []byte(wrong+"\n"), 0o600))
	e.Start()
	e.WaitLog(t, "HMAC rejected (401)")

	// A broken file: the error is returned and logged, the old settings stay.
	e.RewriteSettings(t, `timeout = "2s"`, `timeout = "2s"
bogus_key = 1`)
	if err := e.Reload(); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("Reload of a file with an unknown key: %v, want an error naming it", err)
	}
	e.WaitLog(t, "settings reload failed; the running settings stay in force")
	e.RewriteSettings(t, "\nbogus_key = 1", "")

	// The right secret, and a change that needs a restart.
	must(t, os.WriteFile(secretFile, right, 0o600))
	e.RewriteSettings(t, `page_size = 100`, `page_size = 200`)
	must(t, e.Reload())
	e.WaitCount(n)
	e.WaitLog(t, "applied=tenant.secret")
	e.WaitLog(t, "keys=erp.page_size")
	if st := e.Stats(); st.Dead != 0 {
		t.Errorf("%d messages dead after a secret rotation", st.Dead)
	}
	e.Stop()
	e.AssertMatchesDatabase()
	if strings.Contains(e.Log(), wrong) || strings.Contains(e.Log(), strings.TrimSpace(string(right))) {
		t.Error("a secret reached the log")
	}
}

// TestReconcileCatchesRenameAndRawSQL: scripts rename items and rewrite
// prices and stock by SQL without moving `modified` or leaving any other
// trace; polling cannot see that, a reconciliation sweep must.
func TestReconcileCatchesRenameAndRawSQL(t *testing.T) {
	ctx := context.Background()
	const n = 30
	e := sitetest.New(t, sitetest.Options{Items: n, SeedAge: time.Hour, Settings: "batch_size = 7"})
	e.Start()
	e.WaitCount(n)
	e.Wait(t, "outbox drained", func(map[string]receiver.Entry) bool { return e.Stats().Pending == 0 })

	// A rename by SQL that leaves no trace (no Comment, no new `modified`:
	// rename_doc itself leaves both, and is caught by polling).
	for _, q := range []string{
		"UPDATE `tabItem` SET name = 'RENAMED-5', item_code = 'RENAMED-5' WHERE name = 'ITEM-00005'",
		"UPDATE `tabItem Barcode` SET parent = 'RENAMED-5' WHERE parent = 'ITEM-00005'",
		"UPDATE `tabItem Price` SET item_code = 'RENAMED-5' WHERE item_code = 'ITEM-00005'",
		"UPDATE `tabBin` SET item_code = 'RENAMED-5' WHERE item_code = 'ITEM-00005'",
	} {
		e.Exec(q)
	}
	must(t, e.Site.RawPriceUpdate(ctx, "ITEM-00006", "Standard Selling", "606.060000000"))
	e.Exec("DELETE FROM `tabBin` WHERE item_code = 'ITEM-00007'") // a raw delete, no trace
	before := e.Rcv.Stats()
	time.Sleep(300 * time.Millisecond) // several polls
	if after := e.Rcv.Stats(); after.Items != before.Items {
		t.Fatalf("polling sent %d items for changes that do not move modified; the test no longer tests reconciliation", after.Items-before.Items)
	}

	e.Pipeline.Reconcile()
	e.Wait(t, "reconciliation", func(items map[string]receiver.Entry) bool {
		_, renamed := items["RENAMED-5"]
		return renamed && items["ITEM-00005"].Op == "delete" &&
			sitetest.Price(items["ITEM-00006"], "Standard Selling") == json.Number("606.06") &&
			len(items["ITEM-00007"].Item["stock"].([]any)) == 0
	})
	e.WaitLog(t, "reconciliation done")
	time.Sleep(200 * time.Millisecond)
	if sent := e.Rcv.Stats().Items - before.Items; sent != 4 {
		t.Errorf("reconciliation sent %d item states, want exactly 4 (rename = delete + upsert, price, stock)", sent)
	}
	e.Stop()
	e.AssertMatchesDatabase()
	e.AssertNoRejections()
}

// TestReloadBeforeTheDatabaseIsUp: settings reloaded while the site cannot
// start yet are the ones it starts with, restart-only keys included, and a
// later reload of the same file finds nothing changed.
func TestReloadBeforeTheDatabaseIsUp(t *testing.T) {
	const n = 30
	e := sitetest.New(t, sitetest.Options{Items: n})
	cfg, err := mysql.ParseDSN(e.DSN)
	must(t, err)
	cfg.Passwd = "not-the-password"
	e.RewriteSettings(t, "dsn = "+strconv.Quote(e.DSN), "dsn = "+strconv.Quote(cfg.FormatDSN()))
	e.Start() // ready although the site is down: the database refuses the user
	e.WaitLog(t, "the site is down")
	if down, _, reason := e.Pipeline.Down(); !down || !strings.Contains(reason, "Access denied") {
		t.Fatalf("Down() = %v, %q; want down with the database's refusal", down, reason)
	}
	if strings.Contains(e.Log(), "not-the-password") {
		t.Fatal("the sync log holds the DSN's password")
	}

	// The fix (a restart-only key) and a delivery setting, reloaded before
	// the site could start.
	e.RewriteSettings(t, "dsn = "+strconv.Quote(cfg.FormatDSN()), "dsn = "+strconv.Quote(e.DSN))
	e.RewriteSettings(t, `retry_max_wait = "2s"`, "retry_max_wait = \"2s\"\nbatch_size = 10")
	must(t, e.Reload())
	e.WaitCount(n)
	if down, _, _ := e.Pipeline.Down(); down {
		t.Fatal("the site is still down after the fix was reloaded")
	}
	if got := e.Rcv.Stats().Accepted; got > n/10+2 {
		t.Errorf("%d requests for %d items: the site started with batch_size from before the reload", got, n)
	}
	must(t, e.Reload())
	e.WaitLog(t, "settings reloaded: nothing changed")
	e.Stop()
	e.AssertMatchesDatabase()
}

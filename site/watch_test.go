package site_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestWatchBinlogWakesDetector: with erp.watch on the binary log's directory
// a commit is picked up at once, although the poll interval is an hour.
func TestWatchBinlogWakesDetector(t *testing.T) {
	ctx := context.Background()
	const n = 10
	e := sitetest.New(t, sitetest.Options{Items: n})
	var base string
	must(t, e.DB.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&base))
	e.RewriteSettings(t, `poll_interval = "50ms"`, `poll_interval = "1h"
watch = "`+filepath.Dir(base)+`"
watch_debounce = "2ms"`)
	e.Start()
	e.WaitCount(n)
	for i, rate := range []string{"11.5", "12.25", "13"} {
		start := time.Now()
		must(t, e.Site.SetPrice(ctx, "ITEM-00004", erpnext.Price{PriceList: "Standard Selling", Currency: "KES", Rate: rate}))
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := e.Rcv.Wait(wctx, func(r *receiver.Receiver) bool {
			return sitetest.Price(r.Items(sitetest.Tenant)["ITEM-00004"], "Standard Selling") == json.Number(rate)
		})
		cancel()
		if err != nil {
			t.Fatalf("change %d did not arrive within 10s with a 1h poll interval: the binary log watch did not wake the detector", i+1)
		}
		t.Logf("change %d arrived %s after the commit", i+1, time.Since(start).Round(time.Millisecond))
	}
	e.Stop()
	e.AssertMatchesDatabase()
}

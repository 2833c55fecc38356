package site_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
)

// TestFollowsSystemSettingsTimeZone: with erp.time_zone empty, a change of
// System Settings' time zone is followed without a restart. The new zone is
// 5h30 behind the old, so ERPNext stamps the next changes hours before the
// cursor: without moving the cursor they would be missed.
func TestFollowsSystemSettingsTimeZone(t *testing.T) {
	ctx := context.Background()
	const n = 5
	e := sitetest.New(t, sitetest.Options{Items: n})
	e.Start()
	e.WaitCount(n)
	e.Exec("UPDATE `tabSingles` SET `value` = 'UTC' WHERE `doctype` = 'System Settings' AND `field` = 'time_zone'")
	utc, err := erpnext.NewSite(e.DB, "UTC")
	must(t, err)
	must(t, utc.SetPrice(ctx, "ITEM-00002", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "42.420000000"}))
	e.Wait(t, "the change stamped in the new zone", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00002"], "Wholesale") == json.Number("42.42")
	})
	e.WaitLog(t, "System Settings' time zone changed")
	must(t, utc.SetPrice(ctx, "ITEM-00003", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "43.430000000"}))
	e.Wait(t, "a later change in the new zone", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00003"], "Wholesale") == json.Number("43.43")
	})
	e.Stop()
	// Not AssertMatchesDatabase: an item unchanged since the switch was
	// stamped in the old zone and keeps that offset at the receiver, while
	// building it now would read its naive stamp in the new zone.
	e.AssertNoRejections()
}

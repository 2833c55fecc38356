package site_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderweave/erpsync/internal/erpnext"
	"github.com/orderweave/erpsync/internal/receiver"
	"github.com/orderweave/erpsync/internal/sitetest"
	"github.com/orderweave/erpsync/outbox"
	"github.com/orderweave/erpsync/site"
)

// TestItemThatCannotBeBuiltIsQuarantined: an item whose code is not valid
// UTF-8 (MariaDB's utf8mb4 stores UTF-16 surrogates) cannot be sent. It is
// quarantined, with an ERROR line naming the item and the column, while the
// other items and detection go on; renamed to a valid code, it is sent, and
// the sweep takes the old code out of quarantine.
func TestItemThatCannotBeBuiltIsQuarantined(t *testing.T) {
	ctx := context.Background()
	const n = 5
	e := sitetest.New(t, sitetest.Options{Items: n})
	e.Start()
	e.WaitCount(n)
	bad := "BAD-\xed\xa0\x80-1"
	e.Exec("INSERT INTO `tabItem` (name, item_code, item_name, item_group, stock_uom, creation, modified, modified_by, owner) "+
		"SELECT ?, ?, item_name, item_group, stock_uom, creation, modified, modified_by, owner FROM `tabItem` WHERE name = 'ITEM-00001'", bad, bad)
	e.Exec("UPDATE `tabItem` SET modified = (SELECT MAX(modified) FROM (SELECT modified FROM `tabItem`) m) + INTERVAL 1 SECOND WHERE name = ?", bad)
	must(t, e.Site.SetPrice(ctx, "ITEM-00002", erpnext.Price{PriceList: "Wholesale", Currency: "KES", Rate: "7.770000000"}))
	e.Wait(t, "the other change", func(items map[string]receiver.Entry) bool {
		return sitetest.Price(items["ITEM-00002"], "Wholesale") == json.Number("7.77")
	})
	e.WaitLog(t, "item quarantined")
	quarantined := readQuarantine(t, e)
	if len(quarantined) != 1 || quarantined[0].Code != bad || quarantined[0].Column != "tabItem.name" {
		t.Fatalf("quarantine %+v, want the bad item, column tabItem.name", quarantined)
	}
	for _, l := range strings.Split(e.Log(), "\n") {
		if strings.Contains(l, "item quarantined") && !(strings.Contains(l, "level=ERROR") && strings.Contains(l, "column=tabItem.name")) {
			t.Errorf("the quarantine line is not an ERROR naming the column: %s", l)
		}
	}

	e.Exec("UPDATE `tabItem` SET name = 'FIXED-1', item_code = 'FIXED-1', modified = modified + INTERVAL 1 SECOND WHERE name = ?", bad)
	e.Wait(t, "the renamed item", func(items map[string]receiver.Entry) bool { _, ok := items["FIXED-1"]; return ok })
	e.Pipeline.Reconcile()
	e.WaitLog(t, "item out of quarantine")
	if q := readQuarantine(t, e); len(q) != 0 {
		t.Errorf("still quarantined after the sweep: %+v", q)
	}
	e.Stop()
	e.AssertNoRejections()
}

func readQuarantine(t *testing.T, e *sitetest.Env) []site.Quarantine {
	t.Helper()
	ob, err := outbox.Open(context.Background(), e.Dir+"/outbox.db")
	must(t, err)
	defer ob.Close()
	q, _, err := site.Quarantined(context.Background(), ob)
	must(t, err)
	return q
}
